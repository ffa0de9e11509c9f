"""``POST /hooks/run``: an upstream system says new data is ready; the server queues a run.

No bearer token: the request is signed like outbound webhooks (:mod:`wfo_kit.notify`):
``X-WFO-Timestamp`` and ``X-WFO-Signature: sha256=<HMAC-SHA256 of "<timestamp>." + body>`` with
the shared secret in the server's ``WFO_HOOK_SECRET`` environment variable; a request more than
five minutes old is refused, and so is a signature already accepted by this process
(:class:`SeenSignatures`: a captured request cannot be replayed within those five minutes).
Without that variable the route answers 404 (hooks are
off on this server). The body
names a parameters file already in the data root (``{"params": "prices.yaml"}``); the run is
confined to the data root like any remote submission and owned by ``hook``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from wfo_kit.batch import Job
from wfo_kit.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from wfo_kit.serve import submissions
from wfo_kit.serve.deps import Index, Queue, Settings
from wfo_kit.serve.models import RunDetail
from wfo_kit.serve.problems import Problem, responses

SECRET_ENV = "WFO_HOOK_SECRET"
OWNER = "hook"

TOLERANCE = 300.0  # seconds a signed request is valid either side of its timestamp

router = APIRouter(prefix="/hooks", tags=["hooks"])


@dataclass
class SeenSignatures:
    """Signatures accepted by this process, each kept for twice the tolerance (a request stamped
    at ``t`` verifies until ``t + 300`` and may arrive as early as ``t - 300``), at most
    ``limit`` of them. When full of unexpired ones, new hooks are refused (429) rather than an
    old signature forgotten: forgetting would let its request be replayed."""

    window: float = 2 * TOLERANCE
    limit: int = 10_000
    seen: OrderedDict[str, float] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, signature: str, *, now: float | None = None) -> str:
        """``"new"`` (now remembered), ``"replay"`` or ``"full"``."""
        now = time.time() if now is None else now
        with self.lock:
            while self.seen and next(iter(self.seen.values())) <= now - self.window:
                self.seen.popitem(last=False)  # oldest first: insertion order is time order
            if signature in self.seen:
                return "replay"
            if len(self.seen) >= self.limit:
                return "full"
            self.seen[signature] = now
            return "new"


def _seen(request: Request) -> SeenSignatures:
    # One per app (per serve process), made on first use; no await in between: no race.
    state = request.app.state
    if getattr(state, "hook_signatures", None) is None:
        state.hook_signatures = SeenSignatures()
    return state.hook_signatures


def _params_name(body: bytes) -> str:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    name = payload.get("params") if isinstance(payload, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise Problem(
            422, "invalid-request", "Invalid request",
            'the body is JSON naming a parameters file of the data root: {"params": "x.yaml"}',
            field="params",
        )  # fmt: skip
    return name


@router.post(
    "/run",
    status_code=202,
    response_model=RunDetail,
    responses=responses(401, 404, 409, 413, 422, 429),
    summary="Start a run from a signed webhook",
)
async def hook_run(
    request: Request, response: Response, settings: Settings, queue: Queue, index: Index
) -> RunDetail:
    """Queue a run of a parameters file of the data root; 202 with the run's URL."""
    from wfo_kit.serve.runs import _queued

    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise Problem(404, "hooks-off", "Inbound hooks are off",
                      f"the server has no shared secret: set {SECRET_ENV}")  # fmt: skip
    body = await request.body()
    signed = verify(
        body,
        secret=secret,
        timestamp=request.headers.get(TIMESTAMP_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        tolerance=TOLERANCE,
    )
    if not signed:
        raise Problem(
            401, "unauthorized", "Bad signature",
            f"{SIGNATURE_HEADER} does not sign this body at {TIMESTAMP_HEADER} (or is older "
            "than five minutes)",
        )  # fmt: skip
    admitted = _seen(request).admit(str(request.headers.get(SIGNATURE_HEADER)))
    if admitted == "replay":
        raise Problem(
            409, "replayed-hook", "Replayed request",
            "this signed request was accepted already: sign each request anew",
        )  # fmt: skip
    if admitted == "full":
        raise Problem(
            429, "too-many-hooks", "Too many hooks",
            "too many signed requests in the last ten minutes: try again later",
        )  # fmt: skip
    name = _params_name(body)
    run_id = submissions.new_run_id()
    request.state.audit = {"run_id": run_id, "params": name}

    def accept() -> RunDetail:
        path = settings.data_root / name
        # Resolved in confinement: absolute paths, `..` and links leaving the data root refused.
        submissions.resolve(path, settings.data_root)
        job = Job(params_file=str(path), run_id=run_id, output_root=str(settings.output_root),
                  confine=str(settings.data_root), owner=OWNER)  # fmt: skip
        return _queued(queue, index, job)

    detail = await run_in_threadpool(accept)
    response.headers["Location"] = f"/runs/{run_id}"
    return detail
