"""A discount rate that changes over time (Ginzu): explicit years on cumulative factors, the
terminal value at the stable-phase rate in (r - g)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from tests.builders import companies, fcff_rows, financials
from wfo_kit.config import DriversConfig, ValuationConfig
from wfo_kit.dcf import (
    enterprise_value_parts,
    explicit_inputs,
    path_discount_factors,
    rate_path,
    with_defaults,
)
from wfo_kit.drivers import driver_inputs
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies

FLOWS = [100.0, 110.0, 120.0, 125.0, 130.0, 134.0, 138.0, 141.0, 144.0, 146.0]


def _inputs(*, timing: str = "end_of_year", valuation_date: dt.date | None = None):
    comp = with_defaults(
        companies(
            {"company_id": "A", "discount_rate": 0.10},
            {"company_id": "B", "discount_rate": 0.09, "terminal_growth": 0.03},
        ),
        discount_rate=None,
        terminal_growth=0.02,
    )
    rows = fcff_rows("A", 2026, FLOWS) + fcff_rows("B", 2026, FLOWS[:4])
    inputs, _, _ = explicit_inputs(
        comp, financials(rows), timing=timing, valuation_date=valuation_date
    )
    return inputs


@pytest.mark.parametrize(
    ("timing", "day"),
    [("end_of_year", None), ("mid_year", None), ("end_of_year", dt.date(2026, 3, 31))],
)
def test_a_constant_path_equals_the_single_rate_result(timing: str, day: dt.date | None) -> None:
    inputs = _inputs(timing=timing, valuation_date=day)
    flat = replace(inputs, stable_rate=inputs.rate.copy(), fade_from=2)
    for kwargs in ({}, {"rate": np.array([[0.08, 0.12]])}, {"terminal": "exit_multiple"}):
        if kwargs.get("terminal") == "exit_multiple":
            kwargs = {**kwargs, "exit_multiple": np.array([8.0, 9.0])}
        one = enterprise_value_parts(inputs, **kwargs)
        path = enterprise_value_parts(flat, **kwargs)
        for name in one:
            np.testing.assert_allclose(path[name], one[name], rtol=1e-9, atol=1e-9)


def test_a_constant_path_equals_the_single_rate_result_in_driver_mode() -> None:
    comp = with_defaults(
        companies({"company_id": "A", "revenue_growth": 0.1, "target_margin": 0.2}),
        discount_rate=None,
        terminal_growth=0.02,
    )
    rows = [
        {"company_id": "A", "year": 2025, "is_forecast": False, "revenue": 1000.0, "ebit": 150.0}
    ]
    inputs, _, _ = driver_inputs(comp, financials(rows), drivers=DriversConfig())
    flat = replace(inputs, stable_rate=inputs.rate.copy())
    one, path = enterprise_value_parts(inputs), enterprise_value_parts(flat)
    assert path["enterprise_value"] == pytest.approx(one["enterprise_value"], rel=1e-9)


def test_ginzu_path_by_hand() -> None:
    # r = 10 % through year 5, then 9.6, 9.2, 8.8, 8.4, 8.0 %; TV = FCFF_10 x 1.02 / (8 % - 2 %)
    path = rate_path(np.array([0.10]), np.array([0.08]), np.array([10.0]), fade_from=5, years=10)
    expected = [0.10] * 5 + [0.096, 0.092, 0.088, 0.084, 0.08]
    np.testing.assert_allclose(path[0], expected, rtol=1e-12)
    factor, by_hand = 1.0, []
    for r in expected:
        factor /= 1.0 + r
        by_hand.append(factor)
    pv = sum(f * d for f, d in zip(FLOWS, by_hand, strict=True))
    tv = FLOWS[-1] * 1.02 / (0.08 - 0.02)
    inputs = _inputs().take(np.array([True, False]))
    ginzu = replace(inputs, stable_rate=np.array([0.08]), fade_from=5)
    parts = enterprise_value_parts(ginzu)
    assert parts["pv_explicit"][0] == pytest.approx(pv, rel=1e-12)
    assert parts["terminal_value"][0] == pytest.approx(tv, rel=1e-12)
    assert parts["enterprise_value"][0] == pytest.approx(pv + tv * by_hand[-1], rel=1e-12)
    # a shifted rate (sensitivity) shifts the whole path, stable rate included
    shifted = enterprise_value_parts(ginzu, rate=np.array([0.11]))
    again = enterprise_value_parts(
        replace(
            ginzu,
            companies=ginzu.companies.with_columns(pl.lit(0.11).alias("discount_rate")),
            stable_rate=np.array([0.09]),
        )
    )
    assert shifted["enterprise_value"][0] == pytest.approx(again["enterprise_value"][0], rel=1e-12)


def test_mid_year_and_stub_times_use_the_rate_of_the_year_they_fall_in() -> None:
    f = path_discount_factors(
        np.array([[0.5, 1.5, 2.25]]),
        np.array([0.10]),
        np.array([0.06]),
        np.array([3.0]),
        fade_from=1,
    )
    # path: 10 %, 8 %, 6 %
    assert f[0].tolist() == pytest.approx(
        [1.1**-0.5, 1 / 1.1 / 1.08**0.5, 1 / 1.1 / 1.08 / 1.06**0.25], rel=1e-12
    )


def _run(valuation: ValuationConfig, comp: pl.DataFrame) -> dict[str, pl.DataFrame]:
    rows = fcff_rows("A", 2026, FLOWS) + fcff_rows("B", 2026, FLOWS)
    checked = validate_tables(
        {"companies": comp, "financials": financials(rows)}, valuation=valuation
    )
    return value_companies(
        checked.valid,
        valuation=valuation,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )


def test_configured_and_row_stable_rates_through_the_value_step() -> None:
    comp = companies(
        {"company_id": "A", "discount_rate": 0.10},
        {"company_id": "B", "discount_rate": 0.10, "stable_discount_rate": 0.019},
    )
    valuation = ValuationConfig(
        methods=["dcf"],
        stable_discount_rate=0.08,
        monte_carlo={"enabled": False},
        scenarios=[],
    )
    out = _run(valuation, comp)
    detail = out["dcf_detail"]
    assert detail["company_id"].to_list() == ["A"]
    ginzu = replace(_inputs().take(np.array([True, False])), stable_rate=np.array([0.08]))
    assert detail["enterprise_value"][0] == pytest.approx(
        enterprise_value_parts(ginzu)["enterprise_value"][0], rel=1e-12
    )
    assert detail["spread"][0] == pytest.approx(0.06)
    reason = out["valuations"].filter(pl.col("company_id") == "B")["reason"][0]
    assert reason == "stable-phase discount rate 0.019 must exceed terminal growth 0.02"
    # without a stable rate anywhere: today's single-rate value
    single = _run(valuation.model_copy(update={"stable_discount_rate": None}), comp)
    assert single["dcf_detail"]["enterprise_value"][0] < detail["enterprise_value"][0]
