"""Dependencies shared by the routers: the settings, the run queue and index, a checked run id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi import Path as PathParam

from wfo_kit.serve.index import RunIndex
from wfo_kit.serve.models import RUN_ID_PATTERN
from wfo_kit.serve.problems import Problem
from wfo_kit.serve.runqueue import RunQueue
from wfo_kit.serve.settings import ServeSettings


def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings


def get_queue(request: Request) -> RunQueue:
    return request.app.state.queue


def get_index(request: Request) -> RunIndex:
    return request.app.state.index


def checked_run_id(
    run_id: Annotated[str, PathParam(pattern=RUN_ID_PATTERN, description="a run id")],
) -> str:
    if ".." in run_id:
        raise Problem(
            422,
            "invalid-request",
            "Invalid request",
            "path parameter 'run_id': two dots in a row are not allowed in a run id",
            field="run_id",
        )
    return run_id


Settings = Annotated[ServeSettings, Depends(get_settings)]
Queue = Annotated[RunQueue, Depends(get_queue)]
Index = Annotated[RunIndex, Depends(get_index)]
RunId = Annotated[str, Depends(checked_run_id)]


def run_folder(root: Path, run_id: str) -> Path | None:
    """The folder of a run: finished (``<id>``), or still being built (``.<id>.partial``)."""
    for folder in (root / run_id, root / f".{run_id}.partial"):
        if folder.is_dir():
            return folder
    return None


def not_found(run_id: str) -> Problem:
    return Problem(
        404,
        "run-not-found",
        "No such run",
        f"no run {run_id!r} on this server",
        field="run_id",
        hint="GET /runs lists the runs",
    )
