"""``/runs``: submit, list, status, log, report, cancel.

Reads come from the run folders (:func:`wfo_kit.history.run_history`, the manifests); runs this
server accepted but whose worker has not claimed a folder yet come from its queue.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from wfo_kit.batch import Job
from wfo_kit.serve import submissions
from wfo_kit.serve.auth import Canceller, Reader, Submitter, can
from wfo_kit.serve.deps import Queue, RunId, Settings, not_found, run_folder
from wfo_kit.serve.models import (
    CancelResult,
    RunDetail,
    RunError,
    RunLinks,
    RunList,
    RunStatusName,
    RunSummary,
)
from wfo_kit.serve.problems import Problem, responses
from wfo_kit.serve.runqueue import Ticket
from wfo_kit.serve.users import NAME_PATTERN

router = APIRouter(prefix="/runs", tags=["runs"])

#: The request body of POST /runs and POST /validate, for the OpenAPI schema.
PARAMETERS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a parameters document (as a parameters file): paths relative to the "
        "server's data root, inside it",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {"type": "object", "description": "the schema: GET /config/schema"}
            },
        },
    }
}


def _links(run_id: str, results: list[str]) -> RunLinks:
    base = f"/runs/{run_id}"
    return RunLinks(
        self=base,
        log=f"{base}/log",
        report=f"{base}/report",
        results={t: f"{base}/results/{t}.parquet" for t in results},
    )


def _from_ticket(ticket: Ticket) -> RunDetail:
    return RunDetail(
        run_id=ticket.run_id,
        status=ticket.state,
        owner=ticket.owner,
        submitted=ticket.submitted,
        links=_links(ticket.run_id, []),
    )


def _from_manifest(manifest: dict[str, Any]) -> RunDetail:
    results = sorted(
        {Path(name).stem for name in manifest.get("results") or [] if name.startswith("results/")}
    )
    error = manifest.get("error")
    return RunDetail(
        run_id=manifest["run_id"],
        status=_known_status(manifest.get("status")),
        owner=manifest.get("owner"),
        started=manifest.get("started"),
        finished=manifest.get("finished"),
        content_hash=manifest.get("content_hash"),
        rerun_of=manifest.get("rerun_of"),
        headline=manifest.get("headline"),
        quality=manifest.get("quality"),
        steps=manifest.get("steps"),
        timings_seconds=manifest.get("timings_seconds"),
        config=manifest.get("config"),
        results=results,
        error=RunError.model_validate(error) if isinstance(error, dict) else None,
        links=_links(manifest["run_id"], results),
    )


def _known_status(status: str | None) -> str:
    return status if status in typing.get_args(RunStatusName) else "unreadable"


def _detail(settings: Settings, queue: Queue, run_id: str) -> RunDetail:
    from wfo_kit.history import load_manifest

    root = settings.output_root
    if run_folder(root, run_id) is None:
        ticket = queue.ticket(run_id)
        if ticket is None:
            raise not_found(run_id)
        return _from_ticket(ticket)
    return _from_manifest(load_manifest(root, run_id))


@router.post(
    "",
    status_code=202,
    response_model=RunDetail,
    openapi_extra=PARAMETERS_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429),
    summary="Submit a run",
)
async def submit_run(
    request: Request, response: Response, user: Submitter, settings: Settings, queue: Queue
) -> RunDetail:
    """Queue a run of the parameters document in the body (YAML or JSON), confined to the data
    root; 202 with the run's URL in ``Location``. Poll it until it is no longer queued or
    running."""
    suffix = submissions.suffix_for(request.headers.get("content-type"))
    body = await request.body()
    run_id = submissions.new_run_id()
    request.state.audit = {"run_id": run_id}

    def accept() -> Ticket:
        with submissions.spooled(settings.data_root, run_id, body, suffix, keep=True) as path:
            submissions.resolve(path, settings.data_root)
            job = Job(
                params_file=str(path),
                run_id=run_id,
                output_root=str(settings.output_root),
                confine=str(settings.data_root),
                owner=user.name,
            )
            return queue.submit(job)

    ticket = await run_in_threadpool(accept)
    response.headers["Location"] = f"/runs/{run_id}"
    return _from_ticket(ticket)


@router.get("", response_model=RunList, responses=responses(401, 403, 422), summary="List runs")
def list_runs(
    _user: Reader,
    settings: Settings,
    queue: Queue,
    status: RunStatusName | None = None,
    owner: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RunList:
    """Runs newest first: this server's waiting and running runs, then every run folder."""
    from wfo_kit.history import run_history

    history = run_history(settings.output_root)
    on_disk = set(history["run_id"].to_list())
    items = [
        RunSummary(run_id=t.run_id, status=t.state, owner=t.owner, submitted=t.submitted)
        for t in queue.tickets()
        if t.run_id not in on_disk
    ]
    items += [
        RunSummary.model_validate({**row, "status": _known_status(row["status"])})
        for row in history.iter_rows(named=True)
    ]
    if status is not None:
        items = [i for i in items if i.status == status]
    if owner is not None:
        items = [i for i in items if i.owner == owner]
    return RunList(
        items=items[offset : offset + limit], total=len(items), limit=limit, offset=offset
    )


@router.get(
    "/{run_id}", response_model=RunDetail, responses=responses(401, 403, 404, 422), summary="A run"
)
def get_run(run_id: RunId, _user: Reader, settings: Settings, queue: Queue) -> RunDetail:
    """The run's status, headline, quality, step timings, configuration and links."""
    return _detail(settings, queue, run_id)


@router.get(
    "/{run_id}/log",
    response_class=FileResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}, **responses(401, 403, 404, 422)},
    summary="A run's event log",
)
def get_log(run_id: RunId, _user: Reader, settings: Settings) -> FileResponse:
    """Every event of the run, one JSON object a line (also while it runs)."""
    folder = run_folder(settings.output_root, run_id)
    if folder is None or not (folder / "log.jsonl").is_file():
        raise not_found(run_id)
    return FileResponse(folder / "log.jsonl", media_type="application/x-ndjson")


#: The report runs its own scripts (plotly) in a sandbox: an opaque origin, no network.
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
)


@router.get(
    "/{run_id}/report",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}}, **responses(401, 403, 404, 409, 422)},
    summary="A run's HTML report",
)
def get_report(run_id: RunId, _user: Reader, settings: Settings, queue: Queue) -> FileResponse:
    """The self-contained HTML report (also of a failed or interrupted run, marked so)."""
    folder = settings.output_root / run_id
    if not (folder / "report.html").is_file():
        detail = _detail(settings, queue, run_id)  # 404 if there is no such run
        raise Problem(
            409,
            "report-not-ready",
            "No report yet",
            f"run {run_id} is {detail.status}; its report is published when it ends",
            hint=f"poll GET /runs/{run_id}",
        )
    return FileResponse(
        folder / "report.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_CSP},
    )


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    response_model=CancelResult,
    responses=responses(401, 403, 404, 409, 422),
    summary="Cancel a run",
)
def cancel_run(
    request: Request, run_id: RunId, user: Canceller, settings: Settings, queue: Queue
) -> CancelResult:
    """Cancel a waiting run (it never starts) or stop a running one (it ends interrupted, with
    its report). Analysts cancel their own runs; admins any."""
    request.state.audit = {"run_id": run_id}
    detail = _detail(settings, queue, run_id)
    if detail.owner != user.name and not can(user, "cancel_any"):
        raise Problem(
            403,
            "forbidden",
            "Not allowed for this role",
            f"run {run_id} belongs to {detail.owner or 'nobody'}; the {user.role} role may "
            "cancel only its own runs",
        )
    try:
        outcome = queue.cancel(run_id, by=user.name)
    except LookupError:
        status = _detail(settings, queue, run_id).status
        raise Problem(
            409,
            "not-cancellable",
            "The run cannot be cancelled",
            f"run {run_id} is {status}: only a run waiting or running on this server can be "
            "cancelled",
        ) from None
    return CancelResult(run_id=run_id, status=outcome)
