"""Blend the methods into one range per company (the football field's last bar).

Weights come from ``valuation.blend``; for each company they are renormalised over the methods
that valued it, and the methods that did not are named with their reason.

* base = sum(w_i x base_i) / sum(w_i) over the methods that valued the company;
* high = base + sum(w_i x (high_i - base_i)) / sum(w_i) over the methods that have a high, and
  low likewise: each bound's spread is renormalised over the methods that have that bound.

With every bound present this is exactly the weighted average of the bounds. A method whose bound
could not be computed (the DCF high when r - delta <= g + delta, for instance) is named in
``methods_missing`` ("dcf high: not computed ..."): it does not count as 0, and the blend is never
upside down (low <= base <= high whenever each method's is). No method with a bound: null bound.
"""

from __future__ import annotations

import polars as pl

from wfo_kit.frames import format_text, group_sum

#: bound column -> (name in methods_missing, sign of its spread from the base)
BOUNDS = {"low": ("low", -1.0), "high": ("high", 1.0)}


def _gaps(frame: pl.DataFrame, usable: pl.Expr) -> pl.DataFrame:
    """company_id, methods_missing: methods not valued, and bounds a used method lacks."""
    not_valued = frame.filter((pl.col("status") != "valued") & (pl.col("weight") > 0)).select(
        "company_id", "method", pl.col("reason").fill_null("not valued")
    )
    no_base = frame.filter(
        (pl.col("status") == "valued")
        & (pl.col("weight") > 0)
        & pl.col("value_per_share").is_null()
    ).select("company_id", "method", pl.lit("valued without a base value").alias("reason"))
    bounds = [
        frame.filter(usable & pl.col(column).is_null()).select(
            "company_id",
            format_text("{} {}", pl.col("method"), pl.lit(name)).alias("method"),
            pl.lit(
                f"not computed (the blended {name} spreads over the methods that have one)"
            ).alias("reason"),
        )
        for column, (name, _) in BOUNDS.items()
    ]
    # Methods missing for the same reason are named together, the reason once.
    return (
        pl.concat([not_valued, no_base, *bounds])
        .group_by("company_id", "reason", maintain_order=True)
        .agg(pl.col("method").sort().str.join(", "))
        .group_by("company_id", maintain_order=True)
        .agg(
            pl.concat_str([pl.col("method"), pl.lit(": "), pl.col("reason")])
            .str.join("; ")
            .alias("methods_missing")
        )
    )


def blend_values(valuations: pl.DataFrame, *, weights: dict[str, float]) -> pl.DataFrame:
    """One row per company: low, base, high (per share), methods used with weights, missing.

    ``valuations`` has company_id, method, status, reason, low, value_per_share, high; a null or
    NaN bound counts as not computed. ``weights`` maps method names to non-negative weights
    (renormalised per company; a method not named has weight 0).

    Examples
    --------
    >>> import polars as pl
    >>> v = pl.DataFrame({
    ...     "company_id": ["A", "A"], "method": ["dcf", "comparables"],
    ...     "status": ["valued", "valued"], "reason": [None, None],
    ...     "low": [25.0, 15.0], "value_per_share": [80.0, 20.0], "high": [None, 25.0]})
    >>> row = blend_values(v, weights={"dcf": 0.5, "comparables": 0.5}).row(0, named=True)
    >>> row["low"], row["base"], row["high"]
    (20.0, 50.0, 55.0)
    >>> row["methods_missing"]
    'dcf high: not computed (the blended high spreads over the methods that have one)'
    """
    weight = pl.col("method").replace_strict(weights, default=0.0, return_dtype=pl.Float64)
    # Sorted by company and method: methods are named, and their terms added, in that order.
    frame = valuations.sort("company_id", "method", maintain_order=True).with_columns(
        weight.alias("weight"),
        *[pl.col(c).cast(pl.Float64).fill_nan(None) for c in ("low", "value_per_share", "high")],
    )
    usable = (
        (pl.col("status") == "valued")
        & (pl.col("weight") > 0)
        & pl.col("value_per_share").is_not_null()
    )
    total = group_sum(pl.col("weight").filter(usable))
    base = group_sum((pl.col("value_per_share") * pl.col("weight")).filter(usable)) / total

    def bound(column: str) -> pl.Expr:
        has = usable & pl.col(column).is_not_null()
        spread_weight = group_sum(pl.col("weight").filter(has))
        spread = ((pl.col(column) - pl.col("value_per_share")) * pl.col("weight")).filter(has)
        return pl.when(spread_weight > 0).then(base + group_sum(spread) / spread_weight)

    return (
        frame.group_by("company_id", maintain_order=True)
        .agg(
            pl.when(total > 0).then(bound("low")).alias("low"),
            pl.when(total > 0).then(base).alias("base"),
            pl.when(total > 0).then(bound("high")).alias("high"),
            pl.concat_str(
                [pl.col("method"), pl.lit(" "), (pl.col("weight") / total).round(4).cast(pl.String)]
            )
            .filter(usable)
            .str.join(", ")
            .alias("methods_used"),
        )
        .join(_gaps(frame, usable), on="company_id", how="left", maintain_order="left")
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
