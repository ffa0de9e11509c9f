"""Summary tables for reports: portfolio overview and run metadata. Frames in, frames out."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import polars as pl

from wfo_kit.config import _flatten, mask_secrets
from wfo_kit.trust import shared_path


def portfolio_summary(
    valuations: pl.DataFrame, blend: pl.DataFrame, names: pl.DataFrame
) -> pl.DataFrame:
    """One row per company: name, per-method value per share, blended low/base/high, gaps."""
    per_method = valuations.pivot(
        on="method", index="company_id", values="value_per_share", aggregate_function="first"
    )
    methods = [c for c in per_method.columns if c != "company_id"]
    return (
        names.join(per_method, on="company_id", how="right")
        .join(blend, on="company_id", how="left")
        .select(
            "company_id",
            "name",
            "sector",
            "currency",
            *[pl.col(m).round(2).alias(f"{m}_per_share") for m in methods],
            pl.col("low").round(2).alias("blend_low"),
            pl.col("base").round(2).alias("blend_base"),
            pl.col("high").round(2).alias("blend_high"),
            "methods_missing",
        )
        .sort("company_id")
    )


def run_metadata(ctx: Any, *, sources: dict[str, str] | None = None) -> pl.DataFrame:
    """Key / value / source rows: run id, every parameter (secrets masked), the settings that
    apply to none or only some companies (``effect.<setting>``), versions, timings.

    The table goes into shared reports, so it shows no absolute path of the machine that ran
    the run: a path is shown relative to the parameters file that set it, or to the project
    (:func:`wfo_kit.trust.shared_path`); the manifest keeps the absolute paths.
    """
    from wfo_kit.runs import file_sha256, package_versions

    sources = sources or {}
    rows: list[tuple[str, str, str]] = [("run_id", ctx.run_id, "")]
    config = _flatten(mask_secrets(ctx.config.model_dump(mode="json")))
    for key in sorted(config):
        if config[key] is None or config[key] == {} or config[key] == []:
            continue  # unset options are noise here; the manifest has the whole configuration
        source = sources.get(key, "default")
        value = _shared_value(config[key], relative_to=_source_folder(source))
        rows.append((f"config.{key}", value, _shared_source(source)))
    for row in _effects(ctx, sources).iter_rows(named=True):
        effect = f"{row['value']}: {row['note']}"
        rows.append((f"effect.{row['setting']}", effect, _shared_source(row["source"])))
    for name, table in ctx.config.data:
        if table is not None and table.path is not None:
            where = _source_folder(sources.get(f"data.{name}.path", ""))
            shown = shared_path(table.path, relative_to=where)
            rows.append((f"input_sha256.{name}", file_sha256(table.path), shown))
    for name, version in package_versions().items():
        rows.append((f"version.{name}", str(version), ""))
    for step in ctx.metrics.steps:
        rows.append(
            (
                f"step.{step['step']}.seconds",
                f"{step['seconds']:.3f}",
                f"rows out {step.get('rows_out')}",
            )
        )
    return pl.DataFrame(rows, schema=["key", "value", "source"], orient="row")


def _effects(ctx: Any, sources: dict[str, str] | None) -> pl.DataFrame:
    """The run's setting effects (see wfo_kit.effects): the value step's, else the config's."""
    from wfo_kit.effects import setting_effects

    effects = ctx.frames.get("setting_effects")
    if effects is None:
        effects = setting_effects(ctx.config, sources=sources or getattr(ctx, "sources", None))
    return effects


_FILE = "file:"
_SQL_FILE = re.compile(r"^(sqlite|duckdb):///(?=/)")


def _source_folder(source: str) -> Path | None:
    """The folder of the parameters file a value came from (``file:/.../x.yaml``), if any."""
    return Path(source.removeprefix(_FILE)).parent if source.startswith(_FILE) else None


def _shared_source(source: str | None) -> str | None:
    """Where a value came from: a parameters file (``file:...``) by its shared path."""
    if source is None or not source.startswith(_FILE):
        return source
    return _FILE + shared_path(source.removeprefix(_FILE))


def _shared_value(value: Any, *, relative_to: Path | None) -> str:
    """A configuration value as the report shows it: absolute paths (also inside a SQLite or
    DuckDB URL) made relative, other values as they are."""
    text = str(value)
    if isinstance(value, str) and os.path.isabs(value):
        return shared_path(value, relative_to=relative_to)
    url = _SQL_FILE.match(text) if isinstance(value, str) else None
    if url:
        return url.group(0) + shared_path(text[url.end() :], relative_to=relative_to)
    return text


def shared_sources(
    rows: list[tuple[str, str]], sources: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """``(table, where)`` rows (:func:`wfo_kit.config.given_tables`) as a shared report shows
    them: a file path (also inside a SQLite or DuckDB URL) relative to the parameters file that
    named it or to the project (:func:`wfo_kit.trust.shared_path`).

    Examples
    --------
    >>> shared_sources([("peers", "sqlite:////srv/x/m.db (table peers)")],
    ...                {"data.peers.url": "file:/srv/x/p.yaml"})
    [('peers', 'sqlite:///m.db (table peers)')]
    """
    sources = sources or {}
    shown = []
    for table, where in rows:
        named_in = next(
            (sources[k] for k in (f"data.{table}.path", f"data.{table}.url") if k in sources), ""
        )
        what, sep, rest = where.rpartition(" (") if where.endswith(")") else (where, "", "")
        shared = _shared_value(what, relative_to=_source_folder(named_in))
        shown.append((table, shared + sep + rest))
    return shown


def fcff_by_year(flows: pl.DataFrame, company_ids: list[str]) -> pl.DataFrame:
    """Forecast FCFF, one row per company and one column per year (explicit or driver mode)."""
    value = "fcff"
    picked = flows.filter(pl.col("company_id").is_in(company_ids))
    if picked.height == 0:
        return pl.DataFrame(schema={"company_id": pl.String})
    return (
        picked.select("company_id", pl.col("year").cast(pl.String), value)
        .pivot(on="year", index="company_id", values=value, sort_columns=True)
        .sort("company_id")
    )
