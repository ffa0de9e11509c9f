"""Ginzu-style taxes: NOL carry-forward and an effective rate that moves to the marginal rate."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.builders import companies, financials
from wfo_kit.config import ValuationConfig
from wfo_kit.dcf import TaxPath, forecast_flows
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies


def _rows(ebit: list[float]) -> pl.DataFrame:
    return financials(
        [{"company_id": "X", "year": 2025, "is_forecast": False, "ebit": 1.0, "depreciation": 0.0,
          "capex": 0.0, "change_nwc": 0.0}]
        + [{"company_id": "X", "year": 2026 + i, "is_forecast": True, "ebit": e,
            "depreciation": 5.0, "capex": 5.0, "change_nwc": 0.0} for i, e in enumerate(ebit)]
    )  # fmt: skip


def test_without_nol_or_effective_rate_the_path_is_todays_fcff() -> None:
    comp = companies({"tax_rate": 0.25})
    fin = _rows([-50.0, 30.0, 40.0])
    taxed = forecast_flows(fin, comp, taxes=TaxPath())
    assert_frame_equal(taxed.drop("terminal_fcff"), forecast_flows(fin, comp))
    assert taxed["terminal_fcff"].to_list() == taxed["fcff"].to_list()


def test_nol_carry_forward_by_hand() -> None:
    # NOL 10 at the start; a loss of 50 raises it to 60; 30 of profit leaves 30; of 40, 10 is
    # taxable; then all 100. Tax 25 %.
    comp = companies({"tax_rate": 0.25, "nol": 10.0})
    flows = forecast_flows(_rows([-50.0, 30.0, 40.0, 100.0]), comp, taxes=TaxPath())
    assert flows["fcff"].to_list() == pytest.approx([-50.0, 30.0, 40.0 - 2.5, 75.0], abs=1e-12)
    # carry_forward for every company, no starting NOL: the first loss shields later profits
    plain = companies({"tax_rate": 0.25})
    flows = forecast_flows(_rows([-50.0, 30.0, 40.0]), plain, taxes=TaxPath(carry_forward=True))
    assert flows["fcff"].to_list() == pytest.approx([-50.0, 30.0, 40.0 - 5.0], abs=1e-12)


def test_effective_rate_moves_to_the_marginal_rate() -> None:
    comp = companies({"tax_rate": 0.30, "effective_tax_rate": 0.10})
    flows = forecast_flows(_rows([100.0] * 4), comp, taxes=TaxPath(fade_from=1))
    # t = 1: 10 %; then linearly to 30 % in year N = 4: 16.67 %, 23.33 %, 30 %
    rates = [0.10, 0.10 + 0.2 / 3, 0.10 + 0.4 / 3, 0.30]
    assert flows["fcff"].to_list() == pytest.approx([100.0 * (1 - r) for r in rates], abs=1e-12)


def test_the_value_step_applies_the_configured_carry_forward() -> None:
    comp = companies({"tax_rate": 0.25, "discount_rate": 0.10, "terminal_growth": 0.0})
    quiet = {"monte_carlo": {"enabled": False}, "scenarios": [], "sensitivity": {"enabled": False}}
    values = []
    for carry in (False, True):
        valuation = ValuationConfig(methods=["dcf"], taxes={"carry_forward_losses": carry}, **quiet)
        checked = validate_tables(
            {"companies": comp, "financials": _rows([-40.0, 40.0])}, valuation=valuation
        )
        out = value_companies(
            checked.valid,
            valuation=valuation,
            universe=comp["company_id"],
            quarantine=checked.quarantine,
        )
        values.append(out["dcf_detail"]["enterprise_value"][0])
    # without: -30 (a tax credit), 30; with: -40, 40 (shielded). The terminal value is taxed at
    # the marginal rate either way (the NOL is used up): FCFF_N x (1 + g) = 30 at g = 0.
    assert values[0] == pytest.approx(-30 / 1.1 + 30 / 1.1**2 + 30 / 0.1 / 1.1**2)
    assert values[1] == pytest.approx(-40 / 1.1 + 40 / 1.1**2 + 30 / 0.1 / 1.1**2)
