"""Prometheus metrics of runs, through ``prometheus_client`` (the ``ops`` extra).

The run folders' manifests are the source of truth (several ``wfo serve`` instances may share one
outputs folder), so the figures are built from them: :func:`runs_registry` for any set of runs,
:func:`write_metrics_file` for node exporter's textfile collector (``wfo run/batch
--metrics-file``, written to a temporary name and renamed), and ``GET /metrics`` of ``wfo serve``
(:mod:`wfo_kit.serve.metrics`), which adds the server's own counters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

#: Buckets for whole runs (a warm report is a few seconds; a cold batch run can take minutes).
RUN_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
#: Buckets for one step (validation of a small file is milliseconds).
STEP_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


def _seconds(manifest: dict[str, Any]) -> float | None:
    started, finished = manifest.get("started"), manifest.get("finished")
    if not started or not finished:
        return None
    delta = dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)
    return delta.total_seconds()


def runs_registry(
    manifests: Iterable[dict[str, Any]], registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """A registry holding the run metrics of ``manifests`` (each a run's ``manifest.json``).

    Counters and histograms sum over the runs; the gauges (quality score, companies valued per
    second, peak memory) are those of the latest run that has them.
    """
    registry = registry or CollectorRegistry()
    runs = Counter("wfo_runs", "Runs by outcome", ["outcome"], registry=registry)
    run_seconds = Histogram(
        "wfo_run_duration_seconds", "Wall time of a run", buckets=RUN_BUCKETS, registry=registry
    )
    step_seconds = Histogram(
        "wfo_step_duration_seconds",
        "Wall time of one step of a run (pipeline steps, report and publish)",
        ["step"],
        buckets=STEP_BUCKETS,
        registry=registry,
    )
    rows = Counter("wfo_rows_processed", "Input rows validated", registry=registry)
    quarantined = Counter("wfo_rows_quarantined", "Input rows quarantined", registry=registry)
    quality = Gauge("wfo_data_quality_score", "Valid rows / rows in, latest run", registry=registry)
    speed = Gauge(
        "wfo_companies_valued_per_second", "Companies / run seconds, latest run", registry=registry
    )
    memory = Gauge(
        "wfo_peak_memory_bytes",
        "Peak resident memory of a run's kernel and of the process that ran it, latest run",
        registry=registry,
    )
    cpu = Counter("wfo_cpu_seconds", "CPU seconds used by runs", registry=registry)
    kernels = (
        Counter("wfo_kernel_starts", "Kernels started for runs", registry=registry),
        Counter("wfo_kernel_reuses", "Warm kernels reused by runs", registry=registry),
    )
    for outcome in ("succeeded", "failed", "interrupted"):
        runs.labels(outcome)  # every outcome present, at 0, so rates can be computed at once
    ordered = sorted(manifests, key=lambda m: str(m.get("started") or ""))
    for manifest in ordered:
        _observe(manifest, runs, run_seconds, step_seconds, rows, quarantined, cpu, kernels)
        seconds = _seconds(manifest)
        quality_rows = manifest.get("quality") or []
        rows_in = sum(q.get("rows_in") or 0 for q in quality_rows)
        if rows_in:
            quality.set(sum(q.get("rows_valid") or 0 for q in quality_rows) / rows_in)
        companies = (manifest.get("headline") or {}).get("companies")
        if companies and seconds:
            speed.set(companies / seconds)
        peaks = [s.get("max_rss_mb") or 0 for s in manifest.get("steps") or []]
        peaks.append((manifest.get("resources") or {}).get("max_rss_mb") or 0)
        if max(peaks):
            memory.set(max(peaks) * 1024 * 1024)
    return registry


def _observe(manifest: dict[str, Any], runs: Counter, run_seconds: Histogram, *rest: Any) -> None:
    step_seconds, rows, quarantined, cpu, (starts, reuses) = rest
    status = manifest.get("status")
    if status not in ("succeeded", "failed", "interrupted"):
        return  # still running or incomplete: counted once it ends
    runs.labels(status).inc()
    seconds = _seconds(manifest)
    if seconds is not None:
        run_seconds.observe(seconds)
    for step in manifest.get("steps") or []:
        if step.get("seconds") is not None:
            step_seconds.labels(step.get("step") or "unknown").observe(step["seconds"])
    timings = manifest.get("timings_seconds") or {}
    for name, step in (("execute", "report"), ("export", "publish")):
        if timings.get(name) is not None:
            step_seconds.labels(step).observe(timings[name])
    for table in manifest.get("quality") or []:
        rows.inc(table.get("rows_in") or 0)
        quarantined.inc(table.get("rows_quarantined") or 0)
    resources = manifest.get("resources") or {}
    cpu.inc(resources.get("cpu_seconds") or 0)
    starts.inc(resources.get("kernel_starts") or 0)
    reuses.inc(resources.get("kernel_reuses") or 0)


def run_manifests(root: Path, run_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The manifests under ``root`` (only ``run_ids`` when given)."""
    from wfo_kit.history import _manifests

    wanted = set(run_ids) if run_ids is not None else None
    return [m for _, m in _manifests(root) if wanted is None or m.get("run_id") in wanted]


def write_metrics_file(path: Path, manifests: Iterable[dict[str, Any]]) -> Path:
    """Write the run metrics in the text exposition format, atomically (temporary name, rename),
    for node exporter's textfile collector (whose folder reads only ``*.prom`` files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), runs_registry(manifests))
    return path
