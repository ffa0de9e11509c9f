"""Discounted cash flow (free cash flow to the firm), vectorized over companies.

Conventions (also in docs/conventions.md):

* FCFF_t = EBIT_t x (1 - tax) + D&A_t - capex_t - change in NWC_t, unless ``fcff`` is given.
* Forecast year t = 1 is the first forecast year; the valuation date is the end of the year before.
* ``end_of_year``: cash flow t is discounted by 1 / (1 + r)^t;
  ``mid_year``: by 1 / (1 + r)^(t - 0.5).
* Terminal value (Gordon): TV = FCFF_N x (1 + g) / (r - g), discounted by the year-N factor
  1 / (1 + r)^N under both timing conventions. r <= g is never a number: the company is excluded.
* Equity bridge: equity = EV - debt - preferred - minority interest + cash + non-operating assets;
  value per share = equity / diluted shares.

The hot path is NumPy over a wide matrix (one column per forecast year), never a Python loop per
company: discounting is Horner's rule over the year columns.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

Timing = Literal["end_of_year", "mid_year"]

BRIDGE_ITEMS: tuple[tuple[str, int], ...] = (
    ("debt", -1),
    ("preferred_equity", -1),
    ("minority_interest", -1),
    ("cash", +1),
    ("non_operating_assets", +1),
)


def present_value(
    flows: np.ndarray, rate: np.ndarray, *, timing: Timing = "end_of_year"
) -> np.ndarray:
    """Present value of each row of ``flows`` (companies x years), year t = column index + 1.

    Missing trailing years must be 0 (they then add nothing). ``rate`` is one decimal per row.

    Examples
    --------
    >>> import numpy as np
    >>> present_value(np.array([[110.0, 121.0]]), np.array([0.10])).round(6).tolist()
    [200.0]
    """
    flows = np.asarray(flows, dtype=np.float64)
    factor = 1.0 / (1.0 + np.asarray(rate, dtype=np.float64))
    acc = np.zeros(flows.shape[0])
    for column in range(flows.shape[1] - 1, -1, -1):  # Horner: a loop over years, not companies
        acc = (acc + flows[:, column]) * factor
    if timing == "mid_year":
        acc = acc * np.sqrt(1.0 + np.asarray(rate, dtype=np.float64))
    return acc


def gordon_terminal_value(
    last_flow: np.ndarray, rate: np.ndarray, growth: np.ndarray
) -> np.ndarray:
    """TV at the end of year N: FCFF_N x (1 + g) / (r - g). NaN where r <= g (never a number).

    Examples
    --------
    >>> import numpy as np
    >>> tv = gordon_terminal_value(np.array([227.0]), np.array([0.07]), np.array([0.02]))
    >>> tv.round(4).tolist()
    [4630.8]
    """
    last_flow, rate, growth = (np.asarray(a, dtype=np.float64) for a in (last_flow, rate, growth))
    spread = rate - growth
    with np.errstate(divide="ignore", invalid="ignore"):
        value = last_flow * (1.0 + growth) / spread
    return np.where(spread > 0, value, np.nan)


def discount_factor(years: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """1 / (1 + r)^years, elementwise."""
    return np.power(1.0 + np.asarray(rate, dtype=np.float64), -np.asarray(years, dtype=np.float64))


def dcf_arrays(
    flows: np.ndarray,
    horizon: np.ndarray,
    rate: np.ndarray,
    growth: np.ndarray,
    *,
    timing: Timing = "end_of_year",
) -> dict[str, np.ndarray]:
    """Enterprise value parts for each company.

    ``flows`` is companies x years with zeros after each company's ``horizon`` (N, in years).
    Returns ``pv_explicit``, ``terminal_value``, ``pv_terminal`` and ``enterprise_value``.
    """
    horizon = np.asarray(horizon, dtype=np.int64)
    pv_explicit = present_value(flows, rate, timing=timing)
    last = flows[np.arange(flows.shape[0]), horizon - 1] if flows.size else np.zeros(0)
    terminal = gordon_terminal_value(last, rate, growth)
    pv_terminal = terminal * discount_factor(horizon, rate)
    return {
        "pv_explicit": pv_explicit,
        "terminal_value": terminal,
        "pv_terminal": pv_terminal,
        "enterprise_value": pv_explicit + pv_terminal,
    }


def fcff_expr(tax_rate: pl.Expr | str = "tax_rate") -> pl.Expr:
    """FCFF = EBIT x (1 - tax) + D&A - capex - change in NWC, or the given ``fcff``."""
    tax = pl.col(tax_rate) if isinstance(tax_rate, str) else tax_rate
    computed = (
        pl.col("ebit") * (1 - tax) + pl.col("depreciation") - pl.col("capex") - pl.col("change_nwc")
    )
    return pl.coalesce(pl.col("fcff"), computed)


def forecast_flows(financials: pl.DataFrame, companies: pl.DataFrame) -> pl.DataFrame:
    """Long table of forecast FCFF: company_id, year, t (1..N), fcff (money)."""
    return (
        financials.lazy()
        .filter(pl.col("is_forecast"))
        .join(companies.lazy().select("company_id", "tax_rate"), on="company_id", how="inner")
        .with_columns(fcff_expr().alias("fcff"))
        .with_columns((pl.col("year") - pl.col("year").min().over("company_id") + 1).alias("t"))
        .select("company_id", "year", "t", "fcff", "ebitda")
        .sort("company_id", "year")
        .collect()
    )


def forecast_matrix(flows: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame]:
    """Wide matrix of contiguous forecasts.

    Returns (companies with ``horizon``, flows matrix aligned with them, excluded companies with a
    ``reason``). A company whose forecast years have a gap is excluded, naming the missing years.
    """
    spans = flows.group_by("company_id", maintain_order=True).agg(
        pl.col("year").min().alias("first_year"),
        pl.col("year").max().alias("last_year"),
        pl.len().alias("horizon"),
        pl.col("year").alias("years"),
    )
    gaps = spans.filter(pl.col("last_year") - pl.col("first_year") + 1 != pl.col("horizon"))
    excluded = gaps.select(
        "company_id",
        pl.struct("first_year", "last_year", "years")
        .map_elements(_missing_years_reason, return_dtype=pl.String)
        .alias("reason"),
    )
    ok = spans.filter(~pl.col("company_id").is_in(gaps["company_id"].implode())).select(
        "company_id", "horizon"
    )
    if ok.height == 0:
        return ok, np.zeros((0, 0)), excluded
    width = int(ok["horizon"].max())
    wide = flows.join(ok.select("company_id"), on="company_id", how="semi").pivot(
        on="t", index="company_id", values="fcff", sort_columns=True
    )
    columns = [str(t) for t in range(1, width + 1)]
    wide = ok.select("company_id").join(wide, on="company_id", how="left", maintain_order="left")
    matrix = wide.select([pl.col(c).fill_null(0.0) for c in columns]).to_numpy()
    return ok, matrix, excluded


def _missing_years_reason(span: dict) -> str:
    missing = sorted(set(range(span["first_year"], span["last_year"] + 1)) - set(span["years"]))
    listed = ", ".join(map(str, missing))
    return f"forecast years are not contiguous: no valid row for {listed}"


def equity_bridge(frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``equity_value`` and ``value_per_share`` from ``enterprise_value`` and bridge items."""
    equity = pl.col("enterprise_value") + pl.sum_horizontal(
        [pl.col(item) * sign for item, sign in BRIDGE_ITEMS]
    )
    return frame.with_columns(equity.alias("equity_value")).with_columns(
        (pl.col("equity_value") / pl.col("shares_diluted")).alias("value_per_share")
    )


def bridge_table(detail: pl.DataFrame) -> pl.DataFrame:
    """The equity bridge as a tidy, signed table: company_id, step, item, amount."""
    items = [("enterprise_value", 1), *BRIDGE_ITEMS]
    parts = [
        detail.select(
            "company_id",
            pl.lit(i).alias("step"),
            pl.lit(item).alias("item"),
            (pl.col(item) * sign).alias("amount"),
        )
        for i, (item, sign) in enumerate(items)
    ]
    parts.append(
        detail.select(
            "company_id",
            pl.lit(len(items)).alias("step"),
            pl.lit("equity_value").alias("item"),
            pl.col("equity_value").alias("amount"),
        )
    )
    return pl.concat(parts).sort("company_id", "step")


def value_dcf(
    companies: pl.DataFrame,
    financials: pl.DataFrame,
    *,
    discount_rate: float | None = None,
    terminal_growth: float = 0.02,
    timing: Timing = "end_of_year",
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """DCF for every company with a complete forecast.

    Returns ``(detail, flows, excluded)``: one row per valued company with every intermediate
    figure (money in input units; rates decimal), the long FCFF table, and excluded companies
    with a reason. ``discount_rate``/``terminal_growth`` apply where a company's row gives none.
    """
    flows = forecast_flows(financials, companies)
    ok, matrix, excluded = forecast_matrix(flows)
    no_forecast = companies.join(flows.select("company_id").unique(), on="company_id", how="anti")
    excluded = pl.concat(
        [
            excluded,
            no_forecast.select(
                "company_id", pl.lit("no forecast rows in financials").alias("reason")
            ),
        ]
    )
    frame = ok.join(companies, on="company_id", how="left", maintain_order="left").with_columns(
        pl.col("discount_rate").fill_null(pl.lit(discount_rate, pl.Float64)).alias("discount_rate"),
        pl.col("terminal_growth").fill_null(terminal_growth).alias("terminal_growth"),
    )
    rate_missing = pl.col("discount_rate").is_null()
    not_above = pl.col("discount_rate") <= pl.col("terminal_growth")
    bad = frame.select(
        "company_id",
        pl.when(rate_missing)
        .then(pl.lit("no discount rate: the row gives none and valuation.discount_rate is unset"))
        .when(not_above)
        .then(
            pl.format(
                "discount rate {} must exceed terminal growth {}",
                pl.col("discount_rate"),
                pl.col("terminal_growth"),
            )
        )
        .alias("reason"),
    ).filter(pl.col("reason").is_not_null())
    keep = ~(rate_missing | not_above).fill_null(True)
    keep_mask = frame.select(keep).to_series().to_numpy()
    frame, matrix = frame.filter(keep), matrix[keep_mask] if matrix.size else matrix
    parts = dcf_arrays(
        matrix,
        frame["horizon"].to_numpy(),
        frame["discount_rate"].to_numpy(),
        frame["terminal_growth"].to_numpy(),
        timing=timing,
    )
    detail = equity_bridge(
        frame.with_columns([pl.Series(name, values) for name, values in parts.items()])
    ).with_columns((pl.col("pv_terminal") / pl.col("enterprise_value")).alias("terminal_share"))
    return detail, flows, pl.concat([excluded, bad]).sort("company_id")
