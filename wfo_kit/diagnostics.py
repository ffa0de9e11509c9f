"""Diagnostics as traffic lights: is each DCF sane? One row per DCF-valued company and check.

Checks (thresholds in ``valuation.diagnostics``; docs/conventions.md has the table):

* ``roic_vs_wacc``: ROIC_N - r. Growth creates value only when the return on capital beats its
  cost. ROIC_N = EBIT_N x (1 - t) / invested capital at the start of year N (the year before's
  ``invested_capital``, else year N's); driver forecasts: their year-N return on capital.
* ``terminal_share``: PV of the terminal value / EV: how much of the value is beyond the horizon.
* ``spread``: r - g of the terminal value (the stable rate when set): thin, and TV explodes.
* ``exit_multiple_vs_peers``: the Gordon TV / EBITDA_N against the peers' EV/EBITDA quartiles.
* ``growth_consistency``: g - reinvestment rate_N x ROIC_N (fundamental growth), where
  reinvestment rate = (capex - D&A + change in NWC) / (EBIT x (1 - t)).

A light is green, amber or red by the thresholds; grey when an input is missing, with the note.
"""

from __future__ import annotations

import polars as pl

from wfo_kit.config import DiagnosticsConfig

LIGHTS = ("green", "amber", "red", "grey")


def _light(value: pl.Expr, *, green: pl.Expr, amber: pl.Expr) -> pl.Expr:
    """green where ``green`` holds, amber where ``amber`` does, red else; grey for a null value."""
    return (
        pl.when(value.is_null())
        .then(pl.lit("grey"))
        .when(green)
        .then(pl.lit("green"))
        .when(amber)
        .then(pl.lit("amber"))
        .otherwise(pl.lit("red"))
    )


def fundamentals(financials: pl.DataFrame, companies: pl.DataFrame) -> pl.DataFrame:
    """Per company, from the last forecast row: ``roic`` and ``reinvestment_rate`` (nullable)."""
    rows = (
        financials.join(companies.select("company_id", "tax_rate"), on="company_id")
        .sort("company_id", "year")
        .with_columns(
            pl.col("invested_capital").shift(1).over("company_id").alias("_ic_start"),
            (pl.col("ebit") * (1 - pl.col("tax_rate"))).alias("_nopat"),
        )
        .filter(pl.col("is_forecast"))
        .group_by("company_id", maintain_order=True)
        .last()
    )
    capital = pl.coalesce(pl.col("_ic_start"), pl.col("invested_capital"))
    nopat = pl.col("_nopat")
    reinvestment = pl.col("capex") - pl.col("depreciation") + pl.col("change_nwc")
    return rows.select(
        "company_id",
        pl.when(capital > 0).then(nopat / capital).alias("roic"),
        pl.when(nopat > 0).then(reinvestment / nopat).alias("reinvestment_rate"),
    )


def diagnostics_table(
    detail: pl.DataFrame,
    *,
    financials: pl.DataFrame,
    peers: pl.DataFrame | None,
    config: DiagnosticsConfig,
) -> pl.DataFrame:
    """The traffic lights: company_id, check, value, light, rule, note (tidy, sorted).

    ``detail`` is ``dcf_detail``; ``peers`` is ``comparables_detail`` (its ev_ebitda quartiles
    ``low``/``high``), or None.
    """
    frame = detail.join(fundamentals(financials, detail), on="company_id", how="left")
    if "roc_year_n" in frame.columns:  # driver forecasts carry their own return on capital
        frame = frame.with_columns(pl.coalesce("roc_year_n", "roic").alias("roic"))
    if peers is not None and peers.height:
        quartiles = peers.filter(
            (pl.col("multiple") == "ev_ebitda") & pl.col("low").is_not_null()
        ).select("company_id", pl.col("low").alias("peer_low"), pl.col("high").alias("peer_high"))
        frame = frame.join(quartiles, on="company_id", how="left")
    else:
        frame = frame.with_columns(
            pl.lit(None, pl.Float64).alias("peer_low"), pl.lit(None, pl.Float64).alias("peer_high")
        )
    c = config
    roic_spread = pl.col("roic") - pl.col("discount_rate")
    share = pl.col("terminal_share")
    multiple = pl.col("implied_exit_multiple")
    tol = 1 + c.peer_multiple_tolerance
    gap = pl.col("terminal_growth") - pl.col("reinvestment_rate") * pl.col("roic")
    checks = {
        "roic_vs_wacc": (
            roic_spread,
            _light(roic_spread, green=roic_spread >= c.roic_spread_green,
                   amber=roic_spread >= c.roic_spread_amber),
            f"green: ROIC - r >= {c.roic_spread_green:g}; amber: >= {c.roic_spread_amber:g}",
            "needs invested_capital (or a driver forecast) and EBIT",
        ),
        "terminal_share": (
            share,
            _light(share, green=share.is_between(0, c.terminal_share_green),
                   amber=share.is_between(0, c.terminal_share_amber)),
            f"green: PV(TV) / EV <= {c.terminal_share_green:g}; amber: <= "
            f"{c.terminal_share_amber:g}",
            "no terminal share",
        ),
        "spread": (
            pl.col("spread"),
            _light(pl.col("spread"), green=pl.col("spread") >= c.spread_green,
                   amber=pl.col("spread") >= c.spread_amber),
            f"green: r - g >= {c.spread_green:g}; amber: >= {c.spread_amber:g}",
            "no spread",
        ),
        "exit_multiple_vs_peers": (
            pl.when(pl.col("peer_low").is_not_null()).then(multiple),
            _light(
                pl.when(pl.col("peer_low").is_not_null()).then(multiple),
                green=multiple.is_between(pl.col("peer_low"), pl.col("peer_high")),
                amber=multiple.is_between(pl.col("peer_low") / tol, pl.col("peer_high") * tol),
            ),
            "green: implied EV/EBITDA within the peers' quartiles; amber: within "
            f"{c.peer_multiple_tolerance:.0%} beyond them",
            "needs EBITDA_N > 0 and peers with EV/EBITDA",
        ),
        "growth_consistency": (
            gap,
            _light(gap, green=gap.abs() <= c.growth_gap_green,
                   amber=gap.abs() <= c.growth_gap_amber),
            f"green: |g - reinvestment rate x ROIC| <= {c.growth_gap_green:g}; amber: <= "
            f"{c.growth_gap_amber:g}",
            "needs invested_capital, EBIT, capex, depreciation and change_nwc",
        ),
    }  # fmt: skip
    parts = [
        frame.select(
            "company_id",
            pl.lit(name).alias("check"),
            value.cast(pl.Float64).alias("value"),
            light.alias("light"),
            pl.lit(rule).alias("rule"),
            pl.when(value.is_null()).then(pl.lit(note)).alias("note"),
        )
        for name, (value, light, rule, note) in checks.items()
    ]
    return pl.concat(parts).sort("company_id", "check")
