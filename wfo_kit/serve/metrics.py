"""``GET /metrics``: Prometheus metrics of the runs under the outputs folder and of this server.

Run figures come from the manifests (:mod:`wfo_kit.metrics_export`), so every instance sharing an
outputs folder reports the same; the server's own counters (failed sign-ins, refused requests)
are this process's. Other code counts a failed sign-in with :func:`count_failed_sign_in`; the
:class:`CountRefusals` middleware counts every 401 and 403 response.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wfo_kit.metrics_export import run_manifests, runs_registry
from wfo_kit.serve.auth import require
from wfo_kit.serve.deps import Settings

SERVER = CollectorRegistry()
FAILED_SIGN_INS = Counter(
    "wfo_serve_failed_sign_ins", "Requests refused for a missing or invalid credential (401)",
    ["reason"], registry=SERVER,
)  # fmt: skip
REFUSED = Counter(
    "wfo_serve_refused_requests", "Requests refused with 401 or 403", ["status"], registry=SERVER
)

router = APIRouter(tags=["metrics"])


def count_failed_sign_in(reason: str = "invalid_token") -> None:
    """Count one failed sign-in (a login form, a bad token) in ``wfo_serve_failed_sign_ins``."""
    FAILED_SIGN_INS.labels(reason).inc()


def count_refused(status: int) -> None:
    """Count one refused request (401 or 403) in ``wfo_serve_refused_requests``."""
    REFUSED.labels(str(status)).inc()


class CountRefusals:
    """Counts every 401 (also as a failed sign-in, unless its handler counted one) and 403."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                count_refused(message["status"])
                # a 401 whose handler counted its own reason (the web sign-in form) is not
                # counted twice; request.state lives in scope["state"]
                counted_already = scope.get("state", {}).get("failed_sign_in_counted")
                if message["status"] == 401 and not counted_already:
                    count_failed_sign_in("http_401")
            await send(message)

        await self.app(scope, receive, counted)


@router.get("/metrics", dependencies=[Depends(require("read"))], include_in_schema=False)
async def metrics(settings: Settings) -> Response:
    """The exposition text: this server's counters, then the run metrics of the outputs folder."""

    def build() -> bytes:
        runs = runs_registry(run_manifests(settings.output_root))
        return generate_latest(SERVER) + generate_latest(runs)

    return Response(await run_in_threadpool(build), media_type=CONTENT_TYPE_LATEST)
