"""Driver-based FCFF forecast in the style of Damodaran's valuation spreadsheets.

For year t = 1..N, from the last actual year (base revenue, base EBIT margin):

* revenue growth: the near-term rate for ``high_growth_years``, then a straight line down to the
  stable growth g, reached in year N;
* EBIT margin: a straight line from the base margin to the target margin, reached in year N;
* reinvestment_t = (revenue_t - revenue_{t-1}) / sales-to-capital;
* FCFF_t = EBIT_t x (1 - tax) - reinvestment_t.

The stable stage is closed consistently: revenue_{N+1} = revenue_N x (1 + g), EBIT at the target
margin, and reinvestment rate = g / return on capital in stable growth, so
FCFF_{N+1} = NOPAT_{N+1} x (1 - g / ROC). ROC defaults to the discount rate (no excess returns).

Everything is a NumPy array over companies; the loop runs over the N years only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from wfo_kit.config import DriversConfig
from wfo_kit.dcf import DcfInputs, Timing
from wfo_kit.frames import format_text


def base_year(financials: pl.DataFrame) -> pl.DataFrame:
    """Last actual year per company: base_year, base_revenue, base_margin (EBIT / revenue).

    Also ``first_forecast``, the company's first forecast year (null without forecast rows), and
    ``base_gap``, the years missing between the two (null when none): the last actual year must be
    the year right before the first forecast year, so a quarantined last actual row never makes
    the year before it the base.
    """
    first_forecast = financials.group_by("company_id", maintain_order=True).agg(
        pl.col("year").filter(pl.col("is_forecast")).min().alias("first_forecast")
    )
    base = (
        financials.filter(~pl.col("is_forecast"))
        .sort("company_id", "year")
        .group_by("company_id", maintain_order=True)
        .last()
        .select(
            "company_id",
            pl.col("year").alias("base_year"),
            pl.col("revenue").alias("base_revenue"),
            (pl.col("ebit") / pl.col("revenue")).alias("base_margin"),
        )
        .join(first_forecast, on="company_id", how="left", maintain_order="left")
    )
    gap = pl.int_ranges(pl.col("base_year") + 1, pl.col("first_forecast"))
    return base.with_columns(
        pl.when(gap.list.len() > 0)
        .then(gap.cast(pl.List(pl.String)).list.join(", "))
        .alias("base_gap")
    )


PATH_KEYS = ("revenue", "growth", "margin", "ebit", "nopat", "reinvestment", "fcff", "roc")


def driver_paths(
    *,
    base_revenue: np.ndarray,
    base_margin: np.ndarray,
    near_growth: np.ndarray,
    stable_growth: np.ndarray,
    target_margin: np.ndarray,
    tax_rate: np.ndarray,
    sales_to_capital: np.ndarray,
    stable_roc: np.ndarray,
    years: int,
    high_growth_years: int,
    keys: tuple[str, ...] = PATH_KEYS,
) -> dict[str, np.ndarray]:
    """The forecast paths in ``keys`` as (..., years) arrays, plus ``next_flow`` = FCFF_{N+1}.

    Inputs broadcast: one value per company (companies,), or (companies x draws) for a
    re-valuation under drawn growth (the paths are then (companies x draws x years)).
    ``stable_roc`` enters only ``next_flow``.
    """
    shape = np.broadcast_shapes(
        *(
            np.shape(a)
            for a in (
                base_revenue,
                base_margin,
                near_growth,
                stable_growth,
                target_margin,
                tax_rate,
                sales_to_capital,
            )
        )
    )
    out = {k: np.zeros((*shape, years)) for k in keys}
    revenue = np.broadcast_to(np.asarray(base_revenue, dtype=np.float64), shape)
    capital = revenue / sales_to_capital
    fade_years = max(years - high_growth_years, 1)
    for t in range(1, years + 1):
        if t <= high_growth_years:
            growth = near_growth
        else:
            growth = (
                near_growth - (near_growth - stable_growth) * (t - high_growth_years) / fade_years
            )
        margin = base_margin + (target_margin - base_margin) * (t / years)
        new_revenue = revenue * (1.0 + growth)
        ebit = new_revenue * margin
        nopat = ebit * (1.0 - tax_rate)
        reinvestment = (new_revenue - revenue) / sales_to_capital
        values = {
            "revenue": new_revenue,
            "growth": growth,
            "margin": margin,
            "ebit": ebit,
            "nopat": nopat,
            "reinvestment": reinvestment,
            "fcff": nopat - reinvestment,
        }
        if "roc" in out:
            with np.errstate(divide="ignore", invalid="ignore"):
                values["roc"] = nopat / capital
        for key in keys:
            out[key][..., t - 1] = values[key]
        revenue, capital = new_revenue, capital + reinvestment
    next_nopat = revenue * (1.0 + stable_growth) * target_margin * (1.0 - tax_rate)
    out["next_flow"] = next_nopat * (1.0 - stable_growth / stable_roc)
    return out


@dataclass(frozen=True)
class DriverModel:
    """The driver forecast as a function of terminal growth g and discount rate r.

    g sets the fade of revenue growth and the stable-stage flow NOPAT_{N+1} x (1 - g / ROC); r
    enters through ROC where it defaults to the discount rate (``stable_roc`` NaN). Re-valuing at
    another r or g (sensitivity, scenarios, Monte Carlo, the DCF range) re-projects the forecast,
    so each equals a valuation made from scratch with that r and g. Arrays: one value per company.
    """

    base_revenue: np.ndarray
    base_margin: np.ndarray
    near_growth: np.ndarray
    target_margin: np.ndarray
    tax_rate: np.ndarray
    sales_to_capital: np.ndarray
    stable_roc: np.ndarray  # NaN: the discount rate (no excess returns after year N)
    years: int
    high_growth_years: int

    def project(self, *, rate: np.ndarray, growth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(FCFF_1..N, FCFF_{N+1}) for ``rate`` and ``growth`` shaped as :func:`align_draws` gives.

        Per company (companies,): flows (companies x years). With a draw axis: flows
        (companies x draws-of-growth x years) and FCFF_{N+1} (companies x draws).
        """
        matrix = np.ndim(rate) == 2 or np.ndim(growth) == 2

        def company(a: np.ndarray) -> np.ndarray:
            return a[:, None] if matrix else a

        roc = company(self.stable_roc)
        paths = driver_paths(
            base_revenue=company(self.base_revenue),
            base_margin=company(self.base_margin),
            near_growth=company(self.near_growth),
            stable_growth=growth,
            target_margin=company(self.target_margin),
            tax_rate=company(self.tax_rate),
            sales_to_capital=company(self.sales_to_capital),
            stable_roc=np.where(np.isnan(roc), rate, roc),
            years=self.years,
            high_growth_years=self.high_growth_years,
            keys=("fcff",),
        )
        return paths["fcff"], paths["next_flow"]

    def take(self, rows: np.ndarray | slice) -> DriverModel:
        """The companies selected by a boolean mask, index array or slice."""
        return replace(
            self,
            **{
                name: getattr(self, name)[rows]
                for name in (
                    "base_revenue",
                    "base_margin",
                    "near_growth",
                    "target_margin",
                    "tax_rate",
                    "sales_to_capital",
                    "stable_roc",
                )
            },
        )


def driver_inputs(
    companies: pl.DataFrame,
    financials: pl.DataFrame,
    *,
    drivers: DriversConfig,
    timing: Timing = "end_of_year",
) -> tuple[DcfInputs, pl.DataFrame, pl.DataFrame]:
    """DCF inputs from drivers. Returns (inputs, long forecast table, excluded with reason).

    ``companies`` must already carry ``discount_rate`` and ``terminal_growth`` for every row.
    """
    base = base_year(financials)
    frame = companies.join(base, on="company_id", how="left", maintain_order="left")
    reason = (
        pl.when(pl.col("base_revenue").is_null())
        .then(pl.lit("driver forecast needs an actual year with revenue and EBIT"))
        .when(pl.col("base_gap").is_not_null())
        .then(
            format_text(
                "driver forecast: no valid row for {} between the last actual year {} and the "
                "first forecast year {} (missing or quarantined), so {} is not used as the base",
                pl.col("base_gap"),
                pl.col("base_year"),
                pl.col("first_forecast"),
                pl.col("base_year"),
            )
        )
        .when(pl.col("base_revenue") <= 0)
        .then(
            format_text(
                "driver forecast needs positive base revenue, got {}", pl.col("base_revenue")
            )
        )
        .when(pl.col("base_margin").is_null())
        .then(pl.lit("driver forecast needs EBIT in the last actual year"))
        .when(pl.col("discount_rate").is_null())
        .then(pl.lit("no discount rate: the row gives none and valuation.discount_rate is unset"))
    )
    excluded = frame.select("company_id", reason.alias("reason")).filter(
        pl.col("reason").is_not_null()
    )
    frame = frame.filter(~pl.col("company_id").is_in(excluded["company_id"].implode()))
    target = pl.coalesce(
        pl.col("target_margin"),
        pl.lit(drivers.target_margin, pl.Float64),
        pl.col("base_margin"),
    )
    # A given ROC is kept; without one it follows the discount rate, also when r is shifted.
    given_roc = pl.coalesce(pl.col("stable_roc"), pl.lit(drivers.stable_roc, pl.Float64))
    frame = frame.with_columns(
        pl.col("revenue_growth").fill_null(drivers.revenue_growth).alias("revenue_growth"),
        target.alias("target_margin"),
        pl.col("sales_to_capital").fill_null(drivers.sales_to_capital).alias("sales_to_capital"),
        given_roc.alias("given_roc"),
        pl.coalesce(given_roc, pl.col("discount_rate")).alias("stable_roc"),
        pl.lit(drivers.years).alias("horizon"),
    )
    model = DriverModel(
        base_revenue=frame["base_revenue"].to_numpy(),
        base_margin=frame["base_margin"].to_numpy(),
        near_growth=frame["revenue_growth"].to_numpy(),
        target_margin=frame["target_margin"].to_numpy(),
        tax_rate=frame["tax_rate"].to_numpy(),
        sales_to_capital=frame["sales_to_capital"].to_numpy(),
        stable_roc=frame["given_roc"].fill_null(np.nan).to_numpy(),
        years=drivers.years,
        high_growth_years=min(drivers.high_growth_years, drivers.years),
    )
    frame = frame.drop("given_roc", "first_forecast", "base_gap")
    paths = driver_paths(
        base_revenue=model.base_revenue,
        base_margin=model.base_margin,
        near_growth=model.near_growth,
        stable_growth=frame["terminal_growth"].to_numpy(),
        target_margin=model.target_margin,
        tax_rate=model.tax_rate,
        sales_to_capital=model.sales_to_capital,
        stable_roc=frame["stable_roc"].to_numpy(),
        years=model.years,
        high_growth_years=model.high_growth_years,
    )
    times = np.tile(np.arange(1, drivers.years + 1, dtype=np.float64), (frame.height, 1))
    if timing == "mid_year":
        times -= 0.5
    inputs = DcfInputs(
        companies=frame.with_columns(
            pl.Series("roc_year_n", paths["roc"][:, -1] if frame.height else []),
        ),
        flows=paths["fcff"],
        times=times,
        terminal_time=np.full(frame.height, float(drivers.years)),
        last_flow=paths["fcff"][:, -1] if frame.height else np.zeros(0),
        last_ebitda=np.full(frame.height, np.nan),
        regular=True,
        timing=timing,
        model=model,
    )
    return inputs, _long(frame, paths, drivers.years), excluded


def _long(frame: pl.DataFrame, paths: dict[str, np.ndarray], years: int) -> pl.DataFrame:
    n = frame.height
    t = np.tile(np.arange(1, years + 1), n)
    ids = np.repeat(frame["company_id"].to_numpy(), years)
    base_years = np.repeat(frame["base_year"].to_numpy(), years)
    columns = {"company_id": ids, "t": t, "year": base_years + t}
    for key in ("revenue", "growth", "margin", "ebit", "nopat", "reinvestment", "fcff", "roc"):
        columns[key] = paths[key].reshape(-1)
    return pl.DataFrame(columns)
