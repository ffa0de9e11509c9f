"""``/diff`` and ``/history``: two runs compared, and the run history at a glance."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from wfo_kit.serve.auth import Reader
from wfo_kit.serve.deps import Index, Settings
from wfo_kit.serve.models import RUN_ID_PATTERN, HistorySummary, RunDiff, TableComparison
from wfo_kit.serve.problems import Problem, responses

router = APIRouter(tags=["history"])
RunQuery = Annotated[str, Query(pattern=RUN_ID_PATTERN, description="a run id")]


@router.get(
    "/diff", response_model=RunDiff, responses=responses(401, 403, 404, 409, 422), summary="Diff"
)
async def diff_runs(
    a: RunQuery, b: RunQuery, _user: Reader, settings: Settings, index: Index
) -> RunDiff:
    """Compare two finished runs: each result table exactly (identical, different with the first
    difference, or missing), the value per share per company and method, and the parameters and
    inputs that differ."""
    from wfo_kit.history import compare_results, run_diff

    for name, run_id in (("a", a), ("b", b)):
        found = index.find(run_id)
        if found is None:
            raise _missing(run_id, name)
        if found[0].kind != "final":
            raise Problem(
                409,
                "run-not-finished",
                "The run has not finished",
                f"run {run_id} is {found[1].get('status')}: compare finished runs",
                field=name,
            )

    def compare() -> RunDiff:
        root = settings.output_root
        tables = compare_results(root / a, root / b)
        parts = run_diff(root, a, b)
        return RunDiff(
            a=a,
            b=b,
            tables=[TableComparison.model_validate(row) for row in tables.to_dicts()],
            values=parts["values"].to_dicts(),
            parameters=parts["parameters"].to_dicts(),
            inputs=parts["inputs"].to_dicts(),
        )

    return await run_in_threadpool(compare)


def _missing(run_id: str, name: str) -> Problem:
    return Problem(
        404,
        "run-not-found",
        "No such run",
        f"no run {run_id!r} on this server",
        field=name,
        hint="GET /runs lists the runs",
    )


@router.get(
    "/history", response_model=HistorySummary, responses=responses(401, 403), summary="History"
)
def history(_user: Reader, index: Index) -> HistorySummary:
    """Every run at a glance: how many, by status and owner, how long they take, data quality."""
    rows = index.rows()
    seconds = [r["seconds"] for r in rows if r["seconds"] is not None]
    scores = [r["quality_score"] for r in rows if r["quality_score"] is not None]
    started = [r["started"] for r in rows if r["started"] is not None]
    succeeded = [r for r in rows if r["status"] == "succeeded" and r["started"] is not None]
    return HistorySummary(
        total=len(rows),
        by_status=dict(Counter(str(r["status"]) for r in rows)),
        by_owner=dict(Counter(r["owner"] or "(cli)" for r in rows)),
        median_seconds=statistics.median(seconds) if seconds else None,
        mean_quality_score=statistics.fmean(scores) if scores else None,
        last_succeeded=max(succeeded, key=lambda r: r["started"])["run_id"] if succeeded else None,
        first_started=min(started) if started else None,
        last_started=max(started) if started else None,
    )
