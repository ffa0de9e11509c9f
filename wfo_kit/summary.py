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


def price_against_value(
    blend: pl.DataFrame,
    companies: pl.DataFrame,
    *,
    reverse: pl.DataFrame | None = None,
    flows: pl.DataFrame | None = None,
    financials: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Market price against blended value, one row per company with a blended value.

    ``companies`` gives ``company_id``, ``name``, ``currency`` and ``share_price`` (market price
    per share, in the company's currency). ``upside`` = base / price - 1 (a decimal),
    ``price_to_value`` = price / base. ``implied_fcff_growth`` is the reverse DCF's (``reverse``):
    the constant FCFF growth from the last actual year that makes the DCF equal the price.
    ``forecast_fcff_growth`` is the forecast's own growth on the same footing: the compound
    growth from the last actual FCFF (``reverse``'s ``base_fcff``, year from ``financials``) to
    the last forecast year's FCFF (``flows``); null where a flow is not positive. A missing
    price leaves upside and price/value null.

    Examples
    --------
    >>> import polars as pl
    >>> blend = pl.DataFrame({"company_id": ["A"], "low": [8.0], "base": [10.0], "high": [12.0]})
    >>> companies = pl.DataFrame({"company_id": ["A"], "name": ["Alpha"], "currency": ["USD"],
    ...                           "share_price": [8.0]})
    >>> price_against_value(blend, companies).select("upside", "price_to_value").rows()
    [(0.25, 0.8)]
    """
    info = companies.unique("company_id", keep="first").select(
        "company_id",
        *[c for c in ("name", "currency") if c in companies.columns],
        pl.col("share_price").cast(pl.Float64)
        if "share_price" in companies.columns
        else pl.lit(None, pl.Float64).alias("share_price"),
    )
    out = (
        blend.filter(pl.col("base").is_not_null())
        .select("company_id", "low", "base", "high")
        .join(info, on="company_id", how="left")
    )
    price = pl.when(pl.col("share_price") > 0).then(pl.col("share_price"))
    out = out.with_columns(
        (pl.col("base") / price - 1).alias("upside"),
        (price / pl.col("base")).alias("price_to_value"),
    )
    growth = _growths(reverse, flows, financials)
    out = out.join(growth, on="company_id", how="left") if growth is not None else out
    for column in ("implied_fcff_growth", "forecast_fcff_growth"):
        if column not in out.columns:
            out = out.with_columns(pl.lit(None, pl.Float64).alias(column))
    return out.select(
        "company_id",
        *[c for c in ("name", "currency") if c in out.columns],
        "share_price",
        "low",
        "base",
        "high",
        "upside",
        "price_to_value",
        "implied_fcff_growth",
        "forecast_fcff_growth",
    ).sort("company_id")


def _growths(
    reverse: pl.DataFrame | None, flows: pl.DataFrame | None, financials: pl.DataFrame | None
) -> pl.DataFrame | None:
    """Implied (reverse DCF) and forecast FCFF growth per company, on the same footing."""
    if reverse is None:
        return None
    out = reverse.select("company_id", "implied_fcff_growth", "base_fcff")
    if flows is None or financials is None or "fcff" not in flows.columns:
        return out.drop("base_fcff")
    last = (
        flows.sort("company_id", "year")
        .group_by("company_id", maintain_order=True)
        .last()
        .select("company_id", pl.col("year").alias("last_year"), pl.col("fcff").alias("last_fcff"))
    )
    base_year = (
        financials.filter(~pl.col("is_forecast"))
        .group_by("company_id")
        .agg(pl.col("year").max().alias("base_year"))
    )
    years = (pl.col("last_year") - pl.col("base_year")).cast(pl.Float64)
    positive = (pl.col("base_fcff") > 0) & (pl.col("last_fcff") > 0) & (years > 0)
    return (
        out.join(last, on="company_id", how="left")
        .join(base_year, on="company_id", how="left")
        .with_columns(
            pl.when(positive)
            .then((pl.col("last_fcff") / pl.col("base_fcff")).pow(1.0 / years) - 1)
            .alias("forecast_fcff_growth")
        )
        .select("company_id", "implied_fcff_growth", "forecast_fcff_growth")
    )


def headline(
    prices: pl.DataFrame,
    *,
    input_companies: pl.DataFrame,
    valid_companies: pl.DataFrame,
    financials: pl.DataFrame | None = None,
    valuation_date: Any = None,
    units: str = "millions",
) -> dict[str, Any]:
    """What the top of the report says: the facts (label, value) and a plain reading.

    ``prices`` is :func:`price_against_value` (one row per valued company). Companies in the
    input are valued (a blended value), quarantined (no valid company row: its row failed a
    check), or excluded (a valid row, but no method could value it).
    """
    universe = input_companies["company_id"].drop_nulls().unique()
    valued = prices["company_id"]
    quarantined = universe.filter(~universe.is_in(valid_companies["company_id"].implode()))
    excluded = universe.filter(
        ~universe.is_in(valued.implode()) & ~universe.is_in(quarantined.implode())
    )
    currencies = (
        prices["currency"].drop_nulls().unique(maintain_order=True).sort().to_list()
        if "currency" in prices.columns
        else []
    )
    facts = [
        ("Valuation date", _valuation_date(valuation_date, financials)),
        ("Data as of", _data_as_of(financials)),
        ("Currency and units", currency_units(currencies, units)),
        (
            "Companies",
            f"{universe.len():,d} in the input: {valued.len():,d} valued, "
            f"{excluded.len():,d} excluded (no method could value them), "
            f"{quarantined.len():,d} quarantined (their company row failed a check)",
        ),
    ]
    return {"facts": facts, "reading": reading(prices)}


def currency_units(currencies: list[str], units: str) -> str:
    """``USD millions; per share in USD`` (one currency), or each company's currency.

    Examples
    --------
    >>> currency_units(["USD"], "millions")
    'USD millions; per share in USD'
    >>> currency_units(["EUR", "USD"], "millions")
    "millions of each company's currency (EUR, USD); per share in that currency"
    """
    if len(currencies) == 1:
        return f"{currencies[0]} {units}; per share in {currencies[0]}"
    listed = f" ({', '.join(currencies)})" if currencies else ""
    return f"{units} of each company's currency{listed}; per share in that currency"


def _valuation_date(date: Any, financials: pl.DataFrame | None) -> str:
    if date is not None:
        return str(date)
    base = _last_actual_year(financials)
    return (
        f"not set: cash flows are discounted from the end of fiscal {base}"
        if base is not None
        else "not set"
    )


def _last_actual_year(financials: pl.DataFrame | None) -> int | None:
    if financials is None or financials.height == 0:
        return None
    actual = financials.filter(~pl.col("is_forecast"))["year"]
    return int(actual.max()) if actual.len() else None  # type: ignore[arg-type]


def _data_as_of(financials: pl.DataFrame | None) -> str:
    if financials is None or financials.height == 0:
        return "no financials"
    base = _last_actual_year(financials)
    forecast = financials.filter(pl.col("is_forecast"))["year"]
    parts = [f"actuals to fiscal {base}" if base is not None else "no actual years"]
    if forecast.len():
        parts.append(f"forecasts fiscal {forecast.min()}-{forecast.max()}")
    return "; ".join(parts)


def reading(prices: pl.DataFrame) -> str:
    """One paragraph: how many trade below and above their blended value, the median, the
    largest gaps, and what the market prices imply against the forecast."""
    priced = prices.filter(pl.col("upside").is_not_null())
    if priced.height == 0:
        return (
            f"{prices.height:,d} companies were valued; none has a market price, so there is "
            "no comparison with the market."
        )
    below = priced.filter(pl.col("upside") > 0).height
    above = priced.filter(pl.col("upside") < 0).height
    median = float(priced["upside"].median())  # type: ignore[arg-type]
    best = priced.sort("upside", descending=True).row(0, named=True)
    worst = priced.sort("upside").row(0, named=True)

    def who(row: dict[str, Any]) -> str:
        return f"{row['company_id']} {row.get('name') or ''}".strip()

    text = (
        f"Of {priced.height:,d} companies with a market price, {below:,d} trade below their "
        f"blended value (upside) and {above:,d} above it; the median company's blended value is "
        f"{median:+.1%} against its price. Largest upside: {who(best)} ({best['upside']:+.1%}); "
        f"largest downside: {who(worst)} ({worst['upside']:+.1%})."
    )
    both = priced.filter(
        pl.col("implied_fcff_growth").is_not_null() & pl.col("forecast_fcff_growth").is_not_null()
    )
    if both.height:
        higher = both.filter(pl.col("implied_fcff_growth") > pl.col("forecast_fcff_growth")).height
        text += (
            f" For {higher:,d} of {both.height:,d} companies the price implies faster free cash "
            "flow growth than the forecast (reverse DCF), i.e. the market is more optimistic "
            "than the forecast there."
        )
    missing = prices.height - priced.height
    if missing:
        text += f" {missing:,d} valued companies have no market price."
    return text


def with_names(frame: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with each company's name and currency after ``company_id`` (for tables whose
    rows mix companies: the currency says what the money columns are in)."""
    extra = [c for c in ("name", "currency") if c in names.columns and c not in frame.columns]
    if not extra:
        return frame
    joined = frame.join(
        names.unique("company_id", keep="first").select("company_id", *extra),
        on="company_id",
        how="left",
        maintain_order="left",
    )
    rest = [c for c in frame.columns if c != "company_id"]
    return joined.select("company_id", *extra, *rest)


def simulation_note(configured_draws: int, sampler: str, simulation: pl.DataFrame) -> str:
    """Says how many draws were made and why it may differ from the configured number.

    Examples
    --------
    >>> import polars as pl
    >>> simulation_note(2000, "sobol", pl.DataFrame({"draws": [2048], "seed": [20261126]}))[:60]
    'Each company: 2,048 draws (scrambled Sobol sequence, random '
    """
    if simulation.height == 0:
        return "No Monte Carlo draws."
    draws = int(simulation["draws"][0])
    seed = simulation["seed"][0] if "seed" in simulation.columns else None
    kind = "scrambled Sobol sequence" if sampler == "sobol" else f"{sampler} sampling"
    text = f"Each company: {draws:,d} draws ({kind}, random seed {seed})."
    if draws != configured_draws:
        text += (
            f" valuation.monte_carlo.draws asks for {configured_draws:,d}; a Sobol sequence is "
            f"balanced only at a power of two, so it was rounded up to {draws:,d}."
        )
    return text
