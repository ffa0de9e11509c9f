"""Blend the methods into one range per company (the football field's last bar).

Weights come from ``valuation.blend``; for each company they are renormalised over the methods
that valued it, and the methods that did not are named with their reason. Low, base and high are
blended separately: blended low = sum(w_i x low_i) / sum(w_i) over available methods.
"""

from __future__ import annotations

import polars as pl


def blend_values(valuations: pl.DataFrame, *, weights: dict[str, float]) -> pl.DataFrame:
    """One row per company: low, base, high (per share), methods used with weights, missing."""
    weight = pl.col("method").replace_strict(weights, default=0.0, return_dtype=pl.Float64)
    frame = valuations.with_columns(weight.alias("weight"))
    usable = (pl.col("status") == "valued") & (pl.col("weight") > 0)
    used_weight = pl.col("weight").filter(usable)
    total = used_weight.sum()

    def blended(column: str) -> pl.Expr:
        return (pl.col(column).filter(usable) * used_weight).sum() / total

    # Methods missing for the same reason are named together, the reason once.
    gaps = (
        frame.filter((pl.col("status") != "valued") & (pl.col("weight") > 0))
        .with_columns(pl.col("reason").fill_null("not valued"))
        .group_by("company_id", "reason", maintain_order=True)
        .agg(pl.col("method").sort().str.join(", "))
        .group_by("company_id", maintain_order=True)
        .agg(
            pl.concat_str([pl.col("method"), pl.lit(": "), pl.col("reason")])
            .str.join("; ")
            .alias("methods_missing")
        )
    )
    return (
        frame.group_by("company_id", maintain_order=True)
        .agg(
            pl.when(total > 0).then(blended("low")).alias("low"),
            pl.when(total > 0).then(blended("value_per_share")).alias("base"),
            pl.when(total > 0).then(blended("high")).alias("high"),
            pl.concat_str(
                [pl.col("method"), pl.lit(" "), (pl.col("weight") / total).round(4).cast(pl.String)]
            )
            .filter(usable)
            .str.join(", ")
            .alias("methods_used"),
        )
        .join(gaps, on="company_id", how="left")
        .with_columns(
            pl.when(pl.col("methods_used") == "")
            .then(None)
            .otherwise(pl.col("methods_used"))
            .alias("methods_used"),
            pl.when(pl.col("methods_missing") == "")
            .then(None)
            .otherwise(pl.col("methods_missing"))
            .alias("methods_missing"),
        )
        .sort("company_id")
    )
