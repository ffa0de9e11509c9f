"""Equity-side models: DDM (Gordon, two-stage, H-model, three-stage) and FCFE, with published cases.

Published cases (printed figure, our tolerance = half a unit of the printed rounding):
* Two-stage, D0 basis: "Problem: Two-stage dividend growth" (course handout, studylib.net doc
  8233338): D0 $2, 20 % for three years then 7 %, r 15 %: P3 = $46.224, P0 = $36.930057.
* Two-stage, D1 basis: wyzant.com answer 748217: D1 $15, 10 % to year 3, then 5 %, r 12 %:
  TV 272.25, P0 = 233.25.
* Gordon: the P3 of the first case, from D3 = $3.456 (D0 basis) or D4 = $3.69792 (D1 basis):
  $46.224.
* H-model (CFA curriculum practice problem, as restated on forum.theanalystspace.com thread
  105067): D0 $2.00, 7 % falling over three years (H = 1.5) to 5 %, price $45: r = 9.80 %; so
  the H-model value at 9.8 % is $45.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.builders import companies, fcff_rows, financials
from wfo_kit.config import ValuationConfig
from wfo_kit.equity import gordon_value, h_model_value, multistage_value
from wfo_kit.errors import ConfigurationError
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies

QUIET = {"monte_carlo": {"enabled": False}, "scenarios": [], "sensitivity": {"enabled": False}}


def _run(comp: pl.DataFrame, rows: list[dict], **valuation: object) -> dict[str, pl.DataFrame]:
    config = ValuationConfig(**{**QUIET, **valuation})
    checked = validate_tables({"companies": comp, "financials": financials(rows)}, valuation=config)
    return value_companies(
        checked.valid,
        valuation=config,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )


def _row(out: dict[str, pl.DataFrame], method: str, company: str = "X") -> dict:
    frame = out["valuations"].filter(pl.col("method") == method, pl.col("company_id") == company)
    return frame.row(0, named=True)


def test_published_two_stage_d0() -> None:
    out = multistage_value(
        2.0, cost_of_equity=0.15, growth=0.20, stable_growth=0.07, high_growth_years=3
    )
    assert out["terminal_price"][0] == pytest.approx(46.224, abs=5e-4)
    assert out["value"][0] == pytest.approx(36.930057, abs=5e-7)


def test_published_two_stage_d1_through_the_ddm_method() -> None:
    comp = companies(
        {
            "dividend_per_share": 15.0,
            "dividend_basis": "D1",
            "dividend_growth": 0.10,
            "high_growth_years": 3,
            "terminal_growth": 0.05,
            "cost_of_equity": 0.12,
            "shares_diluted": 2.0,
        }
    )
    out = _run(comp, fcff_rows("X", 2026, [1.0]), methods=["ddm"])
    row = _row(out, "ddm")
    assert row["status"] == "valued"
    assert row["value_per_share"] == pytest.approx(233.25, abs=0.005)
    assert row["equity_value"] == pytest.approx(2 * row["value_per_share"])
    assert row["enterprise_value"] is None
    assert out["ddm_detail"]["terminal_price"][0] == pytest.approx(272.25, abs=0.005)
    assert row["low"] < row["value_per_share"] < row["high"]


def test_published_gordon_both_bases() -> None:
    assert gordon_value(3.456, 0.15, 0.07)[0] == pytest.approx(46.224, abs=5e-4)
    assert gordon_value(3.69792, 0.15, 0.07, next_dividend=True)[0] == pytest.approx(
        46.224, abs=5e-4
    )
    assert np.isnan(gordon_value(1.0, 0.05, 0.05)[0])


def test_published_h_model() -> None:
    assert h_model_value(2.0, 0.098, 0.07, 0.05, half_life=1.5)[0] == pytest.approx(45.0, abs=5e-3)
    comp = companies(
        {
            "dividend_per_share": 2.0,
            "dividend_growth": 0.07,
            "transition_years": 3,
            "terminal_growth": 0.05,
            "cost_of_equity": 0.098,
        }
    )
    out = _run(comp, fcff_rows("X", 2026, [1.0]), methods=["ddm"], equity={"ddm_model": "h_model"})
    assert _row(out, "ddm")["value_per_share"] == pytest.approx(45.0, abs=5e-3)


def test_one_stage_ddm_equals_gordon_and_three_stage_without_transition_equals_two_stage() -> None:
    rng = np.random.default_rng(7)
    d0, ke = rng.uniform(0.5, 5, 50), rng.uniform(0.08, 0.15, 50)
    g_a, g = rng.uniform(-0.05, 0.3, 50), rng.uniform(0.0, 0.05, 50)
    one = multistage_value(d0, cost_of_equity=ke, growth=g_a, stable_growth=g, high_growth_years=0)
    np.testing.assert_allclose(one["value"], gordon_value(d0, ke, g), rtol=1e-12)
    n1 = rng.integers(1, 10, 50).astype(float)
    two = multistage_value(d0, cost_of_equity=ke, growth=g_a, stable_growth=g, high_growth_years=n1)
    three = multistage_value(
        d0,
        cost_of_equity=ke,
        growth=g_a,
        stable_growth=g,
        high_growth_years=n1,
        transition_years=0,
    )
    np.testing.assert_allclose(three["value"], two["value"], rtol=1e-12)


def test_three_stage_by_hand() -> None:
    # D0 1; 10 % for 2 years; then 8, 6 % (n2 = 2, reaching 4 % ... ): path 10, 10, 7, 4 %
    # with g_n 4 %: years 3-4 fall linearly, reaching 4 % in year 4; ke 10 % -> 9 % stable.
    out = multistage_value(
        1.0,
        cost_of_equity=0.10,
        stable_cost_of_equity=0.09,
        growth=0.10,
        stable_growth=0.04,
        high_growth_years=2,
        transition_years=2,
    )
    g = [0.10, 0.10, 0.07, 0.04, 0.04]
    ke = [0.10, 0.10, 0.095, 0.09]
    d, factor, pv = 1.0, 1.0, 0.0
    for t in range(4):
        d *= 1 + g[t]
        factor /= 1 + ke[t]
        pv += d * factor
    price = d * 1.04 / (0.09 - 0.04)
    assert out["value"][0] == pytest.approx(pv + price * factor, rel=1e-12)


def test_earnings_route_uses_the_payouts() -> None:
    # EPS0 2, 10 % for 2 years, payout 40 %, then 5 % with payout 60 %, ke 10 %
    out = multistage_value(
        2.0,
        cost_of_equity=0.10,
        growth=0.10,
        stable_growth=0.05,
        high_growth_years=2,
        payout=0.4,
        stable_payout=0.6,
    )
    eps1, eps2 = 2.2, 2.42
    by_hand = 0.4 * eps1 / 1.1 + 0.4 * eps2 / 1.1**2 + eps2 * 1.05 * 0.6 / 0.05 / 1.1**2
    assert out["value"][0] == pytest.approx(by_hand, rel=1e-12)
    comp = companies(
        {
            "eps": 2.0,
            "payout_ratio": 0.4,
            "stable_payout_ratio": 0.6,
            "dividend_growth": 0.10,
            "high_growth_years": 2,
            "terminal_growth": 0.05,
            "cost_of_equity": 0.10,
        }
    )
    got = _row(_run(comp, fcff_rows("X", 2026, [1.0]), methods=["ddm"]), "ddm")
    assert got["value_per_share"] == pytest.approx(by_hand, rel=1e-12)


def test_missing_ddm_inputs_and_ke_not_above_g_are_excluded_with_reasons() -> None:
    comp = companies(
        {"company_id": "A", "beta": None},
        {"company_id": "B", "dividend_per_share": 1.0, "dividend_growth": 0.1,
         "cost_of_equity": 0.02, "terminal_growth": 0.03},
    )  # fmt: skip
    rows = fcff_rows("A", 2026, [1.0]) + fcff_rows("B", 2026, [1.0])
    out = _run(comp, rows, methods=["ddm"])
    assert _row(out, "ddm", "A")["reason"] == (
        "ddm (two_stage) needs dividend_per_share (or eps and payout_ratio), "
        "cost_of_equity (or beta), dividend_growth"
    )
    assert _row(out, "ddm", "B")["reason"] == (
        "stable cost of equity 0.02 must exceed stable growth 0.03"
    )


def test_fcfe_equals_fcff_equity_without_debt() -> None:
    comp = companies({"cash": 40.0, "minority_interest": 5.0, "non_operating_assets": 7.0})
    comp = comp.with_columns(pl.col("discount_rate").alias("cost_of_equity"))
    rows = fcff_rows("X", 2026, [100.0, 110.0, 120.0])
    out = _run(comp, rows, methods=["dcf", "fcfe"])
    dcf, fcfe = _row(out, "dcf"), _row(out, "fcfe")
    assert fcfe["status"] == "valued"
    assert fcfe["equity_value"] == pytest.approx(dcf["equity_value"], rel=1e-12)
    assert fcfe["low"] == pytest.approx(dcf["low"], rel=1e-12)
    assert fcfe["high"] == pytest.approx(dcf["high"], rel=1e-12)


def test_fcfe_with_debt_by_hand_and_missing_interest_excluded() -> None:
    comp = companies(
        {"company_id": "X", "debt": 200.0, "cash": 10.0, "cost_of_equity": 0.12},
        {"company_id": "Y", "debt": 200.0, "cost_of_equity": 0.12},
    )
    x = fcff_rows("X", 2026, [100.0, 110.0], interest_expense=20.0, net_borrowing=5.0)
    y = fcff_rows("Y", 2026, [100.0, 110.0])
    out = _run(comp, x + y, methods=["fcfe"])
    fcfe = [100.0 - 20.0 * 0.75 + 5.0, 110.0 - 20.0 * 0.75 + 5.0]
    pv = fcfe[0] / 1.12 + fcfe[1] / 1.12**2 + fcfe[1] * 1.02 / 0.10 / 1.12**2
    assert _row(out, "fcfe", "X")["equity_value"] == pytest.approx(pv + 10.0, rel=1e-12)
    assert _row(out, "fcfe", "Y")["reason"] == (
        "fcfe needs interest_expense and net_borrowing (the company has debt) for 2026, 2027"
    )


def test_net_income_basis() -> None:
    comp = companies({"cost_of_equity": 0.10})
    rows = [
        {"company_id": "X", "year": 2026, "is_forecast": True, "net_income": 80.0,
         "capex": 30.0, "depreciation": 20.0, "change_nwc": 5.0, "ebit": 100.0},
    ]  # fmt: skip
    out = _run(comp, rows, methods=["fcfe"], equity={"fcfe_basis": "net_income"})
    flow = 80.0 - 10.0 - 5.0
    by_hand = flow / 1.1 + flow * 1.02 / 0.08 / 1.1
    assert _row(out, "fcfe")["value_per_share"] == pytest.approx(by_hand / 100.0, rel=1e-12)


def test_routes_send_banks_to_ddm_and_the_blend_follows() -> None:
    bank = {
        "company_id": "BANK",
        "sector": "Banks",
        "dividend_per_share": 2.0,
        "dividend_growth": 0.2,
        "high_growth_years": 3,
        "terminal_growth": 0.07,
        "cost_of_equity": 0.15,
    }
    comp = companies(bank, {"company_id": "TECH", "sector": "Tech"})
    rows = fcff_rows("BANK", 2026, [100.0]) + fcff_rows("TECH", 2026, [100.0])
    out = _run(
        comp,
        rows,
        methods=["dcf", "ddm"],
        routes={"Banks": ["ddm"]},
        blend={"dcf": 0.5, "ddm": 0.5},
    )
    assert _row(out, "dcf", "BANK")["reason"] == "valuation.routes.Banks values it by ddm only"
    assert _row(out, "ddm", "BANK")["value_per_share"] == pytest.approx(36.930057, abs=5e-7)
    assert _row(out, "dcf", "TECH")["status"] == "valued"
    blend = out["blend"].filter(pl.col("company_id") == "BANK").row(0, named=True)
    assert blend["base"] == pytest.approx(36.930057, abs=5e-7)
    assert blend["methods_used"] == "ddm 1.0"
    assert "BANK" not in out["dcf_detail"]["company_id"].to_list()


def test_a_route_naming_a_method_not_run_is_a_configuration_error() -> None:
    with pytest.raises((ConfigurationError, ValueError), match=r"not in valuation\.methods"):
        ValuationConfig(routes={"Banks": ["ddm"]})


def test_a_fractional_stage_length_is_quarantined() -> None:
    comp = companies({"high_growth_years": 2.5})
    checked = validate_tables(
        {"companies": comp, "financials": financials(fcff_rows("X", 2026, [1.0]))}
    )
    assert checked.quarantine.select("table", "column", "check").rows() == [
        ("companies", "high_growth_years", "whole_number")
    ]
