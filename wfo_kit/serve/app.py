"""The application factory, its middleware, and ``serve`` (uvicorn, with TLS when given).

Middleware, outermost first: the audit log (every state-changing request, refused ones too),
security headers (HSTS under TLS), the request body limit (413).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from wfo_kit import __version__
from wfo_kit.serve import config, docs, health, history, problems, results, runs, web
from wfo_kit.serve.auth import require
from wfo_kit.serve.index import RunIndex
from wfo_kit.serve.runqueue import RunQueue
from wfo_kit.serve.settings import ServeSettings
from wfo_kit.serve.users import TokenVerifier, users_path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
log = logging.getLogger("wfo_kit.serve")


def create_app(settings: ServeSettings) -> FastAPI:
    """The API over ``settings.output_root``, running submissions on a worker pool.

    The pool starts with the application (its lifespan) and stops with it: waiting runs are
    recorded as interrupted, running ones are asked to stop and publish what they have.
    """
    settings = settings.model_copy(
        update={
            "output_root": settings.output_root.resolve(),
            "data_root": settings.data_root.resolve(),
        }
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.output_root.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(_preload)
        queue = RunQueue(
            settings.output_root,
            workers=settings.workers,
            capacity=settings.queue_capacity,
            kernel=settings.kernel,
            prewarm=settings.prewarm,
            retry_after=settings.retry_after_seconds,
            scheduler=settings.scheduler,
        )
        await run_in_threadpool(queue.start)  # finishes what a dead server left running
        app.state.queue = queue
        try:
            yield
        finally:
            await run_in_threadpool(queue.stop)

    app = FastAPI(
        title="wfo_kit",
        version=__version__,
        description="Company valuation runs over HTTP: submit parameters, follow the run, read "
        "its report and result tables. Bearer tokens on every route but /healthz (and "
        "POST /hooks/run, which is HMAC-signed instead).",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads its assets from a CDN: /docs is served by docs.py
        redoc_url=None,
        openapi_url=None,  # served below, behind authentication
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(users_path(settings.output_root, settings.users_file))
    app.state.index = RunIndex(settings.output_root)
    problems.install(app)
    for module in (runs, results, config, history, health, docs):
        app.include_router(module.router)
    web.install(app)  # the web pages under /ui (sessions, CSRF, the configuration form)
    _operations(app)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("read"))])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes
    )
    app.add_middleware(SecurityHeaders, tls=settings.tls)
    app.add_middleware(AuditLog, path=settings.output_root / "audit.jsonl")
    return app


def _with_scheduler(app: FastAPI) -> None:
    """Run the outputs folder's schedules (:mod:`wfo_kit.schedules`) on this server's queue while
    it is up. Opt-in (``WFO_SERVE_SCHEDULES=1``): with several instances on one outputs folder,
    exactly one should run them."""
    import threading

    from wfo_kit.schedules import queue_launcher, run_scheduler

    serving = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with serving(app) as state:
            stop = threading.Event()
            launch = queue_launcher(app.state.queue)
            root = app.state.settings.output_root
            thread = threading.Thread(
                target=run_scheduler,
                args=(root,),
                kwargs={"launch": launch, "stop": stop, "say": log.info},
                name="wfo-scheduler",
                daemon=True,
            )
            thread.start()
            try:
                yield state
            finally:
                stop.set()
                thread.join(timeout=5)

    app.router.lifespan_context = lifespan


def _operations(app: FastAPI) -> None:
    """``POST /hooks/run``; ``GET /metrics`` and the 401/403 counter when prometheus_client (the
    ops extra) is there."""
    from wfo_kit.serve import hooks

    app.include_router(hooks.router)
    if os.environ.get("WFO_SERVE_SCHEDULES") == "1":
        _with_scheduler(app)
    try:
        from wfo_kit.serve import metrics
    except ImportError:
        log.warning("GET /metrics is off: prometheus_client is not installed (wfo_kit[ops])")
        return
    app.include_router(metrics.router)
    app.add_middleware(metrics.CountRefusals)


def _preload() -> None:
    """What the first request would otherwise pay: the modules it needs, and a configuration
    resolved once (its validators import scipy.stats, which takes seconds)."""
    import argon2  # noqa: F401

    import wfo_kit.history
    import wfo_kit.pipeline  # noqa: F401
    from wfo_kit.config import resolve_config

    resolve_config()


class BodyLimit:
    """413 for a request body over ``max_bytes`` (``max_upload_bytes`` for a multipart body,
    which may carry data files): by its Content-Length, or as it streams."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int) -> None:
        self.app, self.max_bytes, self.max_upload_bytes = app, max_bytes, max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        limit = self.max_upload_bytes if multipart else self.max_bytes
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLargeError
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLargeError:
            if not started:
                await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problems.problem_response(
            413,
            "body-too-large",
            "Request body too large",
            f"this request body may hold at most {limit} bytes",
            hint="a parameters document holds settings; large data belongs in the data root",
        )
        await response(scope, receive, send)


class _TooLargeError(Exception):
    pass


class SecurityHeaders:
    """Headers on every response: no sniffing, no caching, no framing; HSTS under TLS."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"cache-control", b"no-store"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


class AuditLog:
    """One line in ``audit.jsonl`` per state-changing request, whatever its outcome."""

    def __init__(self, app: ASGIApp, *, path: Path) -> None:
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        written = False

        async def noted(message: Message) -> None:
            nonlocal written
            if message["type"] == "http.response.start" and not written:
                # Before the client sees the status: a client's next request is then always
                # audited after this one (appending after the response let two lines swap).
                written = True
                await run_in_threadpool(self._append, scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            if not written:  # no response started: the request failed inside the server
                await run_in_threadpool(self._append, scope, 500)

    def _append(self, scope: Scope, status: int) -> None:
        from wfo_kit.runs import append_audit

        state = scope.get("state") or {}
        user = state.get("user")
        client = scope.get("client") or ("", 0)
        try:
            append_audit(
                self.path,
                command="serve",
                method=scope["method"],
                url=scope["path"],
                api_user=getattr(user, "name", None),
                role=getattr(user, "role", None),
                client=client[0],
                status=status,
                outcome="succeeded" if status < 400 else "refused",
                **(state.get("audit") or {}),
            )
        except OSError:
            log.exception("cannot append to the audit log %s", self.path)


def serve(
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> None:
    """Serve the API on uvicorn until interrupted (TLS when a certificate and key are given)."""
    import uvicorn

    app = create_app(settings.model_copy(update={"tls": certfile is not None}))
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        log_level="info",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
