"""API users and their tokens, kept in one JSON file (by default ``<outputs>/users.json``).

A token is shown once, when its user is added: ``wfo_<token id>_<secret>``. The file keeps the
token id in clear (to find the user) and an Argon2id hash of the whole token, never the token.
The file is written atomically with mode 0600; a server notices a changed file (a user added or
revoked) on its next request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from wfo_kit.errors import ConfigurationError, InfrastructureError, did_you_mean

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
USERS_FILE = "users.json"
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
_TOKEN = re.compile(r"^wfo_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


class User(BaseModel):
    """One API user as the users file keeps it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    role: Role
    token_id: str
    token_hash: str
    created: str
    revoked: str | None = None


def users_path(output_root: Path, users: Path | None = None) -> Path:
    """The users file: ``users`` if given, else ``<output_root>/users.json``."""
    return Path(users) if users is not None else Path(output_root) / USERS_FILE


def load_users(path: Path) -> list[User]:
    """Every user in the file (revoked ones included); no file: no users."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return [User.model_validate(item) for item in raw["users"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"users file {path} cannot be read: {type(exc).__name__}"
        raise ConfigurationError(
            msg, hint="restore it, or move it away and add users again"
        ) from exc


def _save_users(path: Path, users: list[User]) -> None:
    path = Path(path)
    payload = json.dumps({"users": [u.model_dump() for u in users]}, indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
                handle.write(payload)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as exc:
        msg = f"cannot write users file {path}: {exc.strerror or exc}"
        raise InfrastructureError(
            msg, hint="check the folder's permissions and free space"
        ) from exc


def _hasher():  # noqa: ANN202 - argon2's PasswordHasher, imported when needed
    from argon2 import PasswordHasher

    return PasswordHasher()  # Argon2id, RFC 9106 low-memory profile


def add_user(path: Path, name: str, role: str) -> str:
    """Add a user (or give a revoked name a new token); return the token, which no file keeps."""
    if not re.match(NAME_PATTERN, name):
        msg = f"user name {name!r} is not allowed"
        raise ConfigurationError(msg, hint="lower-case letters, digits, - and _, at most 32")
    if role not in ROLES:
        msg = f"unknown role {role!r}{did_you_mean(role, ROLES)}"
        raise ConfigurationError(msg, hint=f"roles: {', '.join(ROLES)}")
    users = load_users(path)
    if any(u.name == name and u.revoked is None for u in users):
        msg = f"user {name!r} already exists in {path}"
        raise ConfigurationError(msg, hint=f"revoke it first: `wfo users revoke {name}`")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    token = f"wfo_{token_id}_{secret}"
    user = User(
        name=name,
        role=role,  # type: ignore[arg-type] - checked against ROLES above
        token_id=token_id,
        token_hash=_hasher().hash(token),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    _save_users(path, [*(u for u in users if u.name != name), user])
    return token


def revoke_user(path: Path, name: str) -> User:
    """Revoke a user's token (the user stays listed, marked revoked)."""
    users = load_users(path)
    active = [u.name for u in users if u.revoked is None]
    if name not in active:
        msg = f"no active user {name!r} in {path}{did_you_mean(name, active)}"
        raise ConfigurationError(msg, hint="`wfo users list` shows the users")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    updated = [u.model_copy(update={"revoked": now}) if u.name == name else u for u in users]
    _save_users(path, updated)
    return next(u for u in updated if u.name == name)


class TokenVerifier:
    """Bearer token -> active user, re-reading the users file when it changes.

    Argon2 is slow on purpose (tens of milliseconds): a token verified once is remembered by its
    SHA-256 until the users file changes, so a client's later requests cost a dictionary lookup.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_id: dict[str, User] = {}
        self._verified: dict[str, User] = {}

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            users = load_users(self.path) if stamp != (0, 0, 0) else []
            self._by_id = {u.token_id: u for u in users if u.revoked is None}
            self._verified = {}
            self._stamp = stamp

    def active(self, token_id: str) -> User | None:
        """The active user holding token id ``token_id`` now (a web session's check)."""
        with self._lock:
            self._refresh()
            return self._by_id.get(token_id)

    def verify(self, token: str) -> User | None:
        """The active user holding ``token``, or None."""
        from argon2.exceptions import InvalidHashError, VerificationError

        match = _TOKEN.match(token)
        if match is None:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            self._refresh()
            user = self._by_id.get(match["id"])
            if user is None:
                return None
            if digest in self._verified:
                return self._verified[digest]
        try:
            _hasher().verify(user.token_hash, token)
        except (VerificationError, InvalidHashError):
            return None
        with self._lock:
            if self._by_id.get(match["id"]) == user:  # not revoked meanwhile
                self._verified[digest] = user
        return user
