"""XNPV / XIRR against spreadsheet values, and the reverse DCF's stub under a valuation date.

Published cases: Microsoft Support, "XNPV function" and "XIRR function" (the same five flows:
-10 000 on 2008-01-01, 2 750 on 2008-03-01, 4 250 on 2008-10-30, 3 250 on 2009-02-15, 2 750 on
2009-04-01). Printed: XNPV at 9 % = 2 086.65 (to the cent); XIRR = 0.373362535 (the spreadsheet
stops iterating within about 1e-8, so we match to 2e-9). 2008 is a leap year: 2008-01-01 to
2008-03-01 is 60 days, counted as 60/365 years.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import wfo_kit as wfo
from tests.builders import companies, financials
from wfo_kit.config import ValuationConfig
from wfo_kit.dated import irr_matrix, xirr, xirr_frame, xnpv, xnpv_frame, year_fractions
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies

ROOT = Path(__file__).resolve().parent.parent

MS_DATES = [
    dt.date(2008, 1, 1),
    dt.date(2008, 3, 1),
    dt.date(2008, 10, 30),
    dt.date(2009, 2, 15),
    dt.date(2009, 4, 1),
]
MS_AMOUNTS = [-10000.0, 2750.0, 4250.0, 3250.0, 2750.0]


def test_microsoft_xnpv_example_to_the_cent() -> None:
    assert xnpv(0.09, MS_AMOUNTS, MS_DATES) == pytest.approx(2086.65, abs=0.005)


def test_xnpv_by_hand_actual_365_with_the_leap_day() -> None:
    # days from 2008-01-01: 60 (29 Feb counted), 303, 411, 456; each over 365
    days = np.array([0, 60, 303, 411, 456])
    assert year_fractions(MS_DATES, MS_DATES[0]).tolist() == (days / 365).tolist()
    by_hand = sum(a / 1.09 ** (d / 365) for a, d in zip(MS_AMOUNTS, days, strict=True))
    assert xnpv(0.09, MS_AMOUNTS, MS_DATES) == pytest.approx(by_hand, rel=1e-15)


def test_microsoft_xirr_example() -> None:
    rate = xirr(MS_AMOUNTS, MS_DATES)
    assert rate == pytest.approx(0.373362535, abs=2e-9)
    assert xnpv(rate, MS_AMOUNTS, MS_DATES) == pytest.approx(0.0, abs=1e-8)


def test_flow_on_the_valuation_date_is_not_discounted() -> None:
    day = dt.date(2025, 6, 30)
    assert xnpv(0.5, [123.0], [day]) == 123.0
    assert xnpv(0.1, [100.0, 110.0], [day, dt.date(2026, 6, 30)]) == pytest.approx(200.0)


def test_xnpv_on_anniversaries_equals_the_yearly_pv() -> None:
    # 2021-03-01 .. 2024-03-01 crosses no 29 February before 2024-02-29: years 1 and 2 are exact
    start = dt.date(2021, 3, 1)
    dates = [dt.date(2022, 3, 1), dt.date(2023, 3, 1)]
    flows = [100.0, 250.0]
    yearly = 100.0 / 1.08 + 250.0 / 1.08**2
    assert xnpv(0.08, flows, dates, valuation_date=start) == pytest.approx(yearly, rel=1e-12)
    # crossing a leap day the exponent is 366/365, as in the spreadsheet
    leap = xnpv(0.08, [100.0], [dt.date(2024, 3, 1)], valuation_date=dt.date(2023, 3, 1))
    assert leap == pytest.approx(100.0 / 1.08 ** (366 / 365), rel=1e-12)
    assert leap != pytest.approx(100.0 / 1.08, rel=1e-6)


def test_several_flows_a_year_and_a_zero_rate_sum() -> None:
    dates = [dt.date(2025, m, 1) for m in (1, 4, 7, 10)]
    assert xnpv(0.0, [1.0, 2.0, 3.0, 4.0], dates) == 10.0


def test_bad_inputs_are_refused_with_one_line() -> None:
    with pytest.raises(ValueError, match="before the valuation date"):
        xnpv(0.1, [1.0], [dt.date(2020, 1, 1)], valuation_date=dt.date(2021, 1, 1))
    with pytest.raises(ValueError, match="2 amounts for 1 dates"):
        xnpv(0.1, [1.0, 2.0], [dt.date(2020, 1, 1)])
    with pytest.raises(ValueError, match="not above -100%"):
        xnpv(-1.0, [1.0], [dt.date(2020, 1, 1)])
    assert np.isnan(xirr([1.0, 2.0], [dt.date(2020, 1, 1), dt.date(2021, 1, 1)]))


def test_frames_value_many_series_at_once_as_the_scalar_functions() -> None:
    rows = [("MS", d, a) for d, a in zip(MS_DATES, MS_AMOUNTS, strict=True)]
    rows += [("B", dt.date(2025, 1, 1), -100.0), ("B", dt.date(2026, 1, 1), 121.0)]
    rows += [("C", dt.date(2025, 1, 1), 5.0)]
    flows = pl.DataFrame(rows, schema=["company_id", "date", "amount"], orient="row")
    rates = pl.DataFrame({"company_id": ["MS", "B"], "rate": [0.09, 0.10]})
    out = xnpv_frame(flows, rate=rates).sort("company_id")
    assert out["company_id"].to_list() == ["B", "C", "MS"]
    assert out["xnpv"][0] == pytest.approx(-100.0 + 121.0 / 1.1)
    assert out["xnpv"][1] is None
    assert out["reason"][1] == "no rate, or a rate not above -100%"
    assert out["xnpv"][2] == pytest.approx(xnpv(0.09, MS_AMOUNTS, MS_DATES), rel=1e-12)
    irr = xirr_frame(flows).sort("company_id")
    assert irr["xirr"][0] == pytest.approx(0.21, abs=1e-12)
    assert irr["xirr"][1] is None
    assert "positive and one negative" in irr["reason"][1]
    assert irr["xirr"][2] == pytest.approx(xirr(MS_AMOUNTS, MS_DATES), abs=1e-12)
    early = xnpv_frame(flows, rate=0.1, valuation_date=dt.date(2025, 6, 1)).sort("company_id")
    assert early["xnpv"].to_list()[1:] == [None, None]
    assert "before the valuation date" in early["reason"][2]


def test_reverse_dcf_under_a_valuation_date_counts_the_stub() -> None:
    # Valuation date 2026-03-31: 2026 is under way, 275/365 of its flow counted. Price set by a
    # DCF whose FCFF grows 5 % a year from the 2025 actual; the reverse DCF must find 5 %.
    day = dt.date(2026, 3, 31)
    comp = companies({"company_id": "X", "share_price": 1.0})
    years = range(2026, 2031)
    flow = {y: 100.0 * 1.05 ** (y - 2025) for y in years}
    base = {"company_id": "X", "year": 2025, "is_forecast": False, "fcff": 100.0}
    rows = [base] + [{**base, "year": y, "is_forecast": True, "fcff": f} for y, f in flow.items()]
    t = np.array([(dt.date(y, 12, 31) - day).days / 365 for y in years])
    cash = np.array([flow[y] for y in years])
    cash[0] *= 275 / 365
    value = (cash / 1.1**t).sum() + flow[2030] * 1.02 / 0.08 / 1.1 ** t[-1]
    comp = comp.with_columns(pl.lit(value / 100.0).alias("share_price"))
    valuation = ValuationConfig(
        methods=["dcf"], valuation_date=day, monte_carlo={"enabled": False}, scenarios=[]
    )
    checked = validate_tables(
        {"companies": comp, "financials": financials(rows)}, valuation=valuation
    )
    out = value_companies(
        checked.valid,
        valuation=valuation,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )
    assert out["dcf_detail"]["value_per_share"][0] == pytest.approx(value / 100.0, rel=1e-12)
    reverse = out["reverse_dcf"].row(0, named=True)
    assert reverse["reason"] is None
    assert reverse["implied_fcff_growth"] == pytest.approx(0.05, abs=1e-9)


def test_dated_flows_table_values_deals_through_the_pipeline(tmp_path: Path) -> None:
    # The sample's companies with a dated_flows file naming ids it does not have: the file is
    # read (dates parsed) and its rows quarantined with the reason, never dropped silently.
    (tmp_path / "dated.csv").write_text(
        "company_id,date,amount\n"
        "X,2026-06-30,50\nX,2027-03-31,60\nX,2028-12-31,1000\n"
        "Y,2025-12-31,10\nY,2026-12-31,10\nZZ,2026-12-31,5\n",
        encoding="utf-8",
    )
    config = wfo.load_config(
        ROOT / "parameters" / "default.yaml",
        overrides={
            "data": {"dated_flows": str(tmp_path / "dated.csv")},
            "valuation": {
                "methods": ["dated"],
                "blend": {"dated": 1.0},
                "valuation_date": "2026-01-31",
                "monte_carlo": {"enabled": False},
                "scenarios": [],
            },
        },
    )
    ctx = wfo.run_pipeline(wfo.RunContext(config))
    sample = ctx["companies"].filter(pl.col("company_id").is_in(["C001", "C002"]))
    assert sample.height == 2  # the sample's ids: X, Y, ZZ are not among them
    quarantined = ctx["quarantine"].filter(pl.col("table") == "dated_flows")
    assert set(quarantined["company_id"]) == {"X", "Y", "ZZ"}
    assert quarantined["check"].unique().to_list() == ["known_company"]


def test_dated_method_by_hand() -> None:
    day = dt.date(2026, 1, 31)
    comp = companies(
        {"company_id": "X", "discount_rate": 0.10, "debt": 100.0, "cash": 20.0},
        {"company_id": "Y", "discount_rate": 0.10},
        {"company_id": "W", "discount_rate": 0.10},
    )
    dated = pl.DataFrame(
        {
            "company_id": ["X", "X", "X", "Y", "Y"],
            "date": [dt.date(2026, 6, 30), dt.date(2027, 3, 31), dt.date(2028, 12, 31),
                     dt.date(2025, 12, 31), dt.date(2026, 12, 31)],
            "amount": [50.0, 60.0, 1000.0, 10.0, 10.0],
        }
    )  # fmt: skip
    valuation = ValuationConfig(
        methods=["dated"], blend={"dated": 1.0}, valuation_date=day,
        monte_carlo={"enabled": False}, scenarios=[],
    )  # fmt: skip
    tables = {
        "companies": comp,
        "financials": financials([{**fcff_rows_one(c)} for c in ("X", "Y", "W")]),
        "dated_flows": dated,
    }
    checked = validate_tables(tables, valuation=valuation)
    out = value_companies(
        checked.valid,
        valuation=valuation,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )
    rows = {r["company_id"]: r for r in out["valuations"].iter_rows(named=True)}
    ev = xnpv(0.10, [50.0, 60.0, 1000.0], dated["date"].to_list()[:3], valuation_date=day)
    assert rows["X"]["enterprise_value"] == pytest.approx(ev, rel=1e-12)
    assert rows["X"]["equity_value"] == pytest.approx(ev - 100.0 + 20.0, rel=1e-12)
    low = xnpv(0.11, [50.0, 60.0, 1000.0], dated["date"].to_list()[:3], valuation_date=day)
    assert rows["X"]["low"] == pytest.approx((low - 80.0) / 100.0, rel=1e-12)
    assert rows["Y"]["reason"] == (
        "a flow is dated before the valuation date (spreadsheet XNPV: #NUM!)"
    )
    assert rows["W"]["reason"] == "no rows in dated_flows"


def fcff_rows_one(company: str) -> dict:
    return {"company_id": company, "year": 2026, "is_forecast": True, "fcff": 1.0}


def test_xirr_falls_back_to_bisection_and_says_when_there_is_no_root() -> None:
    amounts = np.array([[-100.0, 0.0, 0.0, 1e6], [-1.0, 3.0, -2.5, 0.0]])
    times = np.array([[0.0, 1.0, 2.0, 3.0]] * 2)
    # one Newton step cannot converge: the bracketed bisection finds (10^4)^(1/3) - 1
    rate = irr_matrix(amounts, times, iterations=1)
    assert rate[0] == pytest.approx(1e4 ** (1 / 3) - 1, rel=1e-9)
    assert np.isnan(rate[1])  # -1 + 3x - 2.5x^2 has no real root
