"""``/runs``: submit (with uploads), list, status, manifest, log, report, notebook, cancel, rerun.

Reads come from the run folders alone (:class:`wfo_kit.serve.index.RunIndex`): waiting, running
and finished runs of every server sharing the output folder.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from wfo_kit.batch import Job
from wfo_kit.config import TABLE_NAMES
from wfo_kit.serve import submissions, uploads
from wfo_kit.serve.auth import Canceller, Reader, Submitter, can
from wfo_kit.serve.deps import Index, Queue, RunId, Settings, not_found, run_folder
from wfo_kit.serve.index import RunEntry, RunIndex
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
from wfo_kit.serve.runqueue import RunQueue
from wfo_kit.serve.users import NAME_PATTERN

router = APIRouter(prefix="/runs", tags=["runs"])

#: The request body of POST /runs and POST /validate, for the OpenAPI schema.
SUBMISSION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a parameters document (as a parameters file): paths relative to the "
        "server's data root, inside it; or a multipart form with the document and data files",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {"type": "object", "description": "the schema: GET /config/schema"}
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "parameters": {
                            "type": "string",
                            "format": "binary",
                            "description": "the parameters document (YAML or JSON)",
                        },
                        **{
                            table: {
                                "type": "string",
                                "format": "binary",
                                "description": f"the {table} table (.csv or .parquet), "
                                "instead of the one the document names",
                            }
                            for table in TABLE_NAMES
                        },
                    },
                }
            },
        },
    }
}
PARAMETERS_BODY = SUBMISSION_BODY


def _links(run_id: str, results: list[str]) -> RunLinks:
    base = f"/runs/{run_id}"
    return RunLinks(
        self=base,
        log=f"{base}/log",
        report=f"{base}/report",
        notebook=f"{base}/notebook",
        manifest=f"{base}/manifest",
        results={t: f"{base}/results/{t}.parquet" for t in results},
    )


def _from_manifest(manifest: dict[str, Any], run_id: str) -> RunDetail:
    results = sorted(
        {
            Path(name).stem
            for name in manifest.get("results") or []
            if isinstance(name, str) and name.startswith("results/")
        }
    )
    error = manifest.get("error")
    return RunDetail(
        run_id=run_id,
        status=_known_status(manifest.get("status")),
        owner=manifest.get("owner"),
        submitted=manifest.get("submitted"),
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
        links=_links(run_id, results),
    )


def _known_status(status: str | None) -> str:
    return status if status in typing.get_args(RunStatusName) else "unreadable"


def _find(index: RunIndex, run_id: str) -> tuple[RunEntry, dict[str, Any]]:
    found = index.find(run_id)
    if found is None:
        raise not_found(run_id)
    return found


def _detail(index: RunIndex, run_id: str) -> RunDetail:
    return _from_manifest(_find(index, run_id)[1], run_id)


def _queued(queue: RunQueue, index: RunIndex, job: Job) -> RunDetail:
    """Queue ``job``; the run as the output folder now shows it."""
    queue.submit(job)
    found = index.find(job.run_id)
    if found is None:  # ended already (a refused run is finished at once)
        raise not_found(job.run_id)
    return _from_manifest(found[1], job.run_id)


@router.post(
    "",
    status_code=202,
    response_model=RunDetail,
    openapi_extra=SUBMISSION_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429, 503),
    summary="Submit a run",
)
async def submit_run(
    request: Request,
    response: Response,
    user: Submitter,
    settings: Settings,
    queue: Queue,
    index: Index,
) -> RunDetail:
    """Queue a run of the parameters document in the body (YAML or JSON), confined to the data
    root; or, as ``multipart/form-data``, of a ``parameters`` part with data files uploaded as
    parts named after their table. 202 with the run's URL in ``Location``; poll it until it is
    no longer queued or running. The run is recorded in the output folder at once: a server
    that stops loses no accepted run."""
    submission = await uploads.read_submission(request, max_part_bytes=settings.max_body_bytes)
    run_id = submissions.new_run_id()
    request.state.audit = {"run_id": run_id}

    def accept() -> RunDetail:
        path, written = uploads.write_submission(settings.data_root, run_id, submission)
        try:
            submissions.resolve(path, settings.data_root, also=tuple(written))
            job = Job(
                params_file=str(path),
                run_id=run_id,
                output_root=str(settings.output_root),
                confine=str(settings.data_root),
                owner=user.name,
            )
            return _queued(queue, index, job)
        except BaseException:
            uploads.remove(written)
            raise

    detail = await run_in_threadpool(accept)
    response.headers["Location"] = f"/runs/{run_id}"
    return detail


@router.post(
    "/{run_id}/rerun",
    status_code=202,
    response_model=RunDetail,
    responses=responses(401, 403, 404, 409, 422, 429, 503),
    summary="Run a run again",
)
def rerun_run(
    *,
    request: Request,
    response: Response,
    run_id: RunId,
    user: Submitter,
    settings: Settings,
    queue: Queue,
    index: Index,
    accept_changed_inputs: bool = False,
) -> RunDetail:
    """Queue a new run of a finished run's configuration and sources (its manifest), confined
    to the data root. Refused (422) when its inputs changed since, unless
    ``accept_changed_inputs``; compare the two runs with ``GET /diff``."""
    from wfo_kit.runs import rerun_config

    new_id = submissions.new_run_id()
    request.state.audit = {"run_id": new_id, "rerun_of": run_id}
    _entry, manifest = _find(index, run_id)
    status = manifest.get("status")
    if status not in ("succeeded", "failed", "interrupted"):
        raise Problem(
            409,
            "not-rerunnable",
            "The run cannot be run again yet",
            f"run {run_id} is {status}: only a finished run can be run again",
            hint=f"poll GET /runs/{run_id}",
        )
    _resolved, _changed, params_file = rerun_config(
        settings.output_root,
        run_id,
        accept_changed_inputs=accept_changed_inputs,
        confine=settings.data_root,
    )
    job = Job(
        params_file=params_file or "",
        run_id=new_id,
        output_root=str(settings.output_root),
        confine=str(settings.data_root),
        owner=user.name,
        rerun_of=run_id,
        accept_changed_inputs=accept_changed_inputs,
    )
    detail = _queued(queue, index, job)
    response.headers["Location"] = f"/runs/{new_id}"
    return detail


@router.get("", response_model=RunList, responses=responses(401, 403, 422), summary="List runs")
def list_runs(
    _user: Reader,
    index: Index,
    status: RunStatusName | None = None,
    owner: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RunList:
    """Waiting runs in the order they will run, then the others newest first (from every
    server sharing the output folder)."""
    rows = index.rows()
    if status is not None:
        rows = [r for r in rows if _known_status(r["status"]) == status]
    if owner is not None:
        rows = [r for r in rows if r["owner"] == owner]
    items = [
        RunSummary.model_validate({**row, "status": _known_status(row["status"])})
        for row in rows[offset : offset + limit]
    ]
    return RunList(items=items, total=len(rows), limit=limit, offset=offset)


@router.get(
    "/{run_id}", response_model=RunDetail, responses=responses(401, 403, 404, 422), summary="A run"
)
def get_run(run_id: RunId, _user: Reader, index: Index) -> RunDetail:
    """The run's status, headline, quality, step timings, configuration and links."""
    return _detail(index, run_id)


@router.get(
    "/{run_id}/manifest",
    response_model=dict[str, Any],
    responses=responses(401, 403, 404, 422),
    summary="A run's manifest",
)
def get_manifest(run_id: RunId, _user: Reader, index: Index) -> dict[str, Any]:
    """The run's whole manifest: parameters (secrets masked), sources, input hashes, versions,
    timings, row counts, status and error."""
    return _find(index, run_id)[1]


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
def get_report(run_id: RunId, _user: Reader, settings: Settings, index: Index) -> FileResponse:
    """The self-contained HTML report (also of a failed or interrupted run, marked so)."""
    folder = settings.output_root / run_id
    if not (folder / "report.html").is_file():
        detail = _detail(index, run_id)  # 404 if there is no such run
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
    request: Request, run_id: RunId, user: Canceller, queue: Queue, index: Index
) -> CancelResult:
    """Cancel a waiting run (it never starts) or stop a running one (it ends interrupted, with
    its report). Analysts cancel their own runs; admins any."""
    request.state.audit = {"run_id": run_id}
    detail = _detail(index, run_id)
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
        status = _detail(index, run_id).status
        raise Problem(
            409,
            "not-cancellable",
            "The run cannot be cancelled",
            f"run {run_id} is {status}: only a waiting or running run can be cancelled",
        ) from None
    return CancelResult(run_id=run_id, status=outcome)


@router.get(
    "/{run_id}/notebook",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/x-ipynb+json": {}}},
        **responses(401, 403, 404, 409, 422),
    },
    summary="A run's executed notebook",
)
def get_notebook(run_id: RunId, _user: Reader, settings: Settings, index: Index) -> FileResponse:
    """The executed valuation notebook (``.ipynb``), as the report was published from it."""
    path = settings.output_root / run_id / "valuation.ipynb"
    if not path.is_file():
        detail = _detail(index, run_id)  # 404 if there is no such run
        raise Problem(
            409 if detail.status in ("queued", "starting", "running") else 404,
            "notebook-not-found",
            "No executed notebook",
            f"run {run_id} is {detail.status} and has no executed notebook",
            hint=f"GET /runs/{run_id}/report says why",
        )
    return FileResponse(
        path,
        media_type="application/x-ipynb+json",
        filename=f"{run_id}.ipynb",
    )
