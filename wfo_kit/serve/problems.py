"""Errors as RFC 9457 problem details (``application/problem+json``), mapped in one place.

Every error response has ``type``, ``title``, ``status`` and ``detail``, plus ``field`` (the
setting or parameter at fault) and ``hint`` (how to fix it) when known. The toolkit's hierarchy
maps by class (the most specific entry of :data:`STATUS_BY_ERROR` wins); an unexpected exception
is a bare 500 whose detail says only that it was logged: never a stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from wfo_kit.errors import (
    ConfigurationError,
    DataError,
    ExecutionError,
    InfrastructureError,
    SourceUnavailableError,
    ValidationError,
    WfoError,
)
from wfo_kit.serve.runqueue import QueueFullError

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:wfo:problem:"
log = logging.getLogger("wfo_kit.serve")


class ProblemDetails(BaseModel):
    """An error, as every route returns it (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    hint: str | None = None


class Problem(Exception):  # noqa: N818 - named after RFC 9457 problem details
    """An HTTP-level refusal raised by the web layer (401, 403, 404, 409, 413, 415, 429)."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.field, self.hint, self.headers = field, hint, headers or {}


#: The toolkit's hierarchy as HTTP: (status, type slug, title), looked up along the class's MRO.
STATUS_BY_ERROR: dict[type[WfoError], tuple[int, str, str]] = {
    SourceUnavailableError: (503, "source-unavailable", "An input source is busy"),
    InfrastructureError: (503, "infrastructure-error", "The server cannot do this now"),
    ConfigurationError: (422, "configuration-error", "Invalid parameters"),
    ValidationError: (422, "validation-error", "Input failed validation"),
    DataError: (422, "data-error", "Input data cannot be used"),
    ExecutionError: (500, "execution-error", "The run failed while executing"),
    WfoError: (500, "internal-error", "Internal error"),
}
MALFORMED = (400, "malformed-body", "The request body is not YAML or JSON")


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        type=TYPE_PREFIX + slug, title=title, status=status, detail=detail, field=field, hint=hint
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def error_status(exc: WfoError) -> tuple[int, str, str]:
    """(status, slug, title) for one of the toolkit's errors.

    A parameters body that does not even parse is a malformed request (400); one that parses
    but is not a valid configuration is unprocessable (422).
    """
    import yaml

    cause = exc.__cause__
    while isinstance(exc, ConfigurationError) and cause is not None:
        if isinstance(cause, yaml.YAMLError | json.JSONDecodeError):
            return MALFORMED
        cause = cause.__cause__
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return STATUS_BY_ERROR[WfoError]


async def _on_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status,
        exc.slug,
        exc.title,
        exc.detail,
        field=exc.field,
        hint=exc.hint,
        headers=exc.headers,
    )


async def _on_wfo_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WfoError)
    status, slug, title = error_status(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.one_line())
    headers = {"Retry-After": "30"} if status == 503 else None
    return problem_response(
        status,
        slug,
        title,
        " ".join(exc.message.split()),
        field=exc.column or exc.table,
        hint=exc.hint,
        headers=headers,
    )


async def _on_queue_full(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueueFullError)
    return problem_response(
        429,
        "queue-full",
        "Too many runs waiting",
        f"{exc}; try again later",
        hint=f"retry after {exc.retry_after} s, or cancel a waiting run",
        headers={"Retry-After": str(exc.retry_after)},
    )


async def _on_request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first: dict[str, Any] = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ())]
    where = loc[0] if loc else "request"
    field = ".".join(loc[1:]) or where
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    detail = f"{where} parameter {field!r}: {first.get('msg', 'invalid')}{more}"
    return problem_response(422, "invalid-request", "Invalid request", detail, field=field)


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed"}
    title = titles.get(exc.status_code, "HTTP error")
    slug = title.lower().replace(" ", "-")
    return problem_response(
        exc.status_code, slug, title, str(exc.detail), headers=dict(exc.headers or {})
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500, "internal-error", "Internal error", "an unexpected error occurred; it was logged"
    )


def install(app: FastAPI) -> None:
    """Register the one mapping of errors to problem details on ``app``."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(WfoError, _on_wfo_error)
    app.add_exception_handler(QueueFullError, _on_queue_full)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


#: Documented error responses, for the OpenAPI schema of each route.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ProblemDetails, "content": {MEDIA_TYPE: {}}, "description": "problem"}
        for status in statuses
    }
