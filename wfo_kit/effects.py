"""What each configured value does: precedence between rows and configuration, and the settings
that change nothing.

A company row may give its own ``discount_rate``, ``terminal_growth``, ``exit_multiple`` and driver
columns, and a balance-sheet line its own ``recovery_rate``; ``valuation.precedence`` says whether
the row (``rows``, the default) or the configured value (``config``, or a list of assumptions) wins
(:func:`apply_precedence`). :func:`setting_effects` lists every setting that was set (its source is
not ``default``) but applies to none, or only some, of the companies, with the reason: a tidy frame
(setting, value, source, applies_to, of, note), written with the result tables as
``setting_effects``, kept in the run's manifest, shown in the report's run metadata, printed by the
CLI as ``wfo: note: ...`` lines and compared by ``wfo diff``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import polars as pl
from pydantic import BaseModel

from wfo_kit.config import (
    ASSUMPTIONS,
    TABLE_NAMES,
    Config,
    Distribution,
    ResolvedConfig,
    TableSource,
    ValuationConfig,
    _flatten,
    config_wins,
    configured_value,
)
from wfo_kit.errors import did_you_mean
from wfo_kit.opsconfig import ops_inert
from wfo_kit.schemas import SettingEffects, polars_dtypes

EFFECTS_SCHEMA = polars_dtypes(SettingEffects)

#: Company-row assumption columns (recovery_rate belongs to balance-sheet lines).
COMPANY_ASSUMPTIONS = tuple(a for a in ASSUMPTIONS if a != "recovery_rate")
_DRIVERS = ("revenue_growth", "target_margin", "sales_to_capital", "stable_roc")

#: Settings that only the DCF (and its risk analyses) reads.
DCF_SETTINGS = (
    "forecast", "rate_source", "discount_rate", "terminal_growth", "terminal", "exit_multiple",
    "timing", "valuation_date", "fiscal_year_end", "wacc", "drivers", "sensitivity", "scenarios",
    "monte_carlo", "range", "stable_discount_rate", "rate_fade_from_year",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Precedence


def apply_precedence(companies: pl.DataFrame, *, valuation: ValuationConfig) -> pl.DataFrame:
    """The companies with each assumption column replaced by its configured value where the
    configuration wins (``valuation.precedence``) and the value is set.

    >>> frame = pl.DataFrame({"company_id": ["A"], "discount_rate": [0.1]})
    >>> v = ValuationConfig(discount_rate=0.08, precedence=["discount_rate"])
    >>> apply_precedence(frame, valuation=v)["discount_rate"].to_list()
    [0.08]
    """
    columns = []
    for assumption in config_wins(valuation):
        value = configured_value(valuation, assumption)
        if assumption in COMPANY_ASSUMPTIONS and value is not None:
            columns.append(pl.lit(value, pl.Float64).alias(assumption))
    return companies.with_columns(columns) if columns else companies


def apply_recovery_precedence(
    balance_sheet: pl.DataFrame, *, valuation: ValuationConfig
) -> pl.DataFrame:
    """Balance-sheet lines whose class has a configured recovery rate lose their own
    ``recovery_rate`` where the configuration wins, so that the configured one applies."""
    if "recovery_rate" not in config_wins(valuation):
        return balance_sheet
    configured = list(valuation.asset.recovery_rates)
    return balance_sheet.with_columns(
        pl.when(pl.col("asset_class").is_in(configured))
        .then(pl.lit(None, pl.Float64))
        .otherwise(pl.col("recovery_rate"))
        .alias("recovery_rate")
    )


# --------------------------------------------------------------------------------------------
# Effects


def explicit_settings(config: Config, sources: Mapping[str, str] | None) -> dict[str, str]:
    """The settings that were set, with their source (``file:...``, ``env``, ``--set``, ...).

    A setting is a field of a section (``valuation.discount_rate``), one entry of a mapping
    (``valuation.blend.asset``) or a whole distribution. With ``sources`` None (a config built in
    code), a setting counts as set where its value differs from the default.
    """
    flat = _flatten(config.model_dump(mode="json"))
    if sources is None:
        default = _flatten(Config().model_dump(mode="json"))
        keyed = {k: "set" for k, v in flat.items() if v != default.get(k, _MISSING)}
    else:
        keyed = {k: s for k, s in sources.items() if k in flat and s not in ("default", "sample")}
    settings: dict[str, str] = {}
    for key, source in keyed.items():
        settings.setdefault(setting_of(key), source)
    return settings


_MISSING = object()


def setting_of(key: str) -> str:
    """The setting a flattened configuration key belongs to.

    >>> setting_of("valuation.monte_carlo.discount_rate_shift.params.scale")
    'valuation.monte_carlo.discount_rate_shift'
    >>> setting_of("pipeline.step_retry.output.attempts")
    'pipeline.step_retry.output'
    """
    parts = key.split(".")
    model: Any = Config
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return ".".join(parts[: i + 1])
        annotation = field.annotation
        if get_origin(annotation) is dict:
            return ".".join(parts[: i + 2])
        sub = next(
            (
                c
                for c in (annotation, *get_args(annotation))
                if isinstance(c, type) and issubclass(c, BaseModel)
            ),
            None,
        )
        if sub is None or sub is Distribution:
            return ".".join(parts[: i + 1])
        model = sub
    return key


def setting_effects(
    config: Config,
    *,
    sources: Mapping[str, str] | None = None,
    companies: pl.DataFrame | None = None,
    balance_sheet: pl.DataFrame | None = None,
    company_ids: Iterable[str] | None = None,
    columns: Iterable[str] | None = None,
) -> pl.DataFrame:
    """Every set configuration value that applies to none or only some of the companies.

    Without data, only what the configuration alone decides (a setting of a method that does not
    run, a section that is disabled, ...). With the valid ``companies`` (and ``balance_sheet``),
    also the configured assumptions that rows give themselves (``valuation.precedence``); with
    ``company_ids`` and ``columns``, ``report.companies`` and ``report.masked_columns`` naming
    what does not exist. One row per setting: setting, value, source, applies_to and of
    (companies, or names for report settings; null where a count does not apply), note.

    >>> from wfo_kit.config import Config
    >>> config = Config(valuation={"monte_carlo": {"enabled": False, "draws": 500}})
    >>> setting_effects(config)["note"].to_list()
    ['has no effect: valuation.monte_carlo.enabled is false']
    """
    explicit = explicit_settings(config, sources)
    dump = config.model_dump(mode="json")
    n = companies.height if companies is not None else None
    rows: dict[str, tuple[Any, ...]] = {}

    def add(setting: str, note: str, applies: int | None = None, of: int | None = None) -> None:
        if setting not in rows:
            value = _value_at(dump, setting)
            source = _source_under(explicit, setting) or "default"
            rows[setting] = (setting, _show(value), source, applies, of, note)

    for prefix, reason in _inert(config):
        for key in _keys_under(explicit, prefix):
            if key.startswith("valuation.") and n is not None:
                add(key, f"applies to 0 of {n} companies: {reason}", 0, n)
            else:
                add(key, f"has no effect: {reason}")
    if companies is not None:
        for setting, note, applies, of in _shadowed(config, explicit, companies):
            add(setting, note, applies, of)
        for setting, note, applies, of in _unused_fades(config, explicit, companies):
            add(setting, note, applies, of)
    if balance_sheet is not None and "asset" in config.valuation.methods:
        for setting, note, applies, of in _recovery(config, explicit, balance_sheet):
            add(setting, note, applies, of)
    for setting, note, applies, of in _unknown_names(config, explicit, company_ids, columns):
        add(setting, note, applies, of)
    return pl.DataFrame(list(rows.values()), schema=EFFECTS_SCHEMA, orient="row")


def _inert(config: Config) -> list[tuple[str, str]]:
    """(setting prefix, reason) for settings the configuration itself makes inert, first wins."""
    v, pipeline = config.valuation, config.pipeline
    out: list[tuple[str, str]] = []
    if "dcf" not in v.methods:
        # fcfe reuses the DCF's timing, dates, growth, rate path and range; dated the date
        # and rates; ddm the growth, range and the CAPM inputs
        shared = set()
        if "fcfe" in v.methods:
            shared |= {"timing", "valuation_date", "fiscal_year_end", "terminal_growth", "range",
                       "rate_fade_from_year", "wacc"}  # fmt: skip
        if "dated" in v.methods:
            shared |= {"valuation_date", "rate_source", "discount_rate", "wacc", "range"}
        if "ddm" in v.methods:
            shared |= {"terminal_growth", "range", "wacc"}
        reason = "dcf is not in valuation.methods"
        out += [(f"valuation.{s}", reason) for s in DCF_SETTINGS if s not in shared]
    for method in ("comparables", "asset"):
        if method not in v.methods:
            out.append((f"valuation.{method}", f"{method} is not in valuation.methods"))
    if "ddm" not in v.methods and "fcfe" not in v.methods:
        out.append(("valuation.equity", "neither ddm nor fcfe is in valuation.methods"))
    for method, weight in v.blend.items():
        if method not in v.methods and weight > 0:
            reason = f"{method} is not in valuation.methods (its weight is renormalised away)"
            out.append((f"valuation.blend.{method}", reason))
    if v.rate_source == "wacc":
        reason = "rate_source is wacc: every discount rate is computed from valuation.wacc"
        out.append(("valuation.discount_rate", reason))
    else:
        reason = "rate_source is given: set valuation.rate_source: wacc to compute rates from it"
        out.append(("valuation.wacc", reason))
    if v.wacc.weights == "market":
        out.append(("valuation.wacc.target_ratio", "wacc.weights is market (market values)"))
    if v.forecast == "explicit":
        out.append(
            ("valuation.drivers", "forecast is explicit: drivers apply only to forecast: drivers")
        )
    else:
        reason = "the rate x exit-multiple grid is computed for explicit forecasts only"
        out.append(("valuation.sensitivity.exit_multiples", reason))
        if v.drivers.high_growth_years > v.drivers.years:
            reason = f"capped at drivers.years = {v.drivers.years}"
            out.append(("valuation.drivers.high_growth_years", reason))
    if v.terminal == "gordon":
        reason = (
            "terminal is gordon (the rate x exit-multiple grid uses sensitivity.exit_multiples)"
        )
        out.append(("valuation.exit_multiple", reason))
    else:
        reason = "terminal is exit_multiple: terminal growth enters no value"
        out.append(("valuation.range.growth_delta", reason))
        out.append(("valuation.monte_carlo.terminal_growth_shift", reason))
        if any(s.terminal_growth_delta for s in v.scenarios):
            out.append(("valuation.scenarios", f"their terminal_growth_delta: {reason}"))
    if v.valuation_date is None:
        reason = "only date-based discounting uses it, and valuation_date is unset"
        out.append(("valuation.fiscal_year_end", reason))
    for section in ("sensitivity", "monte_carlo"):
        if not getattr(v, section).enabled:
            reason = f"valuation.{section}.enabled is false"
            out += [
                (f"valuation.{section}.{key}", reason)
                for key in type(getattr(v, section)).model_fields
                if key != "enabled"
            ]
    mc = v.monte_carlo
    if mc.enabled and mc.sampler == "sobol" and mc.draws & (mc.draws - 1):
        drawn = 2 ** math.ceil(math.log2(mc.draws))
        out.append(("valuation.monte_carlo.draws", f"Sobol draws a power of two: {drawn} drawn"))
    if v.comparables.statistic != "trimmed_mean":
        out.append(("valuation.comparables.trim", "only statistic: trimmed_mean uses it"))
    out += _precedence_inert(v)
    if config.report.companies:
        out.append(("report.detail_limit", "report.companies names the companies to detail"))
    steps = set(pipeline.steps)
    reachable = steps | {pipeline.fallbacks[s] for s in steps if s in pipeline.fallbacks}
    for step in pipeline.step_retry:
        if step not in reachable:
            reason = f"{step} is not in pipeline.steps (nor the fallback of one)"
            out.append((f"pipeline.step_retry.{step}", reason))
    for step in pipeline.fallbacks:
        if step not in steps:
            out.append((f"pipeline.fallbacks.{step}", f"{step} is not in pipeline.steps"))
    if reachable and reachable <= set(pipeline.step_retry):
        out.append(("pipeline.retry", "every step has its own pipeline.step_retry"))
    if "output" not in steps:
        reason = "the output step is not in pipeline.steps: no result tables are written"
        out.append(("output.formats", reason))
    # lock_timeout is SQLite's busy wait: files and DuckDB ignore it. A source written as a bare
    # path credits its default lock_timeout to the file too, so only a changed value is noted.
    default_wait = TableSource.model_fields["lock_timeout"].default
    for name in TABLE_NAMES:
        node, key = getattr(config.data, name), f"data.{name}"
        while node is not None:
            sqlite = (node.url or "").startswith("sqlite:")
            if not sqlite and node.lock_timeout != default_wait:
                out.append((f"{key}.lock_timeout", "only a SQLite source waits for a lock"))
            node, key = node.fallback, f"{key}.fallback"
    out += ops_inert(config)
    if not config.cache.enabled:
        reason = "cache.enabled is false (--no-cache): no step result is cached"
        out += [(f"cache.{key}", reason) for key in ("dir", "max_mb", "memory_mb")]
    elif config.cache.max_mb == 0:
        out.append(("cache.dir", "cache.max_mb is 0: nothing is kept on disk"))
    if "load_fallback" not in reachable:
        reason = "only the load_fallback step reads it, and pipeline.steps and fallbacks omit it"
        for name in TABLE_NAMES:
            source = getattr(config.data, name)
            if source is not None and source.fallback is not None:
                out.append((f"data.{name}.fallback", reason))
    return out


def _precedence_inert(v: ValuationConfig) -> list[tuple[str, str]]:
    """Assumptions named in a precedence list that cannot win."""
    if not isinstance(v.precedence, list):
        return []
    reasons = []
    for name in dict.fromkeys(v.precedence):
        if name == "discount_rate" and v.rate_source == "wacc":
            reasons.append("discount_rate: rate_source is wacc")
        elif name in _DRIVERS and v.forecast == "explicit":
            reasons.append(f"{name}: forecast is explicit")
        elif name == "exit_multiple" and v.terminal == "gordon":
            reasons.append("exit_multiple: terminal is gordon")
        elif configured_value(v, name) is None:
            reasons.append(f"{name}: {ASSUMPTIONS[name]} is unset, so rows keep their own")
    return [("valuation.precedence", "; ".join(reasons))] if reasons else []


def _relevant(v: ValuationConfig, assumption: str) -> bool:
    if "dcf" not in v.methods:
        return False
    if assumption == "discount_rate":
        return v.rate_source == "given"
    if assumption == "exit_multiple":
        return v.terminal == "exit_multiple"
    if assumption in _DRIVERS:
        return v.forecast == "drivers"
    return True


def _hint(assumption: str) -> str:
    return f"set valuation.precedence: config (or [{assumption}]) to let the configuration win"


def _shadowed(
    config: Config, explicit: Mapping[str, str], companies: pl.DataFrame
) -> list[tuple[str, str, int, int]]:
    """Configured assumptions that company rows give themselves, and (with precedence) rows
    whose own value the configuration replaces."""
    v, n, out = config.valuation, companies.height, []
    wins = config_wins(v)
    for assumption in COMPANY_ASSUMPTIONS:
        setting, value = ASSUMPTIONS[assumption], configured_value(v, assumption)
        if value is None or not _relevant(v, assumption) or n == 0:
            continue
        own = (
            int(companies[assumption].is_not_null().sum()) if assumption in companies.columns else 0
        )
        if assumption in wins:
            if own and "valuation.precedence" in explicit:
                note = (
                    f"applies to {n} of {n} companies: it replaces the row's own {assumption} "
                    f"in {own} (valuation.precedence)"
                )
                out.append((setting, note, n, n))
        elif setting in explicit and own:
            applies = n - own
            rows = "every row gives" if applies == 0 else f"{own} rows give"
            note = (
                f"applies to {applies} of {n} companies: {rows} its own {assumption}; "
                f"{_hint(assumption)}"
            )
            out.append((setting, note, applies, n))
    return out


def _count(companies: pl.DataFrame, column: str) -> int:
    """Rows giving their own ``column`` (0 when the table has no such column)."""
    return int(companies[column].is_not_null().sum()) if column in companies.columns else 0


def _unused_fades(
    config: Config, explicit: Mapping[str, str], companies: pl.DataFrame
) -> list[tuple[str, str, int, int]]:
    """Fade years with nothing to fade to: the rate path needs a stable rate (configured or a
    row's), the tax path a row's effective_tax_rate; without one the setting changes no value."""
    v, n, out = config.valuation, companies.height, []
    if n == 0:
        return out
    if "valuation.rate_fade_from_year" in explicit:
        dcf = "dcf" in v.methods and (
            v.stable_discount_rate is not None or _count(companies, "stable_discount_rate")
        )
        fcfe = "fcfe" in v.methods and (
            v.equity.stable_cost_of_equity is not None or _count(companies, "stable_cost_of_equity")
        )
        if not (dcf or fcfe):
            note = (
                f"applies to 0 of {n} companies: no stable rate to fade to (set "
                "valuation.stable_discount_rate, a row's stable_discount_rate, or for fcfe "
                "valuation.equity.stable_cost_of_equity)"
            )
            out.append(("valuation.rate_fade_from_year", note, 0, n))
    methods = {"dcf", "fcfe"} & set(v.methods)
    if "valuation.taxes.fade_from_year" in explicit and methods:
        own = _count(companies, "effective_tax_rate")
        if own < n:
            rows = "no row gives" if own == 0 else f"{n - own} rows give no"
            note = (
                f"applies to {own} of {n} companies: {rows} effective_tax_rate to fade from "
                "(the marginal tax_rate holds throughout)"
            )
            out.append(("valuation.taxes.fade_from_year", note, own, n))
    return out


def _recovery(
    config: Config, explicit: Mapping[str, str], balance_sheet: pl.DataFrame
) -> list[tuple[str, str, int, int]]:
    """Configured recovery rates per asset class against the lines' own ``recovery_rate``."""
    out = []
    wins = "recovery_rate" in config_wins(config.valuation)
    assets = balance_sheet.filter(pl.col("side") == "asset")
    for cls, _ in config.valuation.asset.recovery_rates.items():
        setting = f"valuation.asset.recovery_rates.{cls}"
        if setting not in explicit:
            continue
        lines = assets.filter(pl.col("asset_class") == cls)
        of = lines["company_id"].n_unique()
        using = lines if wins else lines.filter(pl.col("recovery_rate").is_null())
        applies = using["company_id"].n_unique()
        if of == 0:
            note = f"applies to 0 companies: no balance-sheet asset line has asset_class {cls!r}"
        elif applies < of:
            rows = "every" if applies == 0 else "some"
            note = (
                f"applies to {applies} of {of} companies with {cls} lines: {rows} {cls} line "
                f"gives its own recovery_rate; {_hint('recovery_rate')}"
            )
        else:
            continue
        out.append((setting, note, applies, of))
    return out


def _unknown_names(
    config: Config,
    explicit: Mapping[str, str],
    company_ids: Iterable[str] | None,
    columns: Iterable[str] | None,
) -> list[tuple[str, str, int, int]]:
    out = []
    report = config.report
    checks = (
        ("report.companies", report.companies, company_ids, "the companies table has no", "ids"),
        (
            "report.masked_columns",
            report.masked_columns,
            columns,
            "no table has a column",
            "columns",
        ),
    )
    for setting, named, known_iter, what, unit in checks:
        if known_iter is None or not named or setting not in explicit:
            continue
        known = {k for k in known_iter if k is not None}
        unknown = [name for name in dict.fromkeys(named) if name not in known]
        if unknown:
            listed = ", ".join(f"{u!r}{did_you_mean(u, sorted(known))}" for u in unknown)
            found = len(named) - len(unknown)
            note = f"applies to {found} of {len(named)} {unit}: {what} {listed}"
            out.append((setting, note, found, len(named)))
    return out


def report_columns(methods: Iterable[str]) -> set[str]:
    """Columns the report's own tables add to those of the input and result tables (the
    portfolio summary, the run metadata, the input sources), for ``report.masked_columns``."""
    summary = {"blend_low", "blend_base", "blend_high", *(f"{m}_per_share" for m in methods)}
    return summary | {"key", "value", "source", "table"}


def _keys_under(explicit: Mapping[str, str], prefix: str) -> list[str]:
    return [k for k in explicit if k == prefix or k.startswith(prefix + ".")]


def _source_under(explicit: Mapping[str, str], prefix: str) -> str | None:
    for key, source in explicit.items():
        if key == prefix or key.startswith(prefix + "."):
            return source
    return None


def _value_at(dump: Mapping[str, Any], setting: str) -> Any:
    node: Any = dump
    for part in setting.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --------------------------------------------------------------------------------------------
# Notes for the command line


def effect_lines(effects: pl.DataFrame | list[dict[str, Any]]) -> list[str]:
    """One readable line per effect: ``setting = value (set in SOURCE) note``."""
    rows = effects.to_dicts() if isinstance(effects, pl.DataFrame) else effects
    lines = []
    for row in rows:
        source = row.get("source") or "default"
        where = "default" if source == "default" else f"set in {source}"
        lines.append(f"{row['setting']} = {row['value']} ({where}) {row['note']}")
    return lines


def command_effects(
    resolved: ResolvedConfig, *, command: str, output_root: Path | None = None
) -> pl.DataFrame:
    """Settings a command ignores: ``output.root`` under ``wfo batch`` (runs go under its
    ``--output``) and under ``wfo run --output``."""
    explicit = explicit_settings(resolved.config, resolved.sources)
    rows = []
    root = resolved.config.output.root
    moved = output_root is not None and Path(root).resolve() != Path(output_root).resolve()
    if "output.root" in explicit and moved:
        option = "--output" if command == "run" else "--output (default outputs)"
        note = f"has no effect under wfo {command}: runs go under {output_root}, from {option}"
        rows.append(("output.root", root, explicit["output.root"], None, None, note))
    return pl.DataFrame(rows, schema=EFFECTS_SCHEMA, orient="row")
