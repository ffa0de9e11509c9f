"""Discount periods come from fiscal years, never from a row's rank (same class as issue 10 item 8).

When a company's first forecast row was missing (or quarantined at validation), the explicit DCF
counted t from the first remaining year: year 2 was discounted as year 1 and year 1 was dropped
without a word. Each forecast year's period is its fiscal year minus the last actual year (or, with
a valuation date, the ACT/365 years to its fiscal year end); a company whose forecast does not start
right after its last actual year, or has a gap, is excluded with the missing year(s) named. The
driver forecast's base year is checked the same way.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import companies, financials
from wfo_kit.config import DriversConfig, ValuationConfig
from wfo_kit.dcf import explicit_inputs, forecast_flows, value_dcf, with_defaults
from wfo_kit.drivers import driver_inputs
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies


def row(company: str, year: int, *, forecast: bool, fcff: float | None = 100.0, **extra) -> dict:
    return {
        "company_id": company,
        "year": year,
        "is_forecast": forecast,
        "revenue": 1000.0,
        "ebitda": 200.0,
        "ebit": 150.0,
        "depreciation": 50.0,
        "capex": 60.0,
        "change_nwc": 10.0,
        "net_income": 90.0,
        "fcff": fcff,
        **extra,
    }


def history(
    company: str, last_actual: int, flows: list[float], *, first_forecast: int | None = None
) -> list[dict]:
    """Two actual years ending at ``last_actual``, then one forecast row per flow."""
    start = last_actual + 1 if first_forecast is None else first_forecast
    actual = [row(company, y, forecast=False) for y in (last_actual - 1, last_actual)]
    return actual + [row(company, start + i, forecast=True, fcff=f) for i, f in enumerate(flows)]


def test_missing_first_forecast_row_excludes_the_company_naming_the_year() -> None:
    comp = companies({"company_id": "X"}, {"company_id": "Y"})
    rows = history("X", 2025, [100.0, 110.0, 120.0]) + history("Y", 2025, [100.0, 110.0, 120.0])
    rows = [r for r in rows if not (r["company_id"] == "X" and r["year"] == 2026)]
    detail, _, excluded = value_dcf(comp, financials(rows))
    assert detail["company_id"].to_list() == ["Y"]
    reason = excluded.filter(pl.col("company_id") == "X")["reason"].to_list()
    assert len(reason) == 1
    assert "no valid row for 2026" in reason[0]
    assert "last actual year 2025" in reason[0]


def test_forecast_starting_two_years_after_the_last_actual_year_names_both_years() -> None:
    comp = companies()
    rows = history("X", 2025, [100.0, 110.0], first_forecast=2028)
    detail, _, excluded = value_dcf(comp, financials(rows))
    assert detail.height == 0
    assert "no valid row for 2026, 2027" in excluded["reason"][0]


def test_forecast_year_overlapping_an_actual_year_is_excluded() -> None:
    comp = companies()
    rows = history("X", 2025, [100.0, 110.0, 120.0], first_forecast=2025)
    detail, _, excluded = value_dcf(comp, financials(rows))
    assert detail.height == 0
    assert "forecast year 2025 is not after the last actual year 2025" in excluded["reason"][0]


def test_quarantined_first_forecast_row_through_validation_and_value() -> None:
    # 2026 lacks every FCFF input: validation quarantines it, the DCF must not move 2027 forward.
    comp = companies({"company_id": "X"}, {"company_id": "Y"})
    rows = history("X", 2025, [100.0, 110.0, 120.0]) + history("Y", 2025, [100.0, 110.0, 120.0])
    for r in rows:
        if r["company_id"] == "X" and r["year"] == 2026:
            r.update(fcff=None, ebit=None)
    tables = {"companies": comp, "financials": financials(rows)}
    valuation = ValuationConfig(methods=["dcf"])
    checked = validate_tables(tables, valuation=valuation)
    assert checked.quarantine.filter(pl.col("table") == "financials").height == 1
    out = value_companies(
        checked.valid,
        valuation=valuation,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )
    dcf = out["valuations"].filter(pl.col("method") == "dcf").sort("company_id")
    assert dcf["status"].to_list() == ["excluded", "valued"]
    assert "no valid row for 2026" in dcf["reason"][0]
    assert "X" not in out["reverse_dcf"]["company_id"].to_list()


def test_valuation_date_missing_first_open_year_is_excluded() -> None:
    # Valuation date 2026-03-31: 2026 is the first year still open; without its row, 2027 would
    # be valued from 2026-03-31 on and nine months of cash flow would vanish.
    comp = companies()
    rows = history("X", 2025, [100.0, 110.0, 120.0])
    rows = [r for r in rows if r["year"] != 2026]
    detail, _, excluded = value_dcf(comp, financials(rows), valuation_date=dt.date(2026, 3, 31))
    assert detail.height == 0
    assert "no valid row for 2026" in excluded["reason"][0]
    # Without actual rows, the valuation date alone says which year comes first.
    forecast_only = [r for r in rows if r["is_forecast"]]
    detail, _, excluded = value_dcf(
        comp, financials(forecast_only), valuation_date=dt.date(2026, 3, 31)
    )
    assert detail.height == 0
    assert "no valid row for 2026" in excluded["reason"][0]


def test_valuation_date_with_the_first_year_closed_keeps_the_next_as_year_one() -> None:
    comp = companies()
    rows = history("X", 2025, [100.0, 110.0, 120.0])
    _, flows, excluded = value_dcf(comp, financials(rows), valuation_date=dt.date(2026, 12, 31))
    assert excluded.height == 0
    assert flows["year"].to_list() == [2027, 2028]
    ends = [dt.date(2027, 12, 31), dt.date(2028, 12, 31)]
    assert flows["time"].to_list() == pytest.approx(
        [(end - dt.date(2026, 12, 31)).days / 365 for end in ends]
    )
    assert flows["t"].to_list() == [1, 2]


@settings(max_examples=60, deadline=None)
@given(
    flows=st.lists(st.floats(1.0, 1_000.0), min_size=2, max_size=8),
    last_actual=st.integers(1990, 2040),
    drop=st.integers(0, 7),
    rate=st.floats(0.05, 0.2),
)
def test_dropping_a_forecast_row_never_silently_changes_a_value(
    flows: list[float], last_actual: int, drop: int, rate: float
) -> None:
    """Invariance: a first (or inner) forecast row gone means excluded, the year named."""
    drop = drop % len(flows)
    comp = companies({"company_id": "X", "discount_rate": rate}, {"company_id": "Y"})
    full = history("X", last_actual, flows) + history("Y", last_actual, [50.0, 60.0])
    before, _, _ = value_dcf(comp, financials(full))
    dropped_year = last_actual + 1 + drop
    rows = [r for r in full if not (r["company_id"] == "X" and r["year"] == dropped_year)]
    after, _, excluded = value_dcf(comp, financials(rows))
    y_before = before.filter(pl.col("company_id") == "Y")["enterprise_value"]
    assert after.filter(pl.col("company_id") == "Y")["enterprise_value"].equals(y_before)
    if drop == len(flows) - 1:  # the last year gone: a shorter, still contiguous forecast
        assert "X" in after["company_id"].to_list()
        return
    assert "X" not in after["company_id"].to_list()
    reason = excluded.filter(pl.col("company_id") == "X")["reason"][0]
    assert f"no valid row for {dropped_year}" in reason


@settings(max_examples=60, deadline=None)
@given(
    last_actual=st.integers(1990, 2040),
    start_gap=st.integers(1, 3),
    years=st.integers(1, 8),
    timing=st.sampled_from(["end_of_year", "mid_year"]),
)
def test_discount_period_is_fiscal_year_minus_last_actual_year(
    last_actual: int, start_gap: int, years: int, timing: str
) -> None:
    """Property: time = year - last actual year (- 0.5 mid-year), or the company is excluded."""
    comp = with_defaults(companies(), discount_rate=None, terminal_growth=0.02)
    rows = history("X", last_actual, [100.0] * years, first_forecast=last_actual + start_gap)
    long = forecast_flows(financials(rows), comp, timing=timing)  # type: ignore[arg-type]
    shift = 0.5 if timing == "mid_year" else 0.0
    expected = (long["year"] - last_actual).cast(pl.Float64) - shift
    assert long["time"].to_list() == pytest.approx(expected.to_list())
    assert long["t"].to_list() == (long["year"] - last_actual).to_list()
    inputs, _, excluded = explicit_inputs(comp, financials(rows), timing=timing)  # type: ignore[arg-type]
    if start_gap == 1:
        assert excluded.height == 0
        assert inputs.times[0].tolist() == pytest.approx((np.arange(1, years + 1) - shift).tolist())
        assert inputs.terminal_time.tolist() == pytest.approx([float(years)])
    else:
        assert inputs.companies.height == 0
        missing = ", ".join(str(y) for y in range(last_actual + 1, last_actual + start_gap))
        assert f"no valid row for {missing}" in excluded["reason"][0]


def test_driver_base_year_must_be_the_year_before_the_first_forecast_year() -> None:
    # The 2025 actual row quarantined: 2024 must not silently become the base year.
    comp = with_defaults(
        companies({"company_id": "X"}, {"company_id": "Y"}),
        discount_rate=None,
        terminal_growth=0.02,
    )
    rows = history("X", 2025, [100.0]) + history("Y", 2025, [100.0])
    rows = [r for r in rows if not (r["company_id"] == "X" and r["year"] == 2025)]
    inputs, forecast, excluded = driver_inputs(comp, financials(rows), drivers=DriversConfig())
    assert inputs.companies["company_id"].to_list() == ["Y"]
    reason = excluded.filter(pl.col("company_id") == "X")["reason"][0]
    assert "no valid row for 2025" in reason
    assert forecast.filter(pl.col("t") == 1)["year"].to_list() == [2026]


def test_reverse_dcf_grows_the_base_flow_over_years_closed_at_the_valuation_date() -> None:
    # Actuals to 2024 (FCFF 100); valuation date 2025-12-31 closes the 2025 forecast year, so year
    # 1 is 2026, two years after the base flow. Price set by FCFF growing 5 % a year from 2024.
    comp = companies({"company_id": "X", "share_price": None})
    years = range(2026, 2030)
    flows = {y: 100.0 * 1.05 ** (y - 2024) for y in (2025, *years)}
    rows = [row("X", 2023, forecast=False), row("X", 2024, forecast=False)]
    rows += [row("X", y, forecast=True, fcff=f) for y, f in flows.items()]
    t = np.array([(dt.date(y, 12, 31) - dt.date(2025, 12, 31)).days / 365 for y in years])
    cash = np.array([flows[y] for y in years])
    value = (cash / 1.1**t).sum() + cash[-1] * 1.02 / 0.08 / 1.1 ** t[-1]
    comp = comp.with_columns(pl.lit(value / 100.0).alias("share_price"))
    valuation = ValuationConfig(methods=["dcf"], valuation_date=dt.date(2025, 12, 31))
    tables = {"companies": comp, "financials": financials(rows)}
    checked = validate_tables(tables, valuation=valuation)
    out = value_companies(
        checked.valid,
        valuation=valuation,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )
    assert out["dcf_detail"]["value_per_share"][0] == pytest.approx(value / 100.0, rel=1e-9)
    reverse = out["reverse_dcf"].row(0, named=True)
    assert reverse["reason"] is None
    assert reverse["implied_fcff_growth"] == pytest.approx(0.05, abs=1e-9)
