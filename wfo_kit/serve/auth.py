"""The current user and what their role may do, as FastAPI dependencies.

Every route but ``/healthz`` needs ``Authorization: Bearer <token>`` (401 without a valid one);
a role without the route's permission gets 403. The table below is the whole policy; the README
shows it and tests/test_serve.py checks it endpoint by endpoint for every role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wfo_kit.serve.problems import Problem
from wfo_kit.serve.users import Role, TokenVerifier, User

#: Role -> permissions. ``cancel_own``: runs the user submitted; ``cancel_any``: every run.
PERMISSIONS: dict[Role, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "analyst": frozenset({"read", "validate", "submit", "cancel_own"}),
    "admin": frozenset({"read", "validate", "submit", "cancel_own", "cancel_any"}),
}

_bearer = HTTPBearer(auto_error=False, description="an API token from `wfo users add`")


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user whose bearer token came with the request (401 without a valid one)."""
    if credentials is None:
        raise Problem(
            401,
            "unauthenticated",
            "Authentication required",
            "this route needs an `Authorization: Bearer <token>` header",
            hint="ask an admin for a token (`wfo users add NAME --role ROLE`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.verifier
    user = verifier.verify(credentials.credentials)
    if user is None:
        raise Problem(
            401,
            "invalid-token",
            "Invalid token",
            "the bearer token is not valid (unknown, mistyped or revoked)",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.state.user = user  # for the audit log
    return user


def can(user: User, permission: str) -> bool:
    return permission in PERMISSIONS[user.role]


def require(permission: str) -> Callable[[User], User]:
    """A dependency: the current user, if their role grants ``permission`` (else 403)."""

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not can(user, permission):
            raise Problem(
                403,
                "forbidden",
                "Not allowed for this role",
                f"the {user.role} role may not {permission.replace('_', ' ')}",
                hint="ask an admin for a role that may",
            )
        return user

    return check


Reader = Annotated[User, Depends(require("read"))]
Validator = Annotated[User, Depends(require("validate"))]
Submitter = Annotated[User, Depends(require("submit"))]
Canceller = Annotated[User, Depends(require("cancel_own"))]
