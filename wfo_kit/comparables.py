"""Comparable companies (trading multiples).

Peer multiple = EV / metric (EV/EBITDA, EV/EBIT, EV/Sales) or market cap / net income (P/E). A peer
whose denominator is not positive is excluded from that multiple, with the reason. Peers are
matched to a target by an explicit ``target_id`` column when the peers table has one and the
target has at least ``min_peers`` valid peers there; otherwise by sector (the sector-level
fallback); with fewer than ``min_peers`` in the sector too, the target is excluded with the reason.
The target's metric year is checked: NTM is the year after the last actual year, LTM the year
before the first forecast year; a company whose row for that year is missing (or quarantined) is
excluded from each multiple with the reason, never valued on a neighbouring year.

Per target and multiple: the statistic (median by default; mean, harmonic mean, trimmed mean) is
the base multiple; the peer quartiles (linear interpolation, as Excel's QUARTILE.INC) give
low/high. Enterprise multiples are applied to the target's metric and bridged to equity; P/E gives
equity directly. With several multiples, the method's low/base/high are their means.
"""

from __future__ import annotations

import polars as pl

from wfo_kit.config import ComparablesConfig
from wfo_kit.dcf import bridge_expr
from wfo_kit.frames import format_text, group_mean, group_sum

#: multiple -> (numerator column in peers, metric column in peers and financials, label)
MULTIPLES: dict[str, tuple[str, str, str]] = {
    "ev_ebitda": ("enterprise_value", "ebitda", "EV/EBITDA"),
    "ev_ebit": ("enterprise_value", "ebit", "EV/EBIT"),
    "ev_sales": ("enterprise_value", "revenue", "EV/Sales"),
    "pe": ("market_cap", "net_income", "P/E"),
}
EQUITY_MULTIPLES = {"pe"}


def peer_multiples(peers: pl.DataFrame, *, multiples: list[str]) -> pl.DataFrame:
    """Long table: peer_id, sector, target_id, multiple, value (null if excluded), reason."""
    target = pl.col("target_id") if "target_id" in peers.columns else pl.lit(None, pl.String)
    parts = []
    for name in multiples:
        numerator, metric, label = MULTIPLES[name]
        ok = pl.col(metric).is_not_null() & (pl.col(metric) > 0)
        parts.append(
            peers.select(
                "peer_id",
                "sector",
                target.alias("target_id"),
                pl.lit(name).alias("multiple"),
                pl.when(ok).then(pl.col(numerator) / pl.col(metric)).alias("value"),
                pl.when(~ok)
                .then(
                    format_text(
                        "{} excluded: {} is not positive ({})",
                        pl.lit(label),
                        pl.lit(metric),
                        pl.col(metric).cast(pl.String).fill_null("missing"),
                    )
                )
                .alias("reason"),
            )
        )
    return pl.concat(parts)


def _statistic(values: pl.Expr, *, statistic: str, trim: float) -> pl.Expr:
    if statistic == "median":
        return values.median()
    # sums over a group's values in row order (group_sum): the same on any thread count
    if statistic == "mean":
        return group_mean(values)
    if statistic == "harmonic_mean":
        return values.len() / group_sum(1.0 / values)
    # trimmed mean: drop floor(trim x n) values from each end (scipy.stats.trim_mean's rule)
    n = values.len()
    cut = (n.cast(pl.Float64) * trim).floor().cast(pl.Int64)
    return group_mean(values.sort().slice(cut, n - 2 * cut))


def multiple_stats(
    table: pl.DataFrame, *, by: list[str], statistic: str, trim: float
) -> pl.DataFrame:
    """Per group: peers (count), low (Q1), base (statistic), high (Q3); groups in order of first
    appearance. Peers are taken in ``table`` order (sorted values for quantiles)."""
    valid = table.filter(pl.col("value").is_not_null())
    return valid.group_by([*by, "multiple"], maintain_order=True).agg(
        pl.len().alias("peers"),
        pl.col("value").quantile(0.25, interpolation="linear").alias("low"),
        _statistic(pl.col("value"), statistic=statistic, trim=trim).alias("base"),
        pl.col("value").quantile(0.75, interpolation="linear").alias("high"),
    )


def target_metrics(
    companies: pl.DataFrame, financials: pl.DataFrame, *, basis: str
) -> pl.DataFrame:
    """Each target's metrics: first forecast year (ntm) or last actual year (ltm).

    The basis year must border the other side: NTM is the year right after the last actual year,
    LTM the year right before the first forecast year (when that side has rows). A row missing
    there (absent, or quarantined at validation) leaves the metrics null, and ``basis_reason``
    says which year is missing instead of silently taking the next one.
    """
    ntm = basis == "ntm"
    spans = financials.group_by("company_id", maintain_order=True).agg(
        pl.col("year").filter(~pl.col("is_forecast")).max().alias("last_actual"),
        pl.col("year").filter(pl.col("is_forecast")).min().alias("first_forecast"),
    )
    rows = financials.filter(pl.col("is_forecast") == ntm).sort("company_id", "year")
    pick = rows.group_by("company_id", maintain_order=True)
    picked = (pick.first() if ntm else pick.last()).join(
        spans, on="company_id", how="left", maintain_order="left"
    )
    expected = pl.col("last_actual") + 1 if ntm else pl.col("first_forecast") - 1
    wrong_year = expected.is_not_null() & (pl.col("year") != expected)
    basis_reason = pl.when(wrong_year).then(
        format_text(
            "{} basis: no valid row for {} (the {}; missing or quarantined), "
            "so {} is not used in its place",
            pl.lit(basis),
            expected,
            pl.lit("first forecast year" if ntm else "last actual year"),
            pl.col("year"),
        )
    )
    metrics = ("ebitda", "ebit", "revenue", "net_income")
    picked = picked.select(
        "company_id",
        "year",
        *[pl.when(~wrong_year).then(pl.col(m)).alias(m) for m in metrics],
        basis_reason.alias("basis_reason"),
    )
    return companies.join(picked, on="company_id", how="left", maintain_order="left")


def value_comparables(
    companies: pl.DataFrame,
    financials: pl.DataFrame,
    peers: pl.DataFrame,
    *,
    config: ComparablesConfig,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Returns (valued: company low/base/high, detail per multiple, peer table, excluded)."""
    table = peer_multiples(peers, multiples=config.multiples)
    by_sector = multiple_stats(table, by=["sector"], statistic=config.statistic, trim=config.trim)
    by_target = (
        multiple_stats(
            table.filter(pl.col("target_id").is_not_null()),
            by=["target_id"],
            statistic=config.statistic,
            trim=config.trim,
        )
        .rename({"target_id": "company_id"})
        .filter(pl.col("peers") >= config.min_peers)
        .with_columns(pl.lit("target").alias("peer_basis"))
    )
    targets = target_metrics(companies, financials, basis=config.basis)
    grid = targets.select("company_id", "sector").join(
        pl.DataFrame({"multiple": config.multiples}), how="cross", maintain_order="left_right"
    )
    sector_stats = by_sector.filter(pl.col("peers") >= config.min_peers).with_columns(
        pl.lit("sector").alias("peer_basis")
    )
    chosen = grid.join(
        by_target, on=["company_id", "multiple"], how="left", maintain_order="left"
    ).join(
        sector_stats, on=["sector", "multiple"], how="left", suffix="_sector", maintain_order="left"
    )
    use_sector = pl.col("base").is_null()
    chosen = chosen.select(
        "company_id",
        "multiple",
        *[
            pl.when(use_sector).then(pl.col(f"{c}_sector")).otherwise(pl.col(c)).alias(c)
            for c in ("peers", "low", "base", "high", "peer_basis")
        ],
    )
    metric_value = pl.lit(None, pl.Float64)
    for name, (_, metric, _) in MULTIPLES.items():
        metric_value = (
            pl.when(pl.col("multiple") == name).then(pl.col(metric)).otherwise(metric_value)
        )
    bridge = bridge_expr()
    equity_multiple = pl.col("multiple").is_in(list(EQUITY_MULTIPLES))
    detail = chosen.join(targets, on="company_id", how="left", maintain_order="left").with_columns(
        metric_value.alias("metric_value"), bridge.alias("bridge")
    )
    reason = (
        pl.when(pl.col("basis_reason").is_not_null())
        .then(pl.col("basis_reason"))
        .when(pl.col("base").is_null())
        .then(
            format_text(
                "fewer than {} valid peers for {} in sector {}",
                pl.lit(config.min_peers),
                pl.col("multiple"),
                pl.col("sector"),
            )
        )
        .when(pl.col("metric_value").is_null())
        .then(
            format_text(
                "no {} metric for the target ({} basis)", pl.col("multiple"), pl.lit(config.basis)
            )
        )
        .when(pl.col("metric_value") <= 0)
        .then(
            format_text(
                "target metric for {} is not positive ({})",
                pl.col("multiple"),
                pl.col("metric_value"),
            )
        )
    )
    detail = detail.with_columns(reason.alias("reason"))
    ok = pl.col("reason").is_null()
    for level in ("low", "base", "high"):
        applied = pl.col(level) * pl.col("metric_value")
        detail = detail.with_columns(
            pl.when(ok)
            .then(pl.when(equity_multiple).then(applied).otherwise(applied + pl.col("bridge")))
            .alias(f"equity_{level}"),
        )
    detail = (
        detail.with_columns(
            *[
                (pl.col(f"equity_{lv}") / pl.col("shares_diluted")).alias(f"per_share_{lv}")
                for lv in ("low", "base", "high")
            ],
            pl.when(ok & ~equity_multiple)
            .then(pl.col("base") * pl.col("metric_value"))
            .when(ok)
            .then(pl.col("equity_base") - pl.col("bridge"))
            .alias("enterprise_value"),
        )
        .select(
            "company_id",
            "multiple",
            "peer_basis",
            "peers",
            "metric_value",
            "low",
            "base",
            "high",
            "enterprise_value",
            "bridge",
            "equity_low",
            "equity_base",
            "equity_high",
            "per_share_low",
            "per_share_base",
            "per_share_high",
            "reason",
        )
        .sort("company_id", "multiple")
    )

    usable = detail.filter(pl.col("reason").is_null())
    valued = usable.group_by("company_id", maintain_order=True).agg(
        group_mean(pl.col("enterprise_value")),
        group_mean(pl.col("equity_base")).alias("equity_value"),
        group_mean(pl.col("per_share_base")).alias("value_per_share"),
        group_mean(pl.col("per_share_low")).alias("low"),
        group_mean(pl.col("per_share_high")).alias("high"),
    )
    excluded = (
        detail.filter(pl.col("reason").is_not_null())
        .filter(~pl.col("company_id").is_in(valued["company_id"].implode()))
        .group_by("company_id", maintain_order=True)
        .agg(pl.col("reason").unique(maintain_order=True).str.join("; "))
    )
    return valued, detail, table, excluded
