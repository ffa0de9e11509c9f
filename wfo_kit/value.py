"""The value step: run the configured methods (strategies), then risk and the blend.

A method is a function ``(valid tables, valuation config) -> MethodResult``; :data:`METHODS` maps
configuration names to them. Every company of the input universe appears in ``valuations`` once
per method: valued (with low/base/high per share), or excluded with the reason (including
companies whose input row was quarantined), so nothing disappears silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from wfo_kit.accuracy import accuracy_table
from wfo_kit.assets import value_assets
from wfo_kit.blend import blend_values
from wfo_kit.comparables import value_comparables
from wfo_kit.config import CacheConfig, ValuationConfig
from wfo_kit.dated import xnpv_frame
from wfo_kit.dcf import (
    DcfInputs,
    TaxPath,
    base_years,
    bridge_table,
    dcf_detail,
    drop_unvaluable,
    equity_bridge,
    explicit_inputs,
    fcff_expr,
    with_defaults,
)
from wfo_kit.diagnostics import diagnostics_table
from wfo_kit.drivers import driver_inputs
from wfo_kit.effects import apply_precedence, apply_recovery_precedence
from wfo_kit.equity import fcfe_tables, value_ddm
from wfo_kit.errors import ConfigurationError, did_you_mean
from wfo_kit.frames import format_text
from wfo_kit.plugins import METHOD_GROUP, plugin, plugin_names
from wfo_kit.rates import wacc_gaps, with_discount_rates
from wfo_kit.risk import (
    monte_carlo,
    reverse_dcf,
    scenario_values,
    sensitivity_rate_growth,
    sensitivity_rate_multiple,
    value_range,
)
from wfo_kit.schemas import Valuations, polars_dtypes

VALUATION_DTYPES = polars_dtypes(Valuations)


@dataclass(frozen=True)
class MethodResult:
    """Valued companies (company_id, enterprise_value, equity_value, value_per_share, low, high;
    per share where not said), excluded companies (company_id, reason), and detail tables."""

    valued: pl.DataFrame
    excluded: pl.DataFrame
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    inputs: DcfInputs | None = None


def prepare_dcf(
    valid: dict[str, pl.DataFrame], valuation: ValuationConfig
) -> tuple[DcfInputs, dict[str, pl.DataFrame], pl.DataFrame]:
    """DCF inputs for the configured forecast mode and rate source. (inputs, tables, excluded)

    The inputs' companies are in company_id order, so is every table built from them.
    """
    inputs, tables, excluded = forecast_inputs(valid, valuation)
    inputs, bad = with_rate_checks(inputs, valuation)
    return inputs, tables, pl.concat([excluded, bad])


def forecast_inputs(
    valid: dict[str, pl.DataFrame], valuation: ValuationConfig
) -> tuple[DcfInputs, dict[str, pl.DataFrame], pl.DataFrame]:
    """:func:`prepare_dcf` up to the forecast: every company with its flows, rates as given,
    no stable-phase rate and no r <= g exclusion yet (:func:`with_rate_checks` adds both).

    With explicit forecasts nothing here depends on the rates beyond the companies'
    ``discount_rate`` and ``terminal_growth`` columns, so a caller that only moves the rates
    (the explorer) may replace those columns and call :func:`with_rate_checks` again.
    """
    ordered = valid["companies"].sort("company_id", maintain_order=True)
    companies = apply_precedence(ordered, valuation=valuation)
    companies = with_discount_rates(companies, valuation=valuation)
    gaps = (
        wacc_gaps(companies, wacc=valuation.wacc)
        if valuation.rate_source == "wacc"
        else pl.DataFrame(schema={"company_id": pl.String, "reason": pl.String})
    )
    companies = companies.filter(~pl.col("company_id").is_in(gaps["company_id"].implode()))
    companies = with_defaults(
        companies,
        discount_rate=valuation.discount_rate if valuation.rate_source == "given" else None,
        terminal_growth=valuation.terminal_growth,
        exit_multiple=valuation.exit_multiple,
    )
    if valuation.forecast == "drivers":
        if valuation.terminal == "exit_multiple":
            msg = (
                "driver forecasts do not model EBITDA: use terminal: gordon with forecast: drivers"
            )
            raise ConfigurationError(msg, column="valuation.terminal")
        if valuation.valuation_date is not None:
            msg = "valuation_date applies to explicit forecasts; drop it with forecast: drivers"
            raise ConfigurationError(msg, column="valuation.valuation_date")
        inputs, forecast, excluded = driver_inputs(
            companies, valid["financials"], drivers=valuation.drivers, timing=valuation.timing
        )
        tables = {"driver_forecast": forecast}
    else:
        inputs, flows, excluded = explicit_inputs(
            companies,
            valid["financials"],
            timing=valuation.timing,
            valuation_date=valuation.valuation_date,
            fiscal_year_end_md=valuation.fiscal_year_end,
            taxes=tax_path(companies, valuation),
        )
        tables = {"fcff": flows}
    return inputs, tables, pl.concat([gaps, excluded])


def with_rate_checks(
    inputs: DcfInputs, valuation: ValuationConfig
) -> tuple[DcfInputs, pl.DataFrame]:
    """The inputs with their stable-phase rate, less the companies whose rates cannot be valued
    (r <= g, no rate); those are returned with their reason."""
    return drop_unvaluable(with_rate_path(inputs, valuation), terminal=valuation.terminal)


def tax_path(companies: pl.DataFrame, valuation: ValuationConfig) -> TaxPath | None:
    """The Ginzu tax settings when any applies (configured, or a row's nol/effective rate)."""
    rows = [c for c in ("nol", "effective_tax_rate") if c in companies.columns]
    given = any(companies[c].null_count() < companies.height for c in rows)
    if not (valuation.taxes.carry_forward_losses or given):
        return None  # today's FCFF at the marginal rate, exactly
    return TaxPath(
        carry_forward=valuation.taxes.carry_forward_losses,
        fade_from=valuation.taxes.fade_from_year,
    )


def with_rate_path(inputs: DcfInputs, valuation: ValuationConfig) -> DcfInputs:
    """Attach the stable-phase rate (row first, then configuration); none set: one rate."""
    frame = inputs.companies
    row = frame["stable_discount_rate"] if "stable_discount_rate" in frame.columns else None
    if valuation.stable_discount_rate is None and (row is None or row.null_count() == frame.height):
        return inputs
    given = pl.lit(valuation.stable_discount_rate, pl.Float64)
    stable = frame.select(
        pl.coalesce(
            pl.col("stable_discount_rate") if row is not None else given,
            given,
            pl.col("discount_rate"),
        ).alias("stable_discount_rate")
    )["stable_discount_rate"]
    return replace(
        inputs,
        companies=frame.with_columns(stable),
        stable_rate=stable.fill_null(np.nan).to_numpy(),
        fade_from=valuation.rate_fade_from_year,
    )


def dcf_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    inputs, tables, excluded = prepare_dcf(valid, valuation)
    detail = dcf_detail(inputs, terminal=valuation.terminal)
    valued = detail.select("company_id", "enterprise_value", "equity_value", "value_per_share")
    bounds = value_range(inputs, deltas=valuation.range, terminal=valuation.terminal)
    valued = valued.join(bounds, on="company_id", how="left", maintain_order="left")
    tables.update({"dcf_detail": detail, "equity_bridge": bridge_table(detail)})
    return MethodResult(valued=valued, excluded=excluded, tables=tables, inputs=inputs)


def comparables_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    if "peers" not in valid:
        return _all_excluded(valid, "no peers table given (data.peers)")
    valued, detail, table, excluded = value_comparables(
        valid["companies"], valid["financials"], valid["peers"], config=valuation.comparables
    )
    return MethodResult(
        valued=valued,
        excluded=excluded,
        tables={"comparables_detail": detail, "peer_multiples": table},
    )


def asset_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    if "balance_sheet" not in valid:
        return _all_excluded(valid, "no balance_sheet table given (data.balance_sheet)")
    balance_sheet = apply_recovery_precedence(valid["balance_sheet"], valuation=valuation)
    valued, lines, waterfall, excluded = value_assets(
        valid["companies"], balance_sheet, config=valuation.asset
    )
    return MethodResult(
        valued=valued.select(
            "company_id", "enterprise_value", "equity_value", "value_per_share", "low", "high"
        ),
        excluded=excluded,
        tables={"asset_lines": lines, "liquidation_waterfall": waterfall, "asset_values": valued},
    )


def ddm_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    companies = apply_precedence(valid["companies"], valuation=valuation)
    valued, detail, excluded = value_ddm(companies, valuation=valuation)
    return MethodResult(valued=valued, excluded=excluded, tables={"ddm_detail": detail})


def fcfe_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    """The explicit DCF on FCFE at the cost of equity (Gordon terminal value): equity directly."""
    ordered = valid["companies"].sort("company_id", maintain_order=True)
    companies = apply_precedence(ordered, valuation=valuation)
    companies, financials, gaps = fcfe_tables(companies, valid["financials"], valuation=valuation)
    companies = with_defaults(
        companies, discount_rate=None, terminal_growth=valuation.terminal_growth
    )
    inputs, flows, excluded = explicit_inputs(
        companies,
        financials,
        timing=valuation.timing,
        valuation_date=valuation.valuation_date,
        fiscal_year_end_md=valuation.fiscal_year_end,
        taxes=tax_path(companies, valuation),
    )
    equity_path = valuation.model_copy(
        update={
            "stable_discount_rate": None,
            "rate_fade_from_year": valuation.rate_fade_from_year,
            "terminal": "gordon",
        }
    )
    inputs, bad = with_rate_checks(inputs, equity_path)
    detail = dcf_detail(inputs, terminal="gordon")
    bounds = value_range(inputs, deltas=valuation.range, terminal="gordon")
    valued = detail.select(
        "company_id",
        pl.lit(None, pl.Float64).alias("enterprise_value"),
        "equity_value",
        "value_per_share",
    ).join(bounds, on="company_id", how="left", maintain_order="left")
    detail = detail.drop("cost_of_equity", strict=False).rename(
        {"enterprise_value": "pv_fcfe", "discount_rate": "cost_of_equity"}
    )
    return MethodResult(
        valued=valued,
        excluded=pl.concat([gaps, excluded, bad]),
        tables={"fcfe_detail": detail, "fcfe": flows.rename({"fcff": "fcfe"})},
    )


def dated_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    """EV = XNPV of the company's dated flows at its discount rate, from the valuation date
    (``valuation.valuation_date``, else each company's first flow date); equity by the bridge."""
    if "dated_flows" not in valid:
        return _all_excluded(valid, "no dated_flows table given (data.dated_flows)")
    companies = with_discount_rates(
        apply_precedence(valid["companies"].sort("company_id"), valuation=valuation),
        valuation=valuation,
    )
    flows = valid["dated_flows"].join(companies.select("company_id"), on="company_id", how="semi")
    rates = companies.select("company_id", pl.col("discount_rate").alias("rate"))
    pv = xnpv_frame(flows, rate=rates, valuation_date=valuation.valuation_date)
    none = companies.join(flows.select("company_id").unique(), on="company_id", how="anti")
    excluded = pl.concat(
        [
            pv.filter(pl.col("xnpv").is_null()).select("company_id", "reason"),
            none.select("company_id", pl.lit("no rows in dated_flows").alias("reason")),
        ]
    )
    detail = (
        pv.filter(pl.col("xnpv").is_not_null())
        .join(companies, on="company_id", how="left")
        .with_columns(pl.col("xnpv").alias("enterprise_value"))
        .pipe(equity_bridge)
    )
    # range: the same flows at r + / - range.rate_delta
    delta = valuation.range.rate_delta
    bounds = [
        xnpv_frame(
            flows,
            rate=rates.with_columns(pl.col("rate") + shift),
            valuation_date=valuation.valuation_date,
        ).select("company_id", pl.col("xnpv").alias(name))
        for name, shift in (("_ev_low", delta), ("_ev_high", -delta))
    ]
    for bound in bounds:
        detail = detail.join(bound, on="company_id", how="left")
    # the bridge per share: value per share = EV / shares + bridge / shares
    per_share = pl.col("value_per_share") - pl.col("enterprise_value") / pl.col("shares_diluted")
    valued = detail.select(
        "company_id",
        "enterprise_value",
        "equity_value",
        "value_per_share",
        (pl.col("_ev_low") / pl.col("shares_diluted") + per_share).alias("low"),
        (pl.col("_ev_high") / pl.col("shares_diluted") + per_share).alias("high"),
    ).sort("company_id")
    return MethodResult(
        valued=valued,
        excluded=excluded,
        tables={"dated_detail": detail.drop("_ev_low", "_ev_high")},
    )


def _all_excluded(valid: dict[str, pl.DataFrame], reason: str) -> MethodResult:
    return MethodResult(
        valued=pl.DataFrame(schema={"company_id": pl.String}),
        excluded=valid["companies"].select("company_id", pl.lit(reason).alias("reason")),
    )


METHODS: dict[str, Callable[[dict[str, pl.DataFrame], ValuationConfig], MethodResult]] = {
    "dcf": dcf_method,
    "comparables": comparables_method,
    "asset": asset_method,
    "ddm": ddm_method,
    "fcfe": fcfe_method,
    "dated": dated_method,
}


def method_function(
    name: str,
) -> Callable[[dict[str, pl.DataFrame], ValuationConfig], MethodResult]:
    """The method called ``name``: built-in, else a plug-in (registered in code or installed)."""
    function = METHODS.get(name) or plugin(METHOD_GROUP, name)
    if function is None:
        known = [*METHODS, *plugin_names(METHOD_GROUP)]
        msg = f"unknown valuation method {name!r}{did_you_mean(name, known)}"
        raise ConfigurationError(msg, column="valuation.methods", hint="known: " + ", ".join(known))
    return function


def route_exclusions(
    companies: pl.DataFrame, *, routes: dict[str, list[str]], method: str
) -> pl.DataFrame:
    """Companies that ``valuation.routes`` sends to other methods than ``method``, with why.

    A company_id key wins over the company's sector.

    >>> c = pl.DataFrame({"company_id": ["A", "B"], "sector": ["Banks", "Tech"]})
    >>> route_exclusions(c, routes={"Banks": ["ddm"]}, method="dcf")["reason"].to_list()
    ['valuation.routes.Banks values it by ddm only']
    """
    if not routes:
        return pl.DataFrame(schema={"company_id": pl.String, "reason": pl.String})
    listed = {key: ", ".join(names) for key, names in routes.items()}
    allowed = {key: method in names for key, names in routes.items()}
    key = pl.when(pl.col("company_id").is_in(list(routes))).then(pl.col("company_id"))
    key = key.when(pl.col("sector").is_in(list(routes))).then(pl.col("sector"))
    return (
        companies.select("company_id", key.alias("key"))
        .filter(pl.col("key").is_not_null())
        .filter(~pl.col("key").replace_strict(allowed, return_dtype=pl.Boolean))
        .select(
            "company_id",
            format_text(
                "valuation.routes.{} values it by {} only",
                pl.col("key"),
                pl.col("key").replace_strict(listed, return_dtype=pl.String),
            ).alias("reason"),
        )
    )


def _routed(
    result: MethodResult, valid: dict[str, pl.DataFrame], valuation: ValuationConfig, method: str
) -> MethodResult:
    away = route_exclusions(valid["companies"], routes=valuation.routes, method=method)
    if away.height == 0:
        return result
    ids = away["company_id"].implode()
    inputs = result.inputs
    if inputs is not None:
        inputs = inputs.take(~inputs.companies["company_id"].is_in(ids).to_numpy())
    tables = {
        name: table.filter(~pl.col("company_id").is_in(ids))
        if "company_id" in table.columns
        else table
        for name, table in result.tables.items()
    }
    return replace(
        result,
        tables=tables,
        valued=result.valued.filter(~pl.col("company_id").is_in(ids)),
        excluded=pl.concat([away, result.excluded.filter(~pl.col("company_id").is_in(ids))]),
        inputs=inputs,
    )


def risk_tables(
    inputs: DcfInputs,
    valid: dict[str, pl.DataFrame],
    valuation: ValuationConfig,
    *,
    shock_cache: CacheConfig | None = None,
) -> dict[str, pl.DataFrame]:
    """Sensitivity grids, scenarios, Monte Carlo and reverse DCF for the DCF-valued companies.

    ``shock_cache``: the step cache's settings, where the simulation's shocks are kept.
    """
    out: dict[str, pl.DataFrame] = {}
    if inputs.companies.height == 0:
        return out
    sens = valuation.sensitivity
    if sens.enabled:
        grids = [
            sensitivity_rate_growth(
                inputs, rate_deltas=sens.rate_deltas, growth_deltas=sens.growth_deltas
            )
        ]
        if valuation.forecast == "explicit":
            grids.append(
                sensitivity_rate_multiple(
                    inputs, rate_deltas=sens.rate_deltas, exit_multiples=sens.exit_multiples
                )
            )
        out["sensitivity"] = pl.concat(grids)
    if valuation.scenarios:
        out["scenarios"], out["scenario_summary"] = scenario_values(
            inputs, valuation.scenarios, terminal=valuation.terminal
        )
    if valuation.monte_carlo.enabled:
        out["simulation"], out["simulation_draws"] = monte_carlo(
            inputs,
            valuation.monte_carlo,
            terminal=valuation.terminal,
            keep_draws=inputs.companies["company_id"].head(20).to_list(),
            shock_cache=shock_cache,
        )
    out["reverse_dcf"] = _reverse(inputs, valid, valuation)
    return out


def _reverse(
    inputs: DcfInputs, valid: dict[str, pl.DataFrame], valuation: ValuationConfig
) -> pl.DataFrame:
    financials = valid["financials"]
    base = (
        financials.filter(~pl.col("is_forecast"))
        .join(valid["companies"].select("company_id", "tax_rate"), on="company_id")
        .sort("company_id", "year")
        .group_by("company_id", maintain_order=True)
        .last()
        .select("company_id", "year", fcff_expr().alias("base_fcff"))
    )
    # Year 1 of the DCF follows its base year, which a valuation date may put after the last
    # actual year: the base flow then grows over those closed years too (never counted by rank).
    bases = base_years(
        financials,
        valuation_date=valuation.valuation_date if valuation.forecast == "explicit" else None,
        fiscal_year_end_md=valuation.fiscal_year_end,
    )
    base = base.join(bases, on="company_id", how="left").select(
        "company_id", "base_fcff", (pl.col("base_year") - pl.col("year")).alias("lead")
    )
    frame = inputs.companies.select("company_id", "share_price").join(
        base, on="company_id", how="left", maintain_order="left"
    )
    growth, code = reverse_dcf(
        inputs,
        base_flow=frame["base_fcff"].fill_null(np.nan).to_numpy(),
        price=frame["share_price"].fill_null(np.nan).to_numpy(),
        lead=frame["lead"].fill_null(0).to_numpy(),
    )
    # Under an exit multiple a company with r <= g is DCF-valued, but has no Gordon value to solve.
    tv_rate = inputs.rate if inputs.stable_rate is None else inputs.stable_rate
    no_gordon = ~(tv_rate > inputs.growth)
    code = np.where(no_gordon, 3, code)
    reasons = [
        None,
        "no share price, or last actual FCFF not positive",
        "price outside the values reachable with growth in [-95%, 200%]",
        "discount rate not above terminal growth: no Gordon growth value to solve for",
    ]
    return frame.drop("lead").with_columns(
        pl.Series("implied_fcff_growth", np.where(no_gordon, np.nan, growth)).fill_nan(None),
        pl.Series("reason", reasons, dtype=pl.String).gather(code),
    )


def value_companies(
    valid: dict[str, pl.DataFrame],
    *,
    valuation: ValuationConfig,
    universe: pl.Series,
    quarantine: pl.DataFrame,
    shock_cache: CacheConfig | None = None,
) -> dict[str, pl.DataFrame]:
    """Run every configured method, risk analyses and the blend.

    ``universe`` is every company id seen in the input; ``quarantine`` explains those whose
    company row did not pass validation; ``shock_cache`` (the step cache's settings) keeps the
    Monte Carlo's shocks. Returns ``valuations``, ``blend`` and detail tables.
    """
    universe = universe.drop_nulls().unique().sort()
    rejected = (
        quarantine.filter(pl.col("table") == "companies", pl.col("company_id").is_not_null())
        .group_by("company_id", maintain_order=True)
        .agg(pl.col("reason").unique(maintain_order=True).str.join("; "))
        .select(
            "company_id",
            format_text("company row quarantined: {}", pl.col("reason")).alias("reason"),
        )
    )
    out: dict[str, pl.DataFrame] = {}
    rows = []
    for method in valuation.methods:
        result = _routed(method_function(method)(valid, valuation), valid, valuation, method)
        out.update(result.tables)
        if result.inputs is not None:
            out.update(risk_tables(result.inputs, valid, valuation, shock_cache=shock_cache))
        rows.append(_method_rows(method, result, rejected, universe))
    valuations = (
        pl.concat(rows, how="diagonal_relaxed")
        .select(list(VALUATION_DTYPES))
        .cast(VALUATION_DTYPES)
        .sort("company_id", "method")
    )
    out["valuations"] = valuations
    out["blend"] = blend_values(valuations, weights=valuation.blend)
    out["accuracy"] = accuracy_table(valuations, out["blend"], valid["companies"])
    if "dcf_detail" in out:
        out["diagnostics"] = diagnostics_table(
            out["dcf_detail"],
            financials=valid["financials"],
            peers=out.get("comparables_detail"),
            config=valuation.diagnostics,
        )
    return out


def _method_rows(
    method: str, result: MethodResult, rejected: pl.DataFrame, universe: pl.Series
) -> pl.DataFrame:
    excluded = pl.concat([result.excluded.select("company_id", "reason"), rejected])
    excluded = excluded.unique("company_id", keep="first", maintain_order=True)
    excluded = excluded.join(result.valued.select("company_id"), on="company_id", how="anti")
    accounted = pl.concat([result.valued["company_id"], excluded["company_id"]])
    unseen = universe.filter(~universe.is_in(accounted.implode()))
    excluded = pl.concat(
        [
            excluded,
            pl.DataFrame({"company_id": unseen, "reason": "no valid input rows for this method"}),
        ]
    )
    return pl.concat(
        [
            result.valued.with_columns(
                pl.lit("valued").alias("status"), pl.lit(None, pl.String).alias("reason")
            ),
            excluded.with_columns(pl.lit("excluded").alias("status")),
        ],
        how="diagonal_relaxed",
    ).with_columns(pl.lit(method).alias("method"))
