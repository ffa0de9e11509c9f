"""The value step: run the configured methods (strategies) and collect one tidy valuations table.

A method is a function ``(valid tables, valuation config) -> MethodResult``; :data:`METHODS` maps
configuration names to them. Every company of the input universe appears in ``valuations`` once
per method: valued, or excluded with the reason (including companies whose input row was
quarantined), so nothing disappears silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from wfo_kit.config import ValuationConfig
from wfo_kit.dcf import bridge_table, value_dcf
from wfo_kit.schemas import Valuations, polars_dtypes

VALUATION_DTYPES = polars_dtypes(Valuations)


@dataclass(frozen=True)
class MethodResult:
    """Valued companies (company_id, enterprise_value, equity_value, value_per_share), excluded
    companies (company_id, reason) and any detail tables the method wants to publish."""

    valued: pl.DataFrame
    excluded: pl.DataFrame
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)


def dcf_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    detail, flows, excluded = value_dcf(
        valid["companies"],
        valid["financials"],
        discount_rate=valuation.discount_rate,
        terminal_growth=valuation.terminal_growth,
        timing=valuation.timing,
    )
    return MethodResult(
        valued=detail.select("company_id", "enterprise_value", "equity_value", "value_per_share"),
        excluded=excluded,
        tables={"dcf_detail": detail, "fcff": flows, "equity_bridge": bridge_table(detail)},
    )


METHODS: dict[str, Callable[[dict[str, pl.DataFrame], ValuationConfig], MethodResult]] = {
    "dcf": dcf_method,
}


def value_companies(
    valid: dict[str, pl.DataFrame],
    *,
    valuation: ValuationConfig,
    universe: pl.Series,
    quarantine: pl.DataFrame,
) -> dict[str, pl.DataFrame]:
    """Run every configured method; return ``valuations`` plus each method's detail tables.

    ``universe`` is every company id seen in the input; ``quarantine`` explains those whose
    company row did not pass validation.
    """
    universe = universe.drop_nulls().unique().sort()
    rejected = (
        quarantine.filter(pl.col("table") == "companies", pl.col("company_id").is_not_null())
        .group_by("company_id")
        .agg(pl.col("reason").unique(maintain_order=True).str.join("; "))
        .select(
            "company_id", pl.format("company row quarantined: {}", pl.col("reason")).alias("reason")
        )
    )
    out: dict[str, pl.DataFrame] = {}
    rows = []
    for method in valuation.methods:
        result = METHODS[method](valid, valuation)
        out.update(result.tables)
        excluded = pl.concat([result.excluded, rejected]).unique("company_id", keep="first")
        accounted = pl.concat([result.valued["company_id"], excluded["company_id"]])
        unseen = universe.filter(~universe.is_in(accounted.implode()))
        excluded = pl.concat(
            [
                excluded,
                pl.DataFrame(
                    {"company_id": unseen, "reason": "no valid input rows for this method"}
                ),
            ]
        )
        rows.append(
            pl.concat(
                [
                    result.valued.with_columns(
                        pl.lit("valued").alias("status"), pl.lit(None, pl.String).alias("reason")
                    ),
                    excluded.with_columns(pl.lit("excluded").alias("status")),
                ],
                how="diagonal",
            ).with_columns(pl.lit(method).alias("method"))
        )
    out["valuations"] = (
        pl.concat(rows, how="diagonal")
        .select(list(VALUATION_DTYPES))
        .cast(VALUATION_DTYPES)
        .sort("company_id", "method")
    )
    return out
