"""Cash flows on arbitrary dates: XNPV and XIRR as spreadsheets compute them, vectorized.

Day count Actual/365 exactly as spreadsheet XNPV/XIRR (Excel, LibreOffice, Google Sheets): a flow
on date d is discounted over (d - d0).days / 365 years, d0 being the valuation date (by default
the first date of the series, as in the spreadsheet). A flow on d0 itself is not discounted. A
leap day in between counts as a day: 2024-01-01 to 2025-01-01 is 366/365 years, so flows on
anniversaries equal the yearly PV only when no 29 February lies between them.

A flow dated before d0 is refused (the spreadsheet's #NUM!), never discounted forward silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

DAYS_PER_YEAR = 365.0


def year_fractions(dates: Sequence[dt.date] | np.ndarray, start: dt.date) -> np.ndarray:
    """(date - start).days / 365 for each date (Actual/365, the spreadsheet XNPV day count).

    >>> year_fractions([dt.date(2024, 1, 1), dt.date(2025, 1, 1)], dt.date(2024, 1, 1)).tolist()
    [0.0, 1.0027397260273974]
    """
    days = np.asarray(dates, dtype="datetime64[D]") - np.datetime64(start, "D")
    return days.astype(np.float64) / DAYS_PER_YEAR


def _times(dates: Sequence[dt.date], start: dt.date | None) -> np.ndarray:
    if len(dates) == 0:
        msg = "no cash flows: give at least one amount and its date"
        raise ValueError(msg)
    base = dates[0] if start is None else start
    times = year_fractions(dates, base)
    if np.any(times < 0):
        first = min(dates)
        msg = (
            f"flow dated {first} is before the valuation date {base}: spreadsheet XNPV gives "
            f"#NUM!; drop it or value from an earlier date"
        )
        raise ValueError(msg)
    return times


def xnpv(
    rate: float,
    amounts: Sequence[float] | np.ndarray,
    dates: Sequence[dt.date],
    *,
    valuation_date: dt.date | None = None,
) -> float:
    """Net present value of flows on dates, as spreadsheet ``XNPV(rate, values, dates)``.

    sum_i amount_i / (1 + rate)^((date_i - d0).days / 365), d0 = ``valuation_date`` or the first
    date (the spreadsheet's convention). ``rate`` is a decimal above -1.

    Raises
    ------
    ValueError
        Amounts and dates of different lengths, no flows, a rate <= -1, or a flow before d0.

    Examples
    --------
    Microsoft's XNPV example (support.microsoft.com, "XNPV function"): 2086.65.

    >>> dates = [dt.date(2008, 1, 1), dt.date(2008, 3, 1), dt.date(2008, 10, 30),
    ...          dt.date(2009, 2, 15), dt.date(2009, 4, 1)]
    >>> round(xnpv(0.09, [-10000, 2750, 4250, 3250, 2750], dates), 2)
    2086.65
    """
    values = np.asarray(amounts, dtype=np.float64)
    if values.shape != (len(dates),):
        msg = f"{values.size} amounts for {len(dates)} dates: give one date per amount"
        raise ValueError(msg)
    if not rate > -1:
        msg = f"rate {rate} is not above -100%"
        raise ValueError(msg)
    times = _times(dates, valuation_date)
    return float(np.sum(values * np.exp(-times * np.log1p(rate))))


def xirr(
    amounts: Sequence[float] | np.ndarray,
    dates: Sequence[dt.date],
    *,
    guess: float = 0.1,
) -> float:
    """The rate at which :func:`xnpv` is 0, as spreadsheet ``XIRR(values, dates)``; NaN if none.

    Newton's method from ``guess`` (the spreadsheet's default 0.1), then bisection over
    (-99.9999%, 10 000%) where Newton does not converge. Flows need at least one positive and
    one negative amount, else NaN.

    Examples
    --------
    Microsoft's XIRR example (support.microsoft.com, "XIRR function"): 0.373362535 (the
    spreadsheet stops iterating within 1e-8; the exact root is 0.3733625335).

    >>> dates = [dt.date(2008, 1, 1), dt.date(2008, 3, 1), dt.date(2008, 10, 30),
    ...          dt.date(2009, 2, 15), dt.date(2009, 4, 1)]
    >>> round(xirr([-10000, 2750, 4250, 3250, 2750], dates), 6)
    0.373363
    """
    values = np.asarray(amounts, dtype=np.float64)
    if values.shape != (len(dates),):
        msg = f"{values.size} amounts for {len(dates)} dates: give one date per amount"
        raise ValueError(msg)
    times = _times(dates, None)
    return float(irr_matrix(values[None, :], times[None, :], guess=guess)[0])


def npv_matrix(amounts: np.ndarray, times: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """PV per row of (series x flows) ``amounts`` at ``times`` (years), one rate per row."""
    rate = np.asarray(rate, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.sum(amounts * np.exp(-times * np.log1p(rate)), axis=1)


def irr_matrix(
    amounts: np.ndarray, times: np.ndarray, *, guess: float = 0.1, iterations: int = 100
) -> np.ndarray:
    """XIRR of every row of (series x flows) at once (pad a short series with zero amounts).

    NaN where the amounts lack a sign change or no root lies in (-99.9999%, 10 000%).
    """
    amounts = np.asarray(amounts, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    n = amounts.shape[0]
    signs = (np.any(amounts > 0, axis=1)) & (np.any(amounts < 0, axis=1))
    rate = np.full(n, guess)
    done = np.zeros(n, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(iterations):  # Newton, a loop over iterations, not series
            growth = np.log1p(rate)[:, None]
            discount = np.exp(-times * growth)
            f = np.sum(amounts * discount, axis=1)
            df = np.sum(-times * amounts * discount, axis=1) / (1.0 + rate)
            step = np.where(done, 0.0, f / df)
            rate = rate - step
            done |= np.abs(step) < 1e-12
            if done.all():
                break
        ok = done & np.isfinite(rate) & (rate > -1)
        ok &= np.abs(npv_matrix(amounts, times, rate)) <= 1e-7 * np.maximum(
            1.0, np.abs(amounts).sum(axis=1)
        )
        lo, hi = np.full(n, -0.999999), np.full(n, 100.0)
        f_lo, f_hi = npv_matrix(amounts, times, lo), npv_matrix(amounts, times, hi)
        bracket = np.sign(f_lo) * np.sign(f_hi) < 0
        rounds = 0 if (ok | ~signs).all() else 200  # bisection only where Newton failed
        for _ in range(rounds):
            mid = 0.5 * (lo + hi)
            f_mid = npv_matrix(amounts, times, mid)
            same = np.sign(f_mid) == np.sign(f_lo)
            lo, f_lo = np.where(same, mid, lo), np.where(same, f_mid, f_lo)
            hi = np.where(same, hi, mid)
    fallback = np.where(bracket, 0.5 * (lo + hi), np.nan)
    return np.where(signs, np.where(ok, rate, fallback), np.nan)


def _series_matrices(
    flows: pl.DataFrame, *, by: str, start: pl.Expr
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """(one row per series: ``by`` and ``first_date``, amounts matrix, times matrix)."""
    long = (
        flows.lazy()
        .with_columns(start.over(by).alias("_start"))
        .with_columns(
            ((pl.col("date") - pl.col("_start")).dt.total_days() / DAYS_PER_YEAR).alias("_t"),
            pl.int_range(pl.len()).over(by).alias("_k"),
        )
        .collect()
    )
    keys = long.group_by(by, maintain_order=True).agg(pl.col("_start").first().alias("first_date"))
    width = int(long["_k"].max()) + 1 if long.height else 0
    row = keys.with_row_index("_row").select(by, "_row")
    index = long.join(row, on=by, how="left")
    r, k = index["_row"].to_numpy(), index["_k"].to_numpy()
    amounts, times = np.zeros((keys.height, width)), np.zeros((keys.height, width))
    amounts[r, k] = index["amount"].cast(pl.Float64).to_numpy()
    times[r, k] = index["_t"].to_numpy()
    return keys, amounts, times


def xnpv_frame(
    flows: pl.DataFrame,
    *,
    rate: pl.DataFrame | float,
    valuation_date: dt.date | None = None,
    by: str = "company_id",
) -> pl.DataFrame:
    """XNPV of many series at once. One row per series: ``by``, ``xnpv``, ``reason``.

    ``flows`` is long (``by``, ``date``, ``amount``); ``rate`` a decimal for all series or a
    frame (``by``, ``rate``). d0 is ``valuation_date``, else each series' first date. A series
    with a flow before d0, no rate or a rate <= -1 gets a null ``xnpv`` and the reason.

    >>> f = pl.DataFrame({"company_id": ["A", "A", "B"], "amount": [100.0, 110.0, 50.0],
    ...     "date": [dt.date(2025, 1, 1), dt.date(2026, 1, 1), dt.date(2025, 6, 30)]})
    >>> xnpv_frame(f, rate=0.10)["xnpv"].round(6).to_list()
    [200.0, 50.0]
    """
    start = pl.lit(valuation_date) if valuation_date is not None else pl.col("date").first()
    ordered = flows.sort(by, maintain_order=True)
    keys, amounts, times = _series_matrices(ordered, by=by, start=start)
    if isinstance(rate, pl.DataFrame):
        rates = keys.join(rate.select(by, "rate"), on=by, how="left", maintain_order="left")
        r = rates["rate"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    else:
        r = np.full(keys.height, float(rate))
    early = np.any(times < 0, axis=1)
    bad_rate = ~(r > -1)
    value = npv_matrix(amounts, np.maximum(times, 0.0), np.where(bad_rate, 0.0, r))
    reason = np.where(
        early,
        "a flow is dated before the valuation date (spreadsheet XNPV: #NUM!)",
        np.where(bad_rate, "no rate, or a rate not above -100%", None),
    )
    return keys.select(by).with_columns(
        pl.Series("xnpv", np.where(early | bad_rate, np.nan, value)).fill_nan(None),
        pl.Series("reason", reason.tolist(), dtype=pl.String),
    )


def xirr_frame(flows: pl.DataFrame, *, by: str = "company_id") -> pl.DataFrame:
    """XIRR of many series at once: ``by``, ``xirr``, ``reason`` (null xirr with the reason).

    >>> f = pl.DataFrame({"company_id": ["A", "A"], "amount": [-100.0, 110.0],
    ...     "date": [dt.date(2025, 1, 1), dt.date(2026, 1, 1)]})
    >>> round(xirr_frame(f)["xirr"][0], 9)
    0.1
    """
    keys, amounts, times = _series_matrices(
        flows.sort(by, maintain_order=True), by=by, start=pl.col("date").first()
    )
    early = np.any(times < 0, axis=1)
    rate = irr_matrix(amounts, np.maximum(times, 0.0))
    signs = np.any(amounts > 0, axis=1) & np.any(amounts < 0, axis=1)
    reason = np.where(
        early,
        "a flow is dated before the series' first date (spreadsheet XIRR: #NUM!)",
        np.where(
            ~signs,
            "needs at least one positive and one negative amount",
            np.where(np.isnan(rate), "no rate in (-99.9999%, 10 000%) sets XNPV to 0", None),
        ),
    )
    return keys.select(by).with_columns(
        pl.Series("xirr", np.where(early, np.nan, rate)).fill_nan(None),
        pl.Series("reason", reason.tolist(), dtype=pl.String),
    )
