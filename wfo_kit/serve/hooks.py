"""``POST /hooks/run``: an upstream system says new data is ready; the server queues a run.

No bearer token: the request is signed like outbound webhooks (:mod:`wfo_kit.notify`):
``X-WFO-Timestamp`` and ``X-WFO-Signature: sha256=<HMAC-SHA256 of "<timestamp>." + body>`` with
the shared secret in the server's ``WFO_HOOK_SECRET`` environment variable; a request more than
five minutes old is refused (no replays). Without that variable the route answers 404 (hooks are
off on this server). The body
names a parameters file already in the data root (``{"params": "prices.yaml"}``); the run is
confined to the data root like any remote submission and owned by ``hook``.
"""

from __future__ import annotations

import json
import os
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

router = APIRouter(prefix="/hooks", tags=["hooks"])


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
    responses=responses(401, 404, 413, 422, 429),
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
    )
    if not signed:
        raise Problem(
            401, "unauthorized", "Bad signature",
            f"{SIGNATURE_HEADER} does not sign this body at {TIMESTAMP_HEADER} (or is older "
            "than five minutes)",
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
