"""Run history: a Polars view over the run folders' manifests and result tables.

``run_history(root)`` lists runs (one row each); ``run_diff(root, a, b)`` compares two runs: values
per company and method, and the parameters and inputs that differ.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl

from wfo_kit.config import _flatten
from wfo_kit.errors import ConfigurationError, did_you_mean

HISTORY_SCHEMA = {
    "run_id": pl.String,
    "status": pl.String,
    "started": pl.Datetime("us", "UTC"),
    "finished": pl.Datetime("us", "UTC"),
    "seconds": pl.Float64,
    "params_file": pl.String,
    "companies": pl.Int64,
    "valued": pl.Int64,
    "quality_score": pl.Float64,
    "companies_per_second": pl.Float64,
    "error": pl.String,
    "path": pl.String,
}


def _parse_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _manifests(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(Path(root).glob("*/manifest.json")):
        try:
            found.append((path.parent, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def run_history(root: Path, *, status: str | None = None) -> pl.DataFrame:
    """One row per run folder under ``root`` (newest first)."""
    rows = []
    for folder, manifest in _manifests(root):
        started = _parse_time(manifest.get("started"))
        finished = _parse_time(manifest.get("finished"))
        seconds = (finished - started).total_seconds() if started and finished else None
        quality = manifest.get("quality") or []
        rows_in = sum(q.get("rows_in", 0) for q in quality)
        rows_valid = sum(q.get("rows_valid", 0) for q in quality)
        headline = manifest.get("headline") or {}
        companies = headline.get("companies")
        error = manifest.get("error") or {}
        rows.append(
            {
                "run_id": manifest.get("run_id", folder.name),
                "status": manifest.get("status"),
                "started": started,
                "finished": finished,
                "seconds": seconds,
                "params_file": manifest.get("params_file"),
                "companies": companies,
                "valued": headline.get("valued"),
                "quality_score": rows_valid / rows_in if rows_in else None,
                "companies_per_second": companies / seconds if companies and seconds else None,
                "error": error.get("message"),
                "path": str(folder),
            }
        )
    frame = pl.DataFrame(rows, schema=HISTORY_SCHEMA)
    if status:
        frame = frame.filter(pl.col("status") == status)
    return frame.sort("started", descending=True, nulls_last=True)


def step_durations(root: Path) -> pl.DataFrame:
    """One row per run and pipeline step: seconds, rows out (for the history dashboard)."""
    rows = []
    for _, manifest in _manifests(root):
        for step in manifest.get("steps") or []:
            rows.append(
                {
                    "run_id": manifest.get("run_id"),
                    "started": _parse_time(manifest.get("started")),
                    "step": step.get("step"),
                    "seconds": step.get("seconds"),
                    "rows_out": step.get("rows_out"),
                }
            )
    schema = {
        "run_id": pl.String,
        "started": pl.Datetime("us", "UTC"),
        "step": pl.String,
        "seconds": pl.Float64,
        "rows_out": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


def load_manifest(root: Path, run_id: str) -> dict[str, Any]:
    path = Path(root) / run_id / "manifest.json"
    if not path.is_file():
        known = [p.parent.name for p in Path(root).glob("*/manifest.json")]
        msg = f"no run {run_id!r} under {root}{did_you_mean(run_id, known)}"
        raise ConfigurationError(msg, hint="`wfo runs` lists the runs")
    return json.loads(path.read_text(encoding="utf-8"))


def run_diff(root: Path, run_a: str, run_b: str) -> dict[str, pl.DataFrame]:
    """Compare two runs: ``values`` per company and method, ``parameters``, ``inputs``."""
    manifests = [load_manifest(root, r) for r in (run_a, run_b)]
    frames = []
    for run_id in (run_a, run_b):
        path = Path(root) / run_id / "results" / "valuations.parquet"
        frames.append(
            pl.read_parquet(path).select("company_id", "method", "value_per_share")
            if path.is_file()
            else pl.DataFrame(
                schema={"company_id": pl.String, "method": pl.String, "value_per_share": pl.Float64}
            )
        )
    values = (
        frames[0]
        .rename({"value_per_share": "value_a"})
        .join(
            frames[1].rename({"value_per_share": "value_b"}),
            on=["company_id", "method"],
            how="full",
            coalesce=True,
        )
        .with_columns(
            (pl.col("value_b") - pl.col("value_a")).alias("change"),
            ((pl.col("value_b") / pl.col("value_a")) - 1).alias("change_pct"),
        )
        .sort("company_id", "method")
    )
    configs = [_flatten(m.get("config") or {}) for m in manifests]
    keys = sorted(set(configs[0]) | set(configs[1]))
    parameters = pl.DataFrame(
        [
            (k, json.dumps(configs[0].get(k)), json.dumps(configs[1].get(k)))
            for k in keys
            if configs[0].get(k) != configs[1].get(k)
        ],
        schema=["key", "run_a", "run_b"],
        orient="row",
    )
    hashes = [m.get("inputs_sha256") or {} for m in manifests]
    tables = sorted(set(hashes[0]) | set(hashes[1]))
    inputs = pl.DataFrame(
        [
            (t, hashes[0].get(t), hashes[1].get(t))
            for t in tables
            if hashes[0].get(t) != hashes[1].get(t)
        ],
        schema=["table", "sha256_a", "sha256_b"],
        orient="row",
    )
    return {"values": values, "parameters": parameters, "inputs": inputs}
