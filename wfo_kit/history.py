"""Run history: a Polars view over the run folders' manifests and result tables.

``run_history(root)`` lists runs (one row each); ``run_diff(root, a, b)`` compares two runs: values
per company and method, and the parameters and inputs that differ.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import polars as pl

from wfo_kit.attribution import Attribution, attribute_runs
from wfo_kit.config import _flatten
from wfo_kit.errors import ConfigurationError, did_you_mean
from wfo_kit.trust import plotly_text

HISTORY_SCHEMA = {
    "run_id": pl.String,
    "status": pl.String,
    "started": pl.Datetime("us", "UTC"),
    "finished": pl.Datetime("us", "UTC"),
    "seconds": pl.Float64,
    "params_file": pl.String,
    "owner": pl.String,
    "companies": pl.Int64,
    "valued": pl.Int64,
    "quality_score": pl.Float64,
    "companies_per_second": pl.Float64,
    "error": pl.String,
    "path": pl.String,
}


def _parse_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


PARTIAL_SUFFIX = ".partial"


def read_manifest(path: Path) -> dict[str, Any]:
    """A run's manifest, or why it cannot be read: ``incomplete`` (not written yet) or
    ``unreadable`` (with the reason), never an exception."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            msg = "not a JSON object"
            raise ValueError(msg)
    except FileNotFoundError:
        return {"status": "incomplete", "error": {"message": "stopped before its manifest"}}
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        reason = f"manifest.json cannot be read: {type(exc).__name__}: {exc}"
        return {"status": "unreadable", "error": {"message": reason}}
    return manifest


def _manifests(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every run folder under ``root`` with its manifest, finished or not.

    A run still being built (or one whose process died, or whose disk filled up) lives in a
    hidden ``.<run_id>.partial`` folder: it is listed as ``running`` while its process is alive,
    else as ``incomplete``. A manifest that cannot be read is listed as ``unreadable`` with the
    reason, never dropped.
    """
    found = []
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
    for folder in folders:
        partial = folder.name.startswith(".") and folder.name.endswith(PARTIAL_SUFFIX)
        path = folder / "manifest.json"
        if not partial and not path.exists():
            continue  # not a run folder (e.g. bench/)
        run_id = folder.name[1 : -len(PARTIAL_SUFFIX)] if partial else folder.name
        manifest = read_manifest(path)
        manifest.setdefault("run_id", run_id)
        if partial:
            manifest = _partial_state(manifest)
        found.append((folder, manifest))
    return found


def _partial_state(manifest: dict[str, Any]) -> dict[str, Any]:
    """``running`` if the process that claimed the folder is alive here, else ``incomplete``."""
    if manifest.get("status") == "running" and _alive(manifest.get("pid"), manifest.get("host")):
        return manifest
    if manifest.get("status") in ("incomplete", "unreadable"):
        return manifest
    was = manifest.get("status")
    reason = (
        "its process is gone; the run never finished"
        if was == "running"
        else f"it ended ({was}) but its folder could not be finished (disk full or read-only?)"
    )
    error = manifest.get("error") or {}
    message = f"{reason}; {error['message']}" if error.get("message") else reason
    return {**manifest, "status": "incomplete", "error": {**error, "message": message}}


def _alive(pid: object, host: object) -> bool:
    if not isinstance(pid, int):
        return False
    if host != platform.node():
        return True  # another machine's run (a shared outputs folder): it cannot be checked here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has exited but is not reaped yet (its parent died with it, say) still
    takes signals: it is dead all the same. Linux's /proc tells; elsewhere: not known, no."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def history_row(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """One run's row of :func:`run_history` (its columns: :data:`HISTORY_SCHEMA`)."""
    started = _parse_time(manifest.get("started"))
    finished = _parse_time(manifest.get("finished"))
    seconds = (finished - started).total_seconds() if started and finished else None
    quality = manifest.get("quality") or []
    rows_in = sum(q.get("rows_in", 0) for q in quality)
    rows_valid = sum(q.get("rows_valid", 0) for q in quality)
    headline = manifest.get("headline") or {}
    companies = headline.get("companies")
    error = manifest.get("error") or {}
    return {
        "run_id": manifest.get("run_id", folder.name),
        "status": manifest.get("status"),
        "started": started,
        "finished": finished,
        "seconds": seconds,
        "params_file": manifest.get("params_file"),
        "owner": manifest.get("owner"),
        "companies": companies,
        "valued": headline.get("valued"),
        "quality_score": rows_valid / rows_in if rows_in else None,
        "companies_per_second": companies / seconds if companies and seconds else None,
        "error": error.get("message"),
        "path": str(folder),
    }


def run_history(root: Path, *, status: str | None = None) -> pl.DataFrame:
    """One row per run folder under ``root`` (newest first)."""
    rows = [history_row(folder, manifest) for folder, manifest in _manifests(root)]
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
    """The manifest of one run, finished or not (see :func:`run_history` for the states)."""
    for folder, manifest in _manifests(root):
        if manifest.get("run_id") == run_id or folder.name == run_id:
            return manifest
    known = [str(m.get("run_id")) for _, m in _manifests(root)]
    msg = f"no run {run_id!r} under {root}{did_you_mean(run_id, known)}"
    raise ConfigurationError(msg, hint="`wfo runs` lists the runs")


def run_diff(root: Path, run_a: str, run_b: str) -> dict[str, pl.DataFrame]:
    """Compare two runs: ``values`` per company and method, ``parameters``, ``inputs``, and
    ``effects``: the settings that applied to none or only some companies in either run (from
    each manifest's ``setting_effects``). Each differing parameter's ``effect`` says how far it
    applied ("applies to 0 of 38 companies" in both runs, ...), null where it applied fully."""
    manifests = [load_manifest(root, r) for r in (run_a, run_b)]
    frames = []
    for run_id in (run_a, run_b):
        path = _run_folder(root, run_id) / "results" / "valuations.parquet"
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
    effects = [_effects_of(m) for m in manifests]
    parameters = pl.DataFrame(
        [
            (k, json.dumps(configs[0].get(k)), json.dumps(configs[1].get(k)), _effect(effects, k))
            for k in keys
            if configs[0].get(k) != configs[1].get(k)
        ],
        schema={"key": pl.String, "run_a": pl.String, "run_b": pl.String, "effect": pl.String},
        orient="row",
    )
    settings = sorted(set(effects[0]) | set(effects[1]))
    effect_frame = pl.DataFrame(
        [
            (s, (effects[0].get(s) or {}).get("note"), (effects[1].get(s) or {}).get("note"))
            for s in settings
        ],
        schema={"setting": pl.String, "note_a": pl.String, "note_b": pl.String},
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
    return {
        "values": values,
        "blend": blend_diff(root, run_a, run_b),
        "parameters": parameters,
        "inputs": inputs,
        "effects": effect_frame,
    }


#: A blended value that moves by at least this much per share counts as changed (one cent).
CHANGED = 0.005


def _recorded_blend(root: Path, run_id: str) -> pl.DataFrame | None:
    path = _run_folder(root, run_id) / "results" / "blend.parquet"
    return pl.read_parquet(path) if path.is_file() else None


def _run_folder(root: Path, run_id: str) -> Path:
    for folder, manifest in _manifests(root):
        if manifest.get("run_id") == run_id or folder.name == run_id:
            return folder
    return Path(root) / run_id


def blend_diff(root: Path, run_a: str, run_b: str) -> pl.DataFrame:
    """Blended value per share (low, base, high) of each company in two runs, and its change.

    ``changed`` is true where the base moved by a cent or more, or the company has a blended
    value in one run only.
    """
    empty = pl.DataFrame(
        schema={"company_id": pl.String, "low": pl.Float64, "base": pl.Float64, "high": pl.Float64}
    )
    recorded = (_recorded_blend(root, r) for r in (run_a, run_b))
    a, b = ((empty if f is None else f).select(empty.columns) for f in recorded)
    joined = a.join(b, on="company_id", how="full", coalesce=True, suffix="_b").rename(
        {"low": "low_a", "base": "base_a", "high": "high_a"}
    )
    change = pl.col("base_b") - pl.col("base_a")
    return joined.select(
        "company_id", "base_a", "base_b",
        change.alias("change"),
        (pl.col("base_b") / pl.col("base_a") - 1).alias("change_pct"),  # a fraction: 0.05 is 5%
        "low_a", "low_b", "high_a", "high_b",
        (
            (change.abs() >= CHANGED).fill_null(False)
            | (pl.col("base_a").is_null() != pl.col("base_b").is_null())
        ).alias("changed"),
    ).sort("company_id")  # fmt: skip


def diff_summary(blend: pl.DataFrame, *, top: int = 5) -> tuple[str, pl.DataFrame]:
    """One sentence on how many companies moved, and the ``top`` largest moves."""
    both = blend.filter(pl.col("base_a").is_not_null() & pl.col("base_b").is_not_null())
    moved = both.filter(pl.col("changed"))
    only_a = blend.filter(pl.col("base_a").is_not_null() & pl.col("base_b").is_null()).height
    only_b = blend.filter(pl.col("base_a").is_null() & pl.col("base_b").is_not_null()).height
    line = (
        f"{both.height} companies have a blended value in both runs: {moved.height} changed by a "
        f"cent or more per share, {both.height - moved.height} unchanged; "
        f"{only_a} only in the first run, {only_b} only in the second"
    )
    largest = (
        moved.sort(pl.col("change").abs(), descending=True)
        .head(top)
        .select("company_id", "base_a", "base_b", "change", "change_pct")
    )
    return line, largest


def diff_attribution(root: Path, run_a: str, run_b: str) -> Attribution:
    """Each company's change in blended value split into its causes (:mod:`wfo_kit.attribution`)."""
    manifests = (load_manifest(root, run_a), load_manifest(root, run_b))
    recorded = (_recorded_blend(root, run_a), _recorded_blend(root, run_b))
    return attribute_runs(manifests, recorded, (run_a, run_b))


def _effects_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = manifest.get("setting_effects")
    return {r["setting"]: r for r in rows if isinstance(r, dict)} if isinstance(rows, list) else {}


def _effect(effects: list[dict[str, dict[str, Any]]], key: str) -> str | None:
    """How far the setting holding ``key`` applied in each run: its note's headline."""
    heads = []
    for run in effects:
        row = next((r for s, r in run.items() if key == s or key.startswith(s + ".")), None)
        heads.append(str(row["note"]).split(":")[0] if row else None)
    if heads[0] == heads[1]:
        return None if heads[0] is None else f"{heads[0]} (both runs)"
    return f"{heads[0] or 'applies'} -> {heads[1] or 'applies'}"


COMPARISON_SCHEMA = {
    "table": pl.String,
    "status": pl.String,
    "rows_a": pl.Int64,
    "rows_b": pl.Int64,
    "detail": pl.String,
}


def compare_results(run_a: Path, run_b: Path) -> pl.DataFrame:
    """Each result table of two run folders compared exactly, row order included.

    One row per table: ``identical``, ``different`` (with the first difference: a column, or the
    row count), or ``missing`` in one run. Floats must be equal to the bit: a rerun of the same
    configuration on the same inputs reproduces every table exactly.
    """
    tables_a = {p.stem: p for p in (Path(run_a) / "results").glob("*.parquet")}
    tables_b = {p.stem: p for p in (Path(run_b) / "results").glob("*.parquet")}
    rows = []
    for table in sorted({*tables_a, *tables_b}):
        a = pl.read_parquet(tables_a[table]) if table in tables_a else None
        b = pl.read_parquet(tables_b[table]) if table in tables_b else None
        if a is None or b is None:
            where = "first" if a is None else "second"
            rows.append((table, "missing", _height(a), _height(b), f"not in the {where} run"))
            continue
        detail = _first_difference(a, b)
        status = "identical" if detail is None else "different"
        rows.append((table, status, a.height, b.height, detail))
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA, orient="row")


def _height(frame: pl.DataFrame | None) -> int | None:
    return None if frame is None else frame.height


def _first_difference(a: pl.DataFrame, b: pl.DataFrame) -> str | None:
    if a.schema != b.schema:
        return f"columns differ: {list(a.schema.items())} vs {list(b.schema.items())}"
    if a.height != b.height:
        return f"{a.height} rows vs {b.height}"
    for column in a.columns:
        same = a[column].eq_missing(b[column])
        if not same.all():
            row = int(same.arg_min() or 0)
            values = f"{a[column][row]!r} vs {b[column][row]!r}"
            return f"column {column!r} first differs at row {row}: {values}"
    return None


# --------------------------------------------------------------------------------------------
# The history dashboard (notebooks/history.ipynb -> <output root>/history.html): figures and the
# runs table. Pure: frames in, a figure or HTML out.

#: Colours per outcome, the same in every chart of the dashboard.
STATUS_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "interrupted": "#ef6c00",
    "running": "#1565c0",
    "incomplete": "#6d4c41",
    "unreadable": "#616161",
}
_DAY_MS = 86_400_000


def value_trends(root: Path) -> pl.DataFrame:
    """Blended value per share of each company in each succeeded run (oldest run first).

    run_id, started, company_id, low, base, high; read from each run's ``results/blend.parquet``.
    """
    schema = {"run_id": pl.String, "started": pl.Datetime("us", "UTC"), "company_id": pl.String,
              "low": pl.Float64, "base": pl.Float64, "high": pl.Float64}  # fmt: skip
    frames = []
    for folder, manifest in _manifests(root):
        path = folder / "results" / "blend.parquet"
        if manifest.get("status") != "succeeded" or not path.is_file():
            continue
        frames.append(
            pl.read_parquet(path, columns=["company_id", "low", "base", "high"]).with_columns(
                pl.lit(manifest.get("run_id", folder.name)).alias("run_id"),
                pl.lit(_parse_time(manifest.get("started"))).alias("started"),
            )
        )
    if not frames:
        return pl.DataFrame(schema=schema)
    return (
        pl.concat(frames, how="diagonal_relaxed")
        .select(list(schema))
        .cast(schema)
        .sort("started", "company_id")
    )


#: Readers of a run's result tables, in the order tried: the run wrote whichever of these
#: ``output.formats`` named (an xlsx workbook alone is not read back).
_RESULT_READERS = {"parquet": pl.read_parquet, "csv": pl.read_csv, "json": pl.read_json}
ACCURACY_SCHEMA = {"run_id": pl.String, "started": pl.Datetime("us", "UTC"), "method": pl.String,
                   "companies": pl.Int64, "median_abs_log_error": pl.Float64,
                   "share_within_20pct": pl.Float64}  # fmt: skip


def _result_table(folder: Path, name: str) -> pl.DataFrame | None:
    """``results/<name>`` in the first format the run wrote, or None (none written)."""
    for suffix, read in _RESULT_READERS.items():
        path = folder / "results" / f"{name}.{suffix}"
        if path.is_file():
            try:
                return read(path)
            except (OSError, ValueError, pl.exceptions.PolarsError):
                continue  # a damaged copy: try the run's other formats, else the run is skipped
    return None


def accuracy_trends(root: Path) -> pl.DataFrame:
    """Valuation accuracy of each succeeded run, per method, over all sectors (oldest first).

    run_id, started, method, companies, median_abs_log_error, share_within_20pct; read from each
    run's ``results/accuracy`` (parquet, csv or json). A succeeded run without that table (it
    predates it, or its outputs were off) gives one row with a null ``method``: the figure says
    it was skipped.
    """
    frames = []
    for folder, manifest in _manifests(root):
        if manifest.get("status") != "succeeded":
            continue
        run = [
            pl.lit(manifest.get("run_id", folder.name)).alias("run_id"),
            pl.lit(_parse_time(manifest.get("started"))).alias("started"),
        ]
        table = _result_table(folder, "accuracy")
        if table is None or "method" not in table.columns:
            frames.append(pl.DataFrame({"method": [None]}, schema={"method": pl.String}))
        else:
            frames.append(table.filter(pl.col("sector") == "all"))
        frames[-1] = frames[-1].with_columns(run)
    if not frames:
        return pl.DataFrame(schema=ACCURACY_SCHEMA)
    return (
        pl.concat(frames, how="diagonal_relaxed")
        .select(list(ACCURACY_SCHEMA))
        .cast(ACCURACY_SCHEMA)
        .sort("started", "method", nulls_last=True, maintain_order=True)
    )


def accuracy_figure(trends: pl.DataFrame) -> Any:
    """Median absolute log error (top) and share within +-20 % of the price (bottom) per method
    across runs; the note names the runs skipped for having no accuracy table."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    shown = trends.with_columns(_escaped("method"), _escaped("run_id"))
    skipped = shown.filter(pl.col("method").is_null())["run_id"].unique(maintain_order=True)
    measured = shown.filter(pl.col("method").is_not_null())
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for i, method in enumerate(measured["method"].unique(maintain_order=True).sort().to_list()):
        part = measured.filter(pl.col("method") == method)
        common = {"x": part["started"].to_list(), "mode": "lines+markers", "name": method,
                  "legendgroup": method, "text": part["run_id"].to_list(),
                  "line": {"color": colours[i % len(colours)]}}  # fmt: skip
        fig.add_trace(
            go.Scatter(y=part["median_abs_log_error"].to_list(), **common,
                       hovertemplate=f"{method}<br>%{{text}}<br>%{{y:.3f}}<extra></extra>"),
            row=1, col=1,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(y=part["share_within_20pct"].to_list(), showlegend=False, **common,
                       hovertemplate=f"{method}<br>%{{text}}<br>%{{y:.0%}}<extra></extra>"),
            row=2, col=1,
        )  # fmt: skip
    runs = measured["run_id"].n_unique()
    note = f"{runs} runs with an accuracy table"
    if skipped.len():
        listed = ", ".join(skipped.head(5).to_list()) + (", ..." if skipped.len() > 5 else "")
        note += (
            f"; {skipped.len()} skipped (no readable results/accuracy table, e.g. runs older "
            f"than it): {listed}"
        )
    fig.add_annotation(
        text=note, xref="paper", yref="paper", x=0, y=-0.18, showarrow=False, xanchor="left"
    )
    fig.update_layout(
        title="Valuation accuracy across runs (value / market price, all sectors)",
        legend_title_text="method",
        margin={"b": 110},
        meta={"wfo_skipped": skipped.to_list()},
    )
    fig.update_yaxes(title_text="median |ln(value / price)|", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="share within ±20 %", range=[0, 1.05], tickformat=".0%",
                     row=2, col=1)  # fmt: skip
    fig.update_xaxes(title_text="run started (UTC)", row=2, col=1)
    fig.update_xaxes(title_text="run started (UTC)", row=1, col=1)
    return fig


def _escaped(column: str) -> pl.Expr:
    """A text column as plotly.js shows literally (as :func:`wfo_kit.trust.plotly_text`)."""
    return (
        pl.col(column)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
    )


def runs_per_day_figure(runs: pl.DataFrame) -> Any:
    """Stacked bars of runs per calendar day (UTC) by outcome, on a date axis of whole days."""
    import plotly.graph_objects as go

    per_day = (
        runs.filter(pl.col("started").is_not_null())
        .with_columns(pl.col("started").dt.date().alias("day"))
        .group_by("day", "status", maintain_order=True)
        .agg(pl.len().alias("runs"))
        .sort("day", "status")
    )
    fig = go.Figure()
    for status in per_day["status"].unique(maintain_order=True).to_list():
        part = per_day.filter(pl.col("status").eq_missing(status))
        fig.add_bar(
            x=part["day"].to_list(),
            y=part["runs"].to_list(),
            name=plotly_text(status or "unknown"),
            marker_color=STATUS_COLOURS.get(status or "", "#9e9e9e"),
            width=0.8 * _DAY_MS,  # on a date axis a bar's width is in milliseconds: 80% of a day
            hovertemplate="%{x|%d %b %Y}: %{y} runs<extra>%{fullData.name}</extra>",
        )
    days = per_day["day"]
    xaxis: dict[str, Any] = {"title": {"text": "day (UTC)"}, "type": "date",
                             "tickformat": "%d %b %Y", "dtick": _DAY_MS}  # fmt: skip
    if days.len():
        first, last = days.min(), days.max()
        span = (last - first).days  # type: ignore[operator]
        pad = dt.timedelta(days=max(1, 3 - span // 2))  # a lone day is a bar, not the width
        xaxis["range"] = [str(first - pad), str(last + pad)]  # type: ignore[operator]
        if span > 14:
            xaxis.pop("dtick")  # many days: let plotly choose the ticks
    fig.update_layout(
        title="Runs per day, by outcome",
        barmode="stack",
        xaxis=xaxis,
        yaxis={
            "title": {"text": "runs"},
            "rangemode": "tozero",
            "dtick": 1 if per_day.height and per_day["runs"].max() <= 10 else None,
        },
        legend_title_text="outcome",
    )
    return fig


def quality_figure(runs: pl.DataFrame) -> Any:
    """Data-quality score (valid rows / rows in, 0 to 1) of each run over time."""
    import plotly.graph_objects as go

    scored = runs.filter(pl.col("quality_score").is_not_null()).sort("started")
    fig = go.Figure(
        go.Scatter(
            x=scored["started"].to_list(),
            y=scored["quality_score"].to_list(),
            mode="lines+markers",
            text=scored.select(_escaped("run_id"))["run_id"].to_list(),
            hovertemplate="%{text}<br>%{x|%d %b %Y %H:%M} UTC: %{y:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Data quality score per run (valid rows / rows in)",
        xaxis_title="run started (UTC)",
        yaxis={
            "title": {"text": "quality score (0 to 1)"},
            "range": [0, 1.05],  # a score of 1 stays in view
            "dtick": 0.2,
            "tickformat": ".1f",
        },
    )
    return fig


def throughput_figure(runs: pl.DataFrame) -> Any:
    """Companies valued per second of each whole run, over time."""
    import plotly.graph_objects as go

    rated = runs.filter(pl.col("companies_per_second").is_not_null()).sort("started")
    fig = go.Figure(
        go.Scatter(
            x=rated["started"].to_list(),
            y=rated["companies_per_second"].to_list(),
            mode="lines+markers",
            hovertemplate="%{x|%d %b %Y %H:%M} UTC: %{y:.2f} companies/s<extra></extra>",
        )
    )
    fig.update_layout(
        title="Throughput (companies per second, whole run)",
        xaxis_title="run started (UTC)",
        yaxis={"title": {"text": "companies per second"}, "rangemode": "tozero"},
    )
    return fig


def step_figure(steps: pl.DataFrame) -> Any:
    """Seconds each pipeline step took, one box per step over all runs."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for step in steps["step"].unique(maintain_order=True).to_list():
        part = steps.filter(pl.col("step").eq_missing(step))
        fig.add_box(y=part["seconds"].to_list(), name=plotly_text(step), boxpoints="all")
    fig.update_layout(
        title="Step durations over all runs",
        xaxis_title="pipeline step",
        yaxis={"title": {"text": "seconds"}, "rangemode": "tozero"},
        showlegend=False,
    )
    return fig


def value_trend_figure(trends: pl.DataFrame) -> Any:
    """Blended value per share of each company across runs: one line per company."""
    import plotly.graph_objects as go

    shown = trends.with_columns(_escaped("company_id"), _escaped("run_id"))
    fig = go.Figure()
    for company in shown["company_id"].unique(maintain_order=True).sort().to_list():
        part = shown.filter(pl.col("company_id") == company)
        fig.add_scatter(
            x=part["started"].to_list(),
            y=part["base"].to_list(),
            mode="lines+markers",
            name=company,
            text=part["run_id"].to_list(),
            hovertemplate=f"{company}<br>%{{text}}<br>%{{y:,.2f}} per share<extra></extra>",
        )
    fig.update_layout(
        title="Blended value per share of each company across runs",
        xaxis_title="run started (UTC)",
        yaxis_title="blended value per share (company currency)",
        legend_title_text="company",
    )
    return fig


def runs_table_html(runs: pl.DataFrame, *, history_file: Path) -> str:
    """The runs as an HTML table, each with a link to its report relative to ``history_file``.

    Every cell is escaped; a run whose folder has no ``report.html`` has no link. Links are
    relative (``<run folder>/report.html``), so they work wherever the outputs folder is copied.
    """
    import html
    from urllib.parse import quote

    from wfo_kit.display import html_table

    base = Path(history_file).resolve().parent
    links = []
    for path in runs["path"].to_list():
        report = Path(path) / "report.html"
        if not report.is_file():
            links.append("")
            continue
        try:
            relative = report.resolve().relative_to(base)
        except ValueError:  # a run folder outside the history file's folder: name it only
            links.append("")
            continue
        href = html.escape(quote(relative.as_posix()), quote=True)
        links.append(f'<a href="{href}">report</a>')
    shown = runs.select(
        "run_id", "status", "started", "seconds", "companies", "valued", "quality_score", "error"
    ).with_columns(
        pl.col("started").dt.strftime("%Y-%m-%d %H:%M:%S UTC"), pl.col("seconds").round(1)
    )
    table = html_table(shown, rows=max(shown.height, 1))
    # One link cell per row, added after escaping: the only markup not from html_table.
    rows = table.split("<tr>")
    head, body = rows[:2], rows[2:]
    head[1] = head[1].replace("<th>run_id</th>", "<th>report</th><th>run_id</th>", 1)
    body = [f"<td>{link}</td>{row}" for link, row in zip(links, body, strict=True)]
    return "<tr>".join([*head, *body])
