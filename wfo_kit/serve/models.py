"""Request and response models: the OpenAPI schema is the API's contract."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

#: A run id as the API accepts it: letters, digits, ``-``, ``_`` and dots (never two in a row,
#: never first), so that no id names a hidden folder, a parent or a path.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
TABLE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
RunStatusName = Literal[
    "queued",
    "starting",
    "running",
    "succeeded",
    "failed",
    "interrupted",
    "incomplete",
    "unreadable",
]


class RunError(BaseModel):
    """Why a run failed (the toolkit's structured error)."""

    class_: str | None = Field(None, alias="class")
    message: str | None = None
    step: str | None = None
    table: str | None = None
    column: str | None = None
    hint: str | None = None

    model_config = {"populate_by_name": True}


class _RunState(BaseModel):
    """Who and when, for a run in a listing and on its own."""

    run_id: str
    status: RunStatusName
    owner: str | None = None
    submitted: dt.datetime | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None


class RunSummary(_RunState):
    """One run in a listing."""

    seconds: float | None = None
    companies: int | None = None
    valued: int | None = None
    quality_score: float | None = None
    error: str | None = None


class RunList(BaseModel):
    """A page of runs, newest first (waiting and running ones of this server first)."""

    items: list[RunSummary]
    total: int
    limit: int
    offset: int


class RunLinks(BaseModel):
    self: str
    log: str
    report: str
    notebook: str
    manifest: str
    results: dict[str, str] = Field(
        default_factory=dict, description="table -> URL (.parquet; .csv and .json also served)"
    )


class RunDetail(_RunState):
    """A run's status and the parts of its manifest an API client needs."""

    content_hash: str | None = None
    rerun_of: str | None = None
    headline: dict[str, Any] | None = None
    quality: list[dict[str, Any]] | None = None
    steps: list[dict[str, Any]] | None = None
    timings_seconds: dict[str, float] | None = None
    config: dict[str, Any] | None = Field(None, description="the effective configuration, masked")
    results: list[str] = Field(default_factory=list, description="result table names")
    error: RunError | None = None
    links: RunLinks


class CancelResult(BaseModel):
    run_id: str
    status: Literal["cancelled", "cancelling"] = Field(
        description="cancelled: it had not started; cancelling: its worker was asked to stop "
        "(the run ends as interrupted, with its report)"
    )


class QualityRow(BaseModel):
    """One input table's data quality (the pipeline's ``quality`` table)."""

    model_config = {"extra": "allow"}

    table: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    score: float | None = None


class ValidationResult(BaseModel):
    """A parameters document that is valid, its effective configuration and, when its data
    could be loaded, the data's quality and quarantine (what the run's validate step decides)."""

    valid: Literal[True] = True
    config: dict[str, Any] = Field(description="the effective configuration, secrets masked")
    sources: dict[str, str] = Field(description="setting -> where its value came from")
    data_checked: bool = Field(
        description="whether the data was loaded and validated (false: `check_data=false`)"
    )
    quality: list[QualityRow] = Field(
        default_factory=list, description="per input table: rows in, valid, quarantined, score"
    )
    quarantine: list[dict[str, Any]] = Field(
        default_factory=list,
        description="rows set aside, each with its table, row, company, column, check, value "
        "and reason (at most `quarantine_limit`)",
    )
    quarantine_total: int = Field(0, description="rows quarantined in all")
    warnings: list[dict[str, Any]] = Field(default_factory=list)


class TableComparison(BaseModel):
    """One result table of two runs compared exactly (:func:`wfo_kit.history.compare_results`)."""

    table: str
    status: Literal["identical", "different", "missing"]
    rows_a: int | None = None
    rows_b: int | None = None
    detail: str | None = None


class RunDiff(BaseModel):
    """Two runs compared: each result table, the values per company and method, the
    parameters and inputs that differ."""

    a: str
    b: str
    tables: list[TableComparison]
    values: list[dict[str, Any]] = Field(description="company, method, value_a, value_b, change")
    parameters: list[dict[str, Any]] = Field(description="key, run_a, run_b, effect")
    inputs: list[dict[str, Any]] = Field(description="table, sha256_a, sha256_b")


class HistorySummary(BaseModel):
    """The run history at a glance."""

    total: int
    by_status: dict[str, int]
    by_owner: dict[str, int]
    median_seconds: float | None = Field(None, description="of the finished runs")
    mean_quality_score: float | None = None
    last_succeeded: str | None = Field(None, description="the newest succeeded run's id")
    first_started: dt.datetime | None = None
    last_started: dt.datetime | None = None


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    workers: int
    queued: int
    running: int
    capacity: int
