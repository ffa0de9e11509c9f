"""DCF arithmetic against a published worked example and textbook identities."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfo_kit.dcf import (
    dcf_arrays,
    discount_factor,
    equity_bridge,
    gordon_terminal_value,
    present_value,
    value_dcf,
)

# Tolerance: the published figures are printed to 4 decimals; we match to 5e-5.
TOL = 5e-5


def published_case() -> tuple[pl.DataFrame, pl.DataFrame]:
    companies = pl.DataFrame(
        {
            "company_id": ["X"],
            "name": ["Example"],
            "sector": ["S"],
            "currency": ["USD"],
            "shares_diluted": [107.0],
            "debt": [126.2],
            "cash": [43.1],
            "minority_interest": [0.0],
            "preferred_equity": [0.0],
            "non_operating_assets": [0.0],
            "tax_rate": [0.25],
            "beta": [None],
            "discount_rate": [0.07],
            "terminal_growth": [0.02],
        },
        schema_overrides={"beta": pl.Float64},
    )
    financials = pl.DataFrame(
        {
            "company_id": ["X"] * 3,
            "year": [2026, 2027, 2028],
            "is_forecast": [True] * 3,
            "revenue": [None] * 3,
            "ebitda": [None] * 3,
            "ebit": [None] * 3,
            "depreciation": [None] * 3,
            "capex": [None] * 3,
            "change_nwc": [None] * 3,
            "net_income": [None] * 3,
            "fcff": [210.0, 218.0, 227.0],
        },
        schema_overrides={
            c: pl.Float64
            for c in [
                "revenue",
                "ebitda",
                "ebit",
                "depreciation",
                "capex",
                "change_nwc",
                "net_income",
            ]
        },
    )
    return companies, financials


def test_published_end_of_year_case() -> None:
    # WACC 7 %, g 2 %, FCFF 210, 218, 227; debt 126.2, cash 43.1, 107 diluted shares.
    companies, financials = published_case()
    detail, _, excluded = value_dcf(companies, financials)
    assert excluded.height == 0
    row = detail.row(0, named=True)
    assert row["pv_explicit"] == pytest.approx(571.9709, abs=TOL)
    assert row["terminal_value"] == pytest.approx(4630.8000, abs=TOL)
    assert row["pv_terminal"] == pytest.approx(3780.1122, abs=TOL)
    assert row["enterprise_value"] == pytest.approx(4352.0832, abs=TOL)
    assert row["equity_value"] == pytest.approx(4268.9832, abs=TOL)
    assert row["value_per_share"] == pytest.approx(39.8970, abs=TOL)


def test_mid_year_and_end_of_year_single_flow() -> None:
    # 1,000 in year 5 at 10 %: mid-year (exponent 4.5) 651.23; end-of-year at t = 4, 683.01.
    flows = np.array([[0.0, 0.0, 0.0, 0.0, 1000.0]])
    assert present_value(flows, np.array([0.10]), timing="mid_year")[0] == pytest.approx(
        651.23, abs=5e-3
    )
    assert present_value(flows[:, 1:], np.array([0.10]))[0] == pytest.approx(683.01, abs=5e-3)


def test_gordon_is_never_a_number_when_rate_not_above_growth() -> None:
    tv = gordon_terminal_value(
        np.array([100.0, 100.0]), np.array([0.05, 0.04]), np.array([0.05, 0.06])
    )
    assert np.isnan(tv).all()


def test_company_with_rate_not_above_growth_is_excluded_with_reason() -> None:
    companies, financials = published_case()
    companies = companies.with_columns(pl.lit(0.02).alias("discount_rate"))
    detail, _, excluded = value_dcf(companies, financials)
    assert detail.height == 0
    assert excluded["reason"].to_list() == ["discount rate 0.02 must exceed terminal growth 0.02"]


def test_fcff_is_computed_from_its_parts_when_not_given() -> None:
    companies, financials = published_case()
    # EBIT 200 x (1 - 0.25) + D&A 50 - capex 60 - change in NWC 10 = 130
    financials = financials.with_columns(
        pl.lit(None, pl.Float64).alias("fcff"),
        pl.lit(200.0).alias("ebit"),
        pl.lit(50.0).alias("depreciation"),
        pl.lit(60.0).alias("capex"),
        pl.lit(10.0).alias("change_nwc"),
    )
    _, flows, _ = value_dcf(companies, financials)
    assert flows["fcff"].to_list() == pytest.approx([130.0, 130.0, 130.0])


def test_equity_bridge_signs() -> None:
    frame = pl.DataFrame(
        {
            "enterprise_value": [1000.0],
            "debt": [300.0],
            "preferred_equity": [50.0],
            "minority_interest": [20.0],
            "cash": [100.0],
            "non_operating_assets": [30.0],
            "shares_diluted": [10.0],
        }
    )
    out = equity_bridge(frame).row(0, named=True)
    assert out["equity_value"] == pytest.approx(760.0)
    assert out["value_per_share"] == pytest.approx(76.0)


flows_strategy = st.lists(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(flows=flows_strategy, rate=st.floats(0.01, 0.3), k=st.floats(0.1, 10))
def test_scaling_cash_flows_scales_value(flows: list[float], rate: float, k: float) -> None:
    matrix = np.array([flows])
    base = dcf_arrays(matrix, np.array([len(flows)]), np.array([rate]), np.array([0.0]))
    scaled = dcf_arrays(matrix * k, np.array([len(flows)]), np.array([rate]), np.array([0.0]))
    assert scaled["enterprise_value"][0] == pytest.approx(
        k * base["enterprise_value"][0], rel=1e-9, abs=1e-6
    )


@settings(max_examples=60, deadline=None)
@given(flows=flows_strategy)
def test_zero_rate_gives_plain_sum(flows: list[float]) -> None:
    assert present_value(np.array([flows]), np.array([0.0]))[0] == pytest.approx(
        sum(flows), abs=1e-6
    )


@settings(max_examples=60, deadline=None)
@given(flows=flows_strategy, rate=st.floats(0.01, 0.3))
def test_mid_year_is_end_of_year_times_half_year_growth(flows: list[float], rate: float) -> None:
    matrix, r = np.array([flows]), np.array([rate])
    mid = present_value(matrix, r, timing="mid_year")[0]
    end = present_value(matrix, r)[0]
    assert mid == pytest.approx(end * (1 + rate) ** 0.5, rel=1e-9, abs=1e-6)


def test_gordon_equals_long_truncated_growing_perpetuity() -> None:
    rate, growth, last = 0.08, 0.03, 100.0
    years = np.arange(1, 3001)
    explicit = (
        last * (1 + growth) ** years * discount_factor(years, np.full(years.shape, rate))
    ).sum()
    assert gordon_terminal_value(
        np.array([last * (1 + growth)]), np.array([rate]), np.array([growth])
    )[0] == pytest.approx(explicit, rel=1e-9)


def test_value_falls_as_rate_rises() -> None:
    flows = np.tile(np.array([[100.0, 110.0, 120.0, 130.0, 140.0]]), (5, 1))
    rates = np.array([0.06, 0.07, 0.08, 0.09, 0.10])
    ev = dcf_arrays(flows, np.full(5, 5), rates, np.full(5, 0.02))["enterprise_value"]
    assert (np.diff(ev) < 0).all()


def test_horner_matches_explicit_discounting_with_ragged_horizons() -> None:
    rng = np.random.default_rng(1)
    flows = rng.normal(100, 30, size=(50, 8))
    horizon = rng.integers(1, 9, size=50)
    flows[np.arange(8) >= horizon[:, None]] = 0.0
    rate = rng.uniform(0.05, 0.15, size=50)
    explicit = (flows * (1 + rate[:, None]) ** -np.arange(1, 9)).sum(axis=1)
    np.testing.assert_allclose(present_value(flows, rate), explicit, rtol=1e-12)


def test_wide_path_matches_long_path_on_published_case() -> None:
    from wfo_kit.dcf import dcf_wide

    companies, financials = published_case()
    detail, _, _ = value_dcf(companies, financials)
    wide = companies.with_columns(
        pl.lit(210.0).alias("f1"), pl.lit(218.0).alias("f2"), pl.lit(227.0).alias("f3")
    )
    out = dcf_wide(wide, flow_columns=["f1", "f2", "f3"]).row(0, named=True)
    for column in (
        "pv_explicit",
        "terminal_value",
        "pv_terminal",
        "enterprise_value",
        "equity_value",
        "value_per_share",
    ):
        assert out[column] == pytest.approx(detail[column][0], rel=1e-13), column
    mid = dcf_wide(wide, flow_columns=["f1", "f2", "f3"], timing="mid_year")
    mid_long, _, _ = value_dcf(companies, financials, timing="mid_year")
    assert mid["enterprise_value"][0] == pytest.approx(mid_long["enterprise_value"][0], rel=1e-13)
    bad = dcf_wide(wide.with_columns(pl.lit(0.02).alias("discount_rate")), flow_columns=["f1"])
    assert bad["value_per_share"][0] is None
