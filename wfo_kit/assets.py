"""Asset-based methods: adjusted net asset value and liquidation value.

* Adjusted value of a line = book value + signed fair-value adjustment (assets and liabilities).
  Adjusted net asset value (NAV) = adjusted assets - adjusted liabilities: the value to common
  equity, so every claim senior to common equity (debt, preferred, minorities) belongs in the
  balance-sheet table as a liability.
* Liquidation: each asset recovers adjusted value x recovery rate (the row's ``recovery_rate``,
  else ``asset.recovery_rates`` for its class, else 0, said in the table). Liquidation costs =
  ``liquidation_cost_rate`` x gross proceeds. Claims are paid in priority order: administrative
  (the liquidation costs and liabilities marked administrative), secured, unsecured; equity gets
  what is left, never below zero.

Everything is grouped Polars over all companies at once.
"""

from __future__ import annotations

import polars as pl

from wfo_kit.config import AssetConfig
from wfo_kit.dcf import bridge_expr
from wfo_kit.frames import group_sum

TIERS = ("administrative", "secured", "unsecured")


def asset_lines(balance_sheet: pl.DataFrame, *, config: AssetConfig) -> pl.DataFrame:
    """Itemised lines: adjusted value, recovery rate and recovered amount per line."""
    class_rate = pl.col("asset_class").replace_strict(
        config.recovery_rates, default=None, return_dtype=pl.Float64
    )
    is_asset = pl.col("side") == "asset"
    rate = pl.when(is_asset).then(pl.coalesce(pl.col("recovery_rate"), class_rate, pl.lit(0.0)))
    rate_source = (
        pl.when(~is_asset)
        .then(None)
        .when(pl.col("recovery_rate").is_not_null())
        .then(pl.lit("row"))
        .when(class_rate.is_not_null())
        .then(pl.lit("asset class default"))
        .otherwise(pl.lit("none given: 0 assumed"))
    )
    return balance_sheet.select(
        "company_id",
        "item",
        "side",
        "asset_class",
        "priority",
        "book_value",
        "fair_value_adjustment",
        (pl.col("book_value") + pl.col("fair_value_adjustment")).alias("adjusted_value"),
        rate.alias("recovery_rate"),
        rate_source.alias("recovery_source"),
    ).with_columns((pl.col("adjusted_value") * pl.col("recovery_rate")).alias("recovered"))


def value_assets(
    companies: pl.DataFrame, balance_sheet: pl.DataFrame, *, config: AssetConfig
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Returns (valued, itemised lines, liquidation waterfall, excluded with reason).

    Every table is sorted by company_id (lines keep their balance-sheet order within a company,
    the waterfall is in step order); each company's totals are added in line order, so the
    values do not depend on the thread count.
    """
    known = pl.col("company_id").is_in(companies["company_id"].implode())
    lines = (
        asset_lines(balance_sheet, config=config)
        .filter(known)
        .sort("company_id", maintain_order=True)
    )
    assets = pl.col("side") == "asset"
    totals = lines.group_by("company_id", maintain_order=True).agg(
        group_sum(pl.col("adjusted_value").filter(assets)).alias("adjusted_assets"),
        group_sum(pl.col("adjusted_value").filter(~assets)).alias("adjusted_liabilities"),
        group_sum(pl.col("recovered").filter(assets)).alias("gross_proceeds"),
        *[
            group_sum(
                pl.col("adjusted_value").filter(
                    ~assets & (pl.col("priority").fill_null("unsecured") == tier)
                )
            ).alias(f"claims_{tier}")
            for tier in TIERS
        ],
    )
    totals = totals.with_columns(
        (pl.col("adjusted_assets") - pl.col("adjusted_liabilities")).alias("adjusted_nav"),
        (pl.col("gross_proceeds") * config.liquidation_cost_rate).alias("liquidation_costs"),
    ).with_columns(
        (pl.col("claims_administrative") + pl.col("liquidation_costs")).alias(
            "claims_administrative"
        )
    )
    remaining = pl.col("gross_proceeds")
    paid = []
    for tier in TIERS:
        pay = pl.min_horizontal(pl.col(f"claims_{tier}"), remaining.clip(lower_bound=0.0))
        paid.append(pay.alias(f"paid_{tier}"))
        remaining = remaining - pl.col(f"claims_{tier}")
    totals = totals.with_columns(paid).with_columns(
        remaining.clip(lower_bound=0.0).alias("liquidation_value")
    )
    waterfall = _waterfall(totals)

    frame = totals.join(companies, on="company_id", how="inner", maintain_order="left")
    base = pl.col("adjusted_nav") if config.basis == "adjusted_nav" else pl.col("liquidation_value")
    bridge = bridge_expr()
    low = pl.min_horizontal("adjusted_nav", "liquidation_value")
    high = pl.max_horizontal("adjusted_nav", "liquidation_value")
    valued = frame.select(
        "company_id",
        (base - bridge).alias("enterprise_value"),
        base.alias("equity_value"),
        (base / pl.col("shares_diluted")).alias("value_per_share"),
        (low / pl.col("shares_diluted")).alias("low"),
        (high / pl.col("shares_diluted")).alias("high"),
        "adjusted_nav",
        "liquidation_value",
    )
    excluded = (
        companies.filter(~pl.col("company_id").is_in(totals["company_id"].implode()))
        .select("company_id", pl.lit("no valid balance-sheet rows").alias("reason"))
        .sort("company_id")
    )
    return valued, lines, waterfall, excluded


def _waterfall(totals: pl.DataFrame) -> pl.DataFrame:
    """Liquidation waterfall, one row per company and step: claim, paid, shortfall."""
    steps = [
        totals.select(
            "company_id",
            pl.lit(0).alias("step"),
            pl.lit("gross proceeds").alias("item"),
            pl.lit(None, pl.Float64).alias("claim"),
            pl.col("gross_proceeds").alias("paid"),
        )
    ]
    for i, tier in enumerate(TIERS, start=1):
        steps.append(
            totals.select(
                "company_id",
                pl.lit(i).alias("step"),
                pl.lit(f"{tier} claims").alias("item"),
                pl.col(f"claims_{tier}").alias("claim"),
                pl.col(f"paid_{tier}").alias("paid"),
            )
        )
    steps.append(
        totals.select(
            "company_id",
            pl.lit(len(TIERS) + 1).alias("step"),
            pl.lit("to equity").alias("item"),
            pl.lit(None, pl.Float64).alias("claim"),
            pl.col("liquidation_value").alias("paid"),
        )
    )
    return (
        pl.concat(steps)
        .with_columns((pl.col("claim") - pl.col("paid")).alias("shortfall"))
        .sort("company_id", "step")
    )
