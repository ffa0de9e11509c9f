"""Pandera schemas (Polars backend) for every input and output table.

This module is the data contract: each column's type, unit, bounds and nullability. It is rendered
into docs/data-contract.md by ``python -m wfo_kit.schemas``; a test keeps the two in step.

Money columns are in millions of the company's ``currency`` in the bundled sample; any unit works as
long as one company's rows agree. Rates are decimals. Business rules that involve more than one
column or row (contiguous forecast years, discount rate above growth, ...) live in
:mod:`wfo_kit.validate`.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

import pandera.polars as pa
import polars as pl

# pandera reads the annotations at runtime, so `Optional[...]` (not `X | None`) is kept here.
# ruff: noqa: UP045


class _Base(pa.DataFrameModel):
    class Config:
        strict = False  # extra columns are kept and carried along, never an error
        coerce = False  # loaders cast with row-level error reporting; see wfo_kit.io


class Companies(_Base):
    """One row per company (the valuation target)."""

    company_id: str = pa.Field(unique=True, description="identifier, unique; text")
    name: str = pa.Field(description="display name; untrusted text, always escaped in reports")
    sector: str = pa.Field(description="sector label; peers are matched on it")
    currency: str = pa.Field(str_matches=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD")
    shares_diluted: float = pa.Field(gt=0, description="diluted shares outstanding, millions")
    debt: float = pa.Field(
        ge=0,
        description="gross financial debt, a positive amount owed, money",
        metadata={"sign": "a positive amount owed"},
    )
    cash: float = pa.Field(ge=0, description="cash and equivalents, money")
    minority_interest: float = pa.Field(
        ge=0,
        description="non-controlling interests, a positive claim, money",
        metadata={"sign": "a positive claim"},
    )
    preferred_equity: float = pa.Field(
        ge=0,
        description="preferred equity, a positive claim, money",
        metadata={"sign": "a positive claim"},
    )
    non_operating_assets: float = pa.Field(ge=0, description="non-operating assets, money")
    tax_rate: float = pa.Field(ge=0, lt=1, description="marginal tax rate, decimal in [0, 1)")
    beta: Optional[float] = pa.Field(nullable=True, description="levered equity beta")
    discount_rate: Optional[float] = pa.Field(
        nullable=True, gt=0, lt=1, description="WACC, decimal; null: the configured default"
    )
    terminal_growth: Optional[float] = pa.Field(
        nullable=True, gt=-0.5, lt=0.5, description="stable growth, decimal; null: configured"
    )
    stable_discount_rate: Optional[float] = pa.Field(
        nullable=True,
        gt=0,
        lt=1,
        description="discount rate of the stable phase (the terminal value's r), decimal; null: "
        "valuation.stable_discount_rate, else the discount rate throughout",
    )
    share_price: Optional[float] = pa.Field(
        nullable=True, gt=0, description="market price per share (reverse DCF, market weights)"
    )
    market_cap: Optional[float] = pa.Field(
        nullable=True, gt=0, description="equity market value, money; null: price x shares"
    )
    exit_multiple: Optional[float] = pa.Field(
        nullable=True, gt=0, description="exit EV/EBITDA at year N; null: configured"
    )
    revenue_growth: Optional[float] = pa.Field(
        nullable=True, gt=-1, description="driver mode: near-term revenue growth, decimal"
    )
    target_margin: Optional[float] = pa.Field(
        nullable=True, lt=1, description="driver mode: EBIT margin reached by year N, decimal"
    )
    sales_to_capital: Optional[float] = pa.Field(
        nullable=True, gt=0, description="driver mode: revenue per unit of invested capital"
    )
    stable_roc: Optional[float] = pa.Field(
        nullable=True, gt=0, description="driver mode: return on capital in stable growth"
    )
    effective_tax_rate: Optional[float] = pa.Field(
        nullable=True,
        ge=0,
        lt=1,
        description="explicit forecasts: effective tax rate of the early years, moving to "
        "tax_rate (valuation.taxes.fade_from_year); null: tax_rate throughout",
    )
    nol: Optional[float] = pa.Field(
        nullable=True,
        ge=0,
        description="explicit forecasts: net operating loss carried forward at the base year, "
        "money; given (0 included): losses are carried forward for this company",
    )
    cost_of_equity: Optional[float] = pa.Field(
        nullable=True,
        gt=0,
        lt=1,
        description="equity models (ddm, fcfe): cost of equity, decimal; null: CAPM from beta "
        "and valuation.wacc",
    )
    stable_cost_of_equity: Optional[float] = pa.Field(
        nullable=True,
        gt=0,
        lt=1,
        description="equity models: cost of equity in stable growth, decimal; null: "
        "valuation.equity.stable_cost_of_equity, else the cost of equity",
    )
    dividend_per_share: Optional[float] = pa.Field(
        nullable=True,
        ge=0,
        description="ddm: dividend per share, money per share: the one just paid (D0) or next "
        "year's (D1), as dividend_basis says",
    )
    dividend_basis: Optional[str] = pa.Field(
        nullable=True,
        isin=["D0", "D1"],
        description="ddm: D0 (dividend_per_share was just paid) or D1 (it is next year's); null: "
        "valuation.equity.dividend_basis",
    )
    dividend_growth: Optional[float] = pa.Field(
        nullable=True,
        gt=-1,
        lt=1,
        description="ddm: growth of dividends (or EPS) in the high-growth stage, decimal",
    )
    high_growth_years: Optional[int] = pa.Field(
        nullable=True,
        ge=0,
        le=100,
        description="ddm: years of high growth (n1); null: valuation.equity.high_growth_years",
    )
    transition_years: Optional[int] = pa.Field(
        nullable=True,
        ge=0,
        le=100,
        description="ddm three-stage: years of linear decline to stable growth (n2); H-model: 2H; "
        "null: valuation.equity.transition_years",
    )
    eps: Optional[float] = pa.Field(
        nullable=True,
        description="ddm earnings route: earnings per share of the last year, money per share",
    )
    payout_ratio: Optional[float] = pa.Field(
        nullable=True,
        ge=0,
        le=1,
        description="ddm earnings route: payout in high growth, decimal (with eps)",
    )
    stable_payout_ratio: Optional[float] = pa.Field(
        nullable=True,
        ge=0,
        le=1,
        description="ddm earnings route: payout in stable growth, decimal; null: payout_ratio",
    )


class Financials(_Base):
    """One row per company and year, actual or forecast."""

    company_id: str = pa.Field(description="company the row belongs to")
    year: int = pa.Field(ge=1900, le=2200, description="fiscal year")
    is_forecast: bool = pa.Field(description="true for forecast years, false for actuals")
    revenue: Optional[float] = pa.Field(nullable=True, ge=0, description="revenue, money")
    ebitda: Optional[float] = pa.Field(nullable=True, description="EBITDA, money")
    ebit: Optional[float] = pa.Field(nullable=True, description="EBIT (operating income), money")
    depreciation: Optional[float] = pa.Field(
        nullable=True,
        ge=0,
        description="depreciation and amortisation, a positive charge added back to FCFF, money",
        metadata={"sign": "a positive charge added back"},
    )
    capex: Optional[float] = pa.Field(
        nullable=True,
        ge=0,
        description="capital expenditure, a positive outflow (30 spent: enter 30, not -30), money",
        metadata={"sign": "a positive outflow"},
    )
    change_nwc: Optional[float] = pa.Field(
        nullable=True,
        description="increase in net working capital (positive uses cash; a decrease is "
        "negative), money",
    )
    net_income: Optional[float] = pa.Field(nullable=True, description="net income, money")
    fcff: Optional[float] = pa.Field(
        nullable=True, description="free cash flow to the firm if given; else computed, money"
    )
    invested_capital: Optional[float] = pa.Field(
        nullable=True,
        description="diagnostics: invested capital at the year end (operating assets - operating "
        "liabilities), money; ROIC of year t uses year t - 1's",
    )
    interest_expense: Optional[float] = pa.Field(
        nullable=True,
        description="fcfe: interest expense, before tax, money; null: 0 for a company with no debt",
    )
    net_borrowing: Optional[float] = pa.Field(
        nullable=True,
        description="fcfe: new debt issued - debt repaid (negative: net repayment), money; null: "
        "0 for a company with no debt",
    )


class DatedFlows(_Base):
    """Optional: cash flows on dates, for deal-style valuations (method ``dated``)."""

    company_id: str = pa.Field(description="company the flow belongs to")
    date: dt.date = pa.Field(description="date of the flow (ISO, e.g. 2026-06-30)")
    amount: float = pa.Field(
        description="free cash flow to the firm on that date, money (an exit or terminal value "
        "is one more dated flow)"
    )


class Peers(_Base):
    """Comparable companies, matched to targets by sector."""

    peer_id: str = pa.Field(unique=True, description="identifier, unique")
    name: str = pa.Field(description="display name")
    sector: str = pa.Field(description="sector label")
    enterprise_value: float = pa.Field(gt=0, description="enterprise value, money")
    market_cap: float = pa.Field(gt=0, description="equity market value, money")
    revenue: Optional[float] = pa.Field(nullable=True, description="revenue, money")
    ebitda: Optional[float] = pa.Field(nullable=True, description="EBITDA, money")
    ebit: Optional[float] = pa.Field(nullable=True, description="EBIT, money")
    net_income: Optional[float] = pa.Field(nullable=True, description="net income, money")


class BalanceSheet(_Base):
    """Balance-sheet items per company for the asset-based methods."""

    company_id: str = pa.Field(description="company the item belongs to")
    item: str = pa.Field(description="line item label")
    side: str = pa.Field(isin=["asset", "liability"], description="asset or liability")
    asset_class: Optional[str] = pa.Field(nullable=True, description="class for recovery rates")
    book_value: float = pa.Field(
        description="book value, money; a liability's book value is entered positive (a claim), "
        "an asset's may be negative (a contra-asset)"
    )
    fair_value_adjustment: float = pa.Field(description="signed adjustment to fair value, money")
    adjusted_value: Optional[float] = pa.Field(
        nullable=True, description="stated fair value; must equal book + adjustment if given"
    )
    recovery_rate: Optional[float] = pa.Field(
        nullable=True, ge=0, le=1, description="share of fair value recovered in liquidation"
    )
    priority: Optional[str] = pa.Field(
        nullable=True,
        isin=["administrative", "secured", "unsecured"],
        description="claim priority of a liability in liquidation",
    )


# Output tables ------------------------------------------------------------------------------


class Valuations(_Base):
    """One row per company and method: valued, or excluded with a reason."""

    company_id: str = pa.Field(description="company")
    method: str = pa.Field(description="valuation method name")
    status: str = pa.Field(isin=["valued", "excluded"], description="valued or excluded")
    reason: Optional[str] = pa.Field(nullable=True, description="why excluded; null if valued")
    enterprise_value: Optional[float] = pa.Field(nullable=True, description="money")
    equity_value: Optional[float] = pa.Field(nullable=True, description="money")
    value_per_share: Optional[float] = pa.Field(nullable=True, description="money per share")
    low: Optional[float] = pa.Field(nullable=True, description="low end of the range, per share")
    high: Optional[float] = pa.Field(nullable=True, description="high end of the range, per share")


class Diagnostics(_Base):
    """One row per DCF-valued company and check: a traffic light (docs/conventions.md)."""

    company_id: str = pa.Field(description="company")
    check: str = pa.Field(
        isin=[
            "exit_multiple_vs_peers",
            "growth_consistency",
            "roic_vs_wacc",
            "spread",
            "terminal_share",
        ],
        description="the check",
    )
    value: Optional[float] = pa.Field(nullable=True, description="the figure checked, decimal")
    light: str = pa.Field(isin=["green", "amber", "red", "grey"], description="the verdict")
    rule: str = pa.Field(description="the thresholds, in words")
    note: Optional[str] = pa.Field(nullable=True, description="why grey: the missing input")


class Accuracy(_Base):
    """Model value / market price per method (``blend``: the blended base) and sector (``all``)."""

    method: str = pa.Field(description="valuation method, or blend")
    sector: str = pa.Field(description="sector, or all")
    companies: int = pa.Field(ge=0, description="companies with a price and a positive value")
    not_positive: int = pa.Field(ge=0, description="companies with a price and a value <= 0")
    median_ratio: Optional[float] = pa.Field(nullable=True, description="median value / price")
    median_abs_log_error: Optional[float] = pa.Field(
        nullable=True, ge=0, description="median |ln(value / price)|"
    )
    share_within_20pct: Optional[float] = pa.Field(
        nullable=True, ge=0, le=1, description="share with 0.8 <= value / price <= 1.2"
    )


class Blend(_Base):
    """One row per company: the methods blended into one range (per share)."""

    company_id: str = pa.Field(unique=True, description="company")
    low: Optional[float] = pa.Field(nullable=True, description="blended low, per share")
    base: Optional[float] = pa.Field(nullable=True, description="blended base, per share")
    high: Optional[float] = pa.Field(nullable=True, description="blended high, per share")
    methods_used: Optional[str] = pa.Field(nullable=True, description="methods and their weights")
    methods_missing: Optional[str] = pa.Field(
        nullable=True, description="methods that could not value the company, with reasons"
    )


class Sensitivity(_Base):
    """One row per company and grid point."""

    company_id: str = pa.Field(description="company")
    grid: str = pa.Field(isin=["rate_x_growth", "rate_x_exit_multiple"], description="grid")
    rate_delta: float = pa.Field(description="shift added to the discount rate, decimal")
    discount_rate: float = pa.Field(description="discount rate at this point, decimal")
    second_name: str = pa.Field(
        isin=["terminal_growth", "exit_multiple"], description="the second axis"
    )
    second_delta: Optional[float] = pa.Field(
        nullable=True, description="shift of terminal growth (null on the multiple grid)"
    )
    second_value: float = pa.Field(description="terminal growth (decimal) or exit multiple")
    value_per_share: Optional[float] = pa.Field(
        nullable=True, description="money per share; null where r <= g"
    )


class Scenarios(_Base):
    """One row per company and named scenario."""

    company_id: str = pa.Field(description="company")
    scenario: str = pa.Field(description="scenario name")
    probability: float = pa.Field(ge=0, le=1, description="scenario probability")
    discount_rate: float = pa.Field(description="decimal")
    terminal_growth: float = pa.Field(description="decimal")
    cash_flow_scale: float = pa.Field(gt=0, description="multiplier on every forecast FCFF")
    value_per_share: Optional[float] = pa.Field(
        nullable=True, description="money per share; null where r <= g"
    )


class Simulation(_Base):
    """One row per company: Monte Carlo summary of value per share."""

    company_id: str = pa.Field(unique=True, description="company")
    draws: int = pa.Field(gt=0, description="draws made")
    rejected: int = pa.Field(ge=0, description="draws with r <= g, not counted")
    mean: Optional[float] = pa.Field(nullable=True, description="money per share")
    std: Optional[float] = pa.Field(nullable=True, description="standard deviation (ddof 1)")
    p5: Optional[float] = pa.Field(nullable=True, description="5th percentile")
    p25: Optional[float] = pa.Field(nullable=True, description="25th percentile")
    p50: Optional[float] = pa.Field(nullable=True, description="median")
    p75: Optional[float] = pa.Field(nullable=True, description="75th percentile")
    p95: Optional[float] = pa.Field(nullable=True, description="95th percentile")
    sampler: str = pa.Field(isin=["random", "sobol"], description="uniform sampler")
    seed: int = pa.Field(description="seed of the draws")


class Quarantine(_Base):
    """One row per failed check on an input row."""

    table: str = pa.Field(description="input table name")
    row: int = pa.Field(ge=1, description="1-based data row in the source (CSV line = row + 1)")
    company_id: Optional[str] = pa.Field(nullable=True, description="company of the row, if known")
    column: Optional[str] = pa.Field(nullable=True, description="offending column, if one")
    check: str = pa.Field(description="name of the failed check")
    value: Optional[str] = pa.Field(nullable=True, description="offending value as text")
    reason: str = pa.Field(description="what is wrong, in words")


class Quality(_Base):
    """Per input table: rows in = valid + quarantined."""

    table: str = pa.Field(description="input table name")
    rows_in: int = pa.Field(ge=0, description="rows read")
    rows_valid: int = pa.Field(ge=0, description="rows passed on")
    rows_quarantined: int = pa.Field(ge=0, description="rows quarantined")
    score: float = pa.Field(ge=0, le=1, description="rows_valid / rows_in (1.0 for an empty table)")


class SettingEffects(_Base):
    """One row per configured value that applies to none or only some of the companies."""

    setting: str = pa.Field(description="dotted setting, e.g. valuation.discount_rate")
    value: str = pa.Field(description="its value, as JSON text")
    source: str = pa.Field(description="where it was set: file:..., env, --set, override")
    applies_to: Optional[int] = pa.Field(
        nullable=True, ge=0, description="companies (or named ids/columns) it applies to"
    )
    of: Optional[int] = pa.Field(nullable=True, ge=0, description="out of how many")
    note: str = pa.Field(description="what it applies to, and why not to the others")


INPUT_SCHEMAS: dict[str, type[_Base]] = {
    "companies": Companies,
    "financials": Financials,
    "peers": Peers,
    "balance_sheet": BalanceSheet,
    "dated_flows": DatedFlows,
}

OUTPUT_SCHEMAS: dict[str, type[_Base]] = {
    "valuations": Valuations,
    "blend": Blend,
    "diagnostics": Diagnostics,
    "accuracy": Accuracy,
    "sensitivity": Sensitivity,
    "scenarios": Scenarios,
    "simulation": Simulation,
    "quarantine": Quarantine,
    "quality": Quality,
    "setting_effects": SettingEffects,
}

#: Columns a loader may fill when absent from the input, with the value it fills in.
OPTIONAL_COLUMNS: dict[str, dict[str, object]] = {
    "companies": {
        "minority_interest": 0.0,
        "preferred_equity": 0.0,
        "non_operating_assets": 0.0,
        "beta": None,
        "discount_rate": None,
        "terminal_growth": None,
        "stable_discount_rate": None,
        "share_price": None,
        "market_cap": None,
        "exit_multiple": None,
        "revenue_growth": None,
        "target_margin": None,
        "sales_to_capital": None,
        "stable_roc": None,
        "effective_tax_rate": None,
        "nol": None,
        "cost_of_equity": None,
        "stable_cost_of_equity": None,
        "dividend_per_share": None,
        "dividend_basis": None,
        "dividend_growth": None,
        "high_growth_years": None,
        "transition_years": None,
        "eps": None,
        "payout_ratio": None,
        "stable_payout_ratio": None,
    },
    "financials": {
        "net_income": None,
        "fcff": None,
        "ebitda": None,
        "revenue": None,
        "ebit": None,
        "depreciation": None,
        "capex": None,
        "change_nwc": None,
        "invested_capital": None,
        "interest_expense": None,
        "net_borrowing": None,
    },
    "peers": {"revenue": None, "ebitda": None, "ebit": None, "net_income": None},
    "balance_sheet": {
        "asset_class": None,
        "recovery_rate": None,
        "priority": None,
        "fair_value_adjustment": 0.0,
        "adjusted_value": None,
    },
}


def polars_dtypes(schema: type[_Base]) -> dict[str, pl.DataType]:
    """Column name -> Polars dtype, in contract order."""
    return {name: column.dtype.type for name, column in schema.to_schema().columns.items()}


def sign_conventions(schema: type[_Base]) -> dict[str, str]:
    """Column name -> its sign convention in words, for columns that fix one (e.g. capex).

    These are amounts that financial statements show with either sign (capex is negative in a
    cash-flow statement); the contract takes them positive and validation says how to enter one.
    """
    return {
        name: column.metadata["sign"]
        for name, column in schema.to_schema().columns.items()
        if column.metadata and "sign" in column.metadata
    }


def empty_frame(schema: type[_Base]) -> pl.DataFrame:
    """A zero-row frame with the schema's columns and dtypes."""
    return pl.DataFrame(schema=polars_dtypes(schema))


def contract_markdown() -> str:
    """The data contract as Markdown (docs/data-contract.md)."""
    lines = [
        "# Data contract",
        "",
        "Generated from `wfo_kit/schemas.py` by `python -m wfo_kit.schemas`; do not edit by hand.",
        "Money is in the units of the input (the sample: millions of the row's currency);",
        "rates are decimals (0.09 = 9 %). Columns marked optional may be left out of an input",
        "file: the loader fills them with the default shown.",
        "",
        "Every input table: a column name appears once (a repeated one is refused); a required",
        "text column is never empty or only whitespace; an integer column takes whole numbers",
        "(2023.0 reads as 2023, 2023.5 is quarantined, never truncated); amounts with a stated",
        "sign (capex, depreciation, debt, ...) are entered positive. A row that breaks a rule is",
        "quarantined with the reason.",
        "",
    ]
    for group, schemas in (("Input", INPUT_SCHEMAS), ("Output", OUTPUT_SCHEMAS)):
        for table, schema in schemas.items():
            lines += [f"## {group}: `{table}`", "", (schema.__doc__ or "").strip(), ""]
            lines += [
                "| column | type | nullable | checks | meaning | optional (default) |",
                "|---|---|---|---|---|---|",
            ]
            optional = OPTIONAL_COLUMNS.get(table, {})
            for name, column in schema.to_schema().columns.items():
                checks = ", ".join(_check_text(c) for c in column.checks) or ""
                if column.unique:
                    checks = ", ".join(filter(None, ["unique", checks]))
                default = f"yes ({optional[name]})" if name in optional else ""
                lines.append(
                    f"| `{name}` | {column.dtype} | {'yes' if column.nullable else 'no'} | "
                    f"{checks} | {column.description or ''} | {default} |"
                )
            lines.append("")
    return "\n".join(lines)


def _check_text(check: object) -> str:
    stats = getattr(check, "statistics", {}) or {}
    name = getattr(check, "name", str(check))
    if stats:
        args = ", ".join(f"{v}" for v in stats.values())
        return f"{name}({args})"
    return str(name)


if __name__ == "__main__":
    from pathlib import Path

    target = Path(__file__).resolve().parent.parent / "docs" / "data-contract.md"
    target.write_text(contract_markdown() + "\n", encoding="utf-8")
