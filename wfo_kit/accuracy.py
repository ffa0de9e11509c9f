"""Valuation accuracy: how close each method's value is to the market price, by method and sector.

For every company with a ``share_price`` and a positive value per share from a method (the blend's
base counts as method ``blend``): ratio = value / price and log error = ln(value / price). Per
method and sector (and sector ``all``): the companies counted, the median ratio, the median
absolute log error and the share within +-20 % (0.8 <= ratio <= 1.2). A non-positive value has no
log error: it is counted in ``not_positive``, not in the statistics.
"""

from __future__ import annotations

import polars as pl

from wfo_kit.frames import group_mean

#: the band of "within 20 %": 0.8 <= value / price <= 1.2
BAND = 0.20


def accuracy_table(
    valuations: pl.DataFrame, blend: pl.DataFrame | None, companies: pl.DataFrame
) -> pl.DataFrame:
    """method, sector, companies, not_positive, median_ratio, median_abs_log_error,
    share_within_20pct; sorted by method, sector (``all`` first within a method).

    >>> v = pl.DataFrame({"company_id": ["A", "B"], "method": ["dcf", "dcf"],
    ...     "status": ["valued", "valued"], "value_per_share": [11.0, 5.0]})
    >>> c = pl.DataFrame({"company_id": ["A", "B"], "sector": ["S", "S"],
    ...     "share_price": [10.0, 10.0]})
    >>> accuracy_table(v, None, c).row(0, named=True)["share_within_20pct"]
    0.5
    """
    rows = valuations.filter(pl.col("status") == "valued").select(
        "company_id", "method", "value_per_share"
    )
    if blend is not None:
        rows = pl.concat(
            [
                rows,
                blend.select(
                    "company_id",
                    pl.lit("blend").alias("method"),
                    pl.col("base").alias("value_per_share"),
                ),
            ]
        )
    priced = companies.select("company_id", "sector", "share_price").filter(
        pl.col("share_price") > 0
    )
    joined = rows.join(priced, on="company_id", how="inner").filter(
        pl.col("value_per_share").is_not_null()
    )
    ratio = pl.col("value_per_share") / pl.col("share_price")
    positive = pl.col("value_per_share") > 0
    joined = joined.with_columns(
        pl.when(positive).then(ratio).alias("ratio"),
        pl.when(positive).then(ratio.log().abs()).alias("abs_log_error"),
    )
    stats = [
        pl.col("ratio").is_not_null().sum().cast(pl.Int64).alias("companies"),
        pl.col("ratio").is_null().sum().cast(pl.Int64).alias("not_positive"),
        pl.col("ratio").median().alias("median_ratio"),
        pl.col("abs_log_error").median().alias("median_abs_log_error"),
        group_mean(pl.col("ratio").is_between(1 - BAND, 1 + BAND).cast(pl.Float64)).alias(
            "share_within_20pct"
        ),
    ]
    # rows in a fixed order, groups in order of appearance: the same on any thread count
    joined = joined.sort("method", "sector", "company_id")
    by_sector = joined.group_by("method", "sector", maintain_order=True).agg(stats)
    overall = (
        joined.group_by("method", maintain_order=True)
        .agg(stats)
        .with_columns(pl.lit("all").alias("sector"))
    )
    return (
        pl.concat([overall.select(by_sector.columns), by_sector])
        .with_columns((pl.col("sector") != "all").alias("_order"))
        .sort("method", "_order", "sector")
        .drop("_order")
        .select(
            "method",
            "sector",
            "companies",
            "not_positive",
            "median_ratio",
            "median_abs_log_error",
            "share_within_20pct",
        )
    )
