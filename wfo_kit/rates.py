"""Discount rates: cost of equity (CAPM) and WACC, as Polars expressions over the companies table.

Ke = rf + beta x ERP + premiums; WACC = E/(D+E) x Ke + D/(D+E) x Kd x (1 - t). Weights come from
market values (E = ``market_cap``, or ``share_price`` x diluted shares; D = ``debt``), from a target
D/E (wd = D/E / (1 + D/E)) or from a target D/V.
"""

from __future__ import annotations

import polars as pl

from wfo_kit.config import ValuationConfig, WaccConfig
from wfo_kit.frames import format_text


def cost_of_equity(beta: pl.Expr, *, wacc: WaccConfig) -> pl.Expr:
    """CAPM: rf + beta x ERP + premiums (decimals)."""
    return wacc.risk_free + beta * wacc.equity_risk_premium + wacc.premiums


def debt_weight(*, wacc: WaccConfig) -> pl.Expr:
    """D / (D + E) under the configured weighting."""
    if wacc.weights == "debt_to_equity":
        ratio = wacc.target_ratio or 0.0
        return pl.lit(ratio / (1.0 + ratio))
    if wacc.weights == "debt_to_value":
        return pl.lit(wacc.target_ratio or 0.0)
    equity = pl.coalesce(pl.col("market_cap"), pl.col("share_price") * pl.col("shares_diluted"))
    return pl.col("debt") / (pl.col("debt") + equity)


def wacc_expr(*, wacc: WaccConfig) -> pl.Expr:
    """Weighted average cost of capital per company row."""
    wd = debt_weight(wacc=wacc)
    ke = cost_of_equity(pl.col("beta"), wacc=wacc)
    return (1 - wd) * ke + wd * wacc.cost_of_debt * (1 - pl.col("tax_rate"))


def with_discount_rates(companies: pl.DataFrame, *, valuation: ValuationConfig) -> pl.DataFrame:
    """Fill ``discount_rate`` per the configured source; add ``cost_of_equity`` and ``debt_weight``.

    ``given``: the row's rate, else ``valuation.discount_rate``. ``wacc``: computed from the row's
    beta, tax rate and capital structure (null where an input is missing).
    """
    if valuation.rate_source == "given":
        return companies.with_columns(
            pl.col("discount_rate").fill_null(pl.lit(valuation.discount_rate, pl.Float64)),
            pl.lit(None, pl.Float64).alias("cost_of_equity"),
            pl.lit(None, pl.Float64).alias("debt_weight"),
        )
    return companies.with_columns(
        wacc_expr(wacc=valuation.wacc).alias("discount_rate"),
        cost_of_equity(pl.col("beta"), wacc=valuation.wacc).alias("cost_of_equity"),
        debt_weight(wacc=valuation.wacc).cast(pl.Float64).alias("debt_weight"),
    )


def wacc_gaps(companies: pl.DataFrame, *, wacc: WaccConfig) -> pl.DataFrame:
    """Companies whose WACC cannot be computed, with the missing inputs named."""
    needed = {"beta": pl.col("beta").is_null(), "tax_rate": pl.col("tax_rate").is_null()}
    if wacc.weights == "market":
        needed["market_cap or share_price"] = (
            pl.col("market_cap").is_null() & pl.col("share_price").is_null()
        )
    missing = pl.concat_str(
        [pl.when(flag).then(pl.lit(name)) for name, flag in needed.items()],
        separator=", ",
        ignore_nulls=True,
    )
    return companies.filter(pl.any_horizontal(list(needed.values()))).select(
        "company_id", format_text("WACC needs {} (rate_source: wacc)", missing).alias("reason")
    )
