"""``/healthz``: liveness and readiness, without authentication."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from wfo_kit.serve.deps import Queue, Settings
from wfo_kit.serve.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(settings: Settings, queue: Queue) -> JSONResponse:
    """``ok`` (200) once the workers are warm; ``starting`` or ``degraded`` (503) before or
    after a worker died, until a fresh one is up."""
    counts = queue.counts()
    status = "ok" if queue.ready else "starting"
    health = Health(
        status=status,
        workers=settings.workers,
        capacity=settings.queue_capacity,
        **counts,
    )
    return JSONResponse(health.model_dump(), status_code=200 if status == "ok" else 503)
