"""``/runs/{run_id}/results/{table}.{json|csv|parquet}``: a run's result tables.

A table is served as the run wrote it when it wrote that format, else converted from the format it
wrote (Parquet first: it keeps the column types).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from wfo_kit.serve.auth import Reader
from wfo_kit.serve.deps import RunId, Settings
from wfo_kit.serve.models import TABLE_PATTERN
from wfo_kit.serve.problems import Problem, responses

router = APIRouter(prefix="/runs", tags=["results"])

MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
_NAME = re.compile(TABLE_PATTERN[:-1] + r"\.(json|csv|parquet)$")


def _convert(source: Path, fmt: str) -> bytes:
    import polars as pl

    readers = {"parquet": pl.read_parquet, "csv": pl.read_csv, "json": pl.read_json}
    frame = readers[source.suffix.lstrip(".")](source)
    buffer = io.BytesIO()
    {"parquet": frame.write_parquet, "csv": frame.write_csv, "json": frame.write_json}[fmt](buffer)
    return buffer.getvalue()


@router.get(
    "/{run_id}/results/{name}",
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        **responses(401, 403, 404, 422),
    },
    summary="A result table",
)
def get_result(
    run_id: RunId,
    name: Annotated[
        str, PathParam(pattern=_NAME.pattern, description="table.json, table.csv or table.parquet")
    ],
    _user: Reader,
    settings: Settings,
) -> Response:
    """One result table of a finished run, as JSON (an array of rows), CSV or Parquet."""
    table, _, fmt = name.rpartition(".")
    results = settings.output_root / run_id / "results"
    for source in (results / f"{table}.{f}" for f in (fmt, "parquet", "csv", "json")):
        if source.is_file():
            media = MEDIA_TYPES[fmt]
            if source.suffix == f".{fmt}":
                return FileResponse(source, media_type=media)
            return Response(_convert(source, fmt), media_type=media)
    raise Problem(
        404,
        "table-not-found",
        "No such result table",
        f"run {run_id} has no result table {table!r} (or has not finished)",
        field="name",
        hint=f"GET /runs/{run_id} lists its tables",
    )
