"""Valuation engine: published worked cases and textbook identities. Tolerances are stated."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import scipy.stats

from tests.builders import balance_sheet, companies, fcff_rows, financials, peers
from wfo_kit.assets import value_assets
from wfo_kit.blend import blend_values
from wfo_kit.comparables import value_comparables
from wfo_kit.config import (
    AssetConfig,
    ComparablesConfig,
    DriversConfig,
    MonteCarloConfig,
    Scenario,
    ValuationConfig,
    WaccConfig,
)
from wfo_kit.dcf import enterprise_value_parts, explicit_inputs, per_share_from_ev, value_dcf
from wfo_kit.drivers import driver_paths
from wfo_kit.rates import with_discount_rates
from wfo_kit.risk import (
    monte_carlo,
    reverse_dcf,
    scenario_values,
    sensitivity_rate_growth,
    sensitivity_rate_multiple,
)

CENT = 0.005  # "to the cent": published figures printed to 2 decimals


def test_wacc_published_case() -> None:
    # E 500,000, D 200,000, rf 3 %, beta 1.06, premium 8 %, Kd 5 %, tax 25 %:
    # Ke 11.48 %, WACC 9.27143 %
    frame = companies(
        {
            "market_cap": 500_000.0,
            "debt": 200_000.0,
            "beta": 1.06,
            "tax_rate": 0.25,
            "discount_rate": None,
        }
    )
    config = ValuationConfig(
        rate_source="wacc",
        wacc=WaccConfig(
            risk_free=0.03, equity_risk_premium=0.08, cost_of_debt=0.05, weights="market"
        ),
    )
    row = with_discount_rates(frame, valuation=config).row(0, named=True)
    assert row["cost_of_equity"] == pytest.approx(0.1148, abs=5e-7)
    assert row["discount_rate"] == pytest.approx(0.0927143, abs=5e-8)


@pytest.mark.parametrize(("weights", "ratio"), [("debt_to_equity", 0.4), ("debt_to_value", 2 / 7)])
def test_wacc_target_ratio_weights_match_market_weights(weights: str, ratio: float) -> None:
    frame = companies({"beta": 1.06, "tax_rate": 0.25, "discount_rate": None})
    config = ValuationConfig(
        rate_source="wacc",
        wacc=WaccConfig(
            risk_free=0.03,
            equity_risk_premium=0.08,
            cost_of_debt=0.05,
            weights=weights,
            target_ratio=ratio,
        ),
    )
    assert with_discount_rates(frame, valuation=config)["discount_rate"][0] == pytest.approx(
        0.0927143, abs=5e-8
    )


def comparables_case() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    # NTM EBITDA 300; EV/EBITDA quartiles 9.8 / 11.5 / 13.2 (five peers, linear quartiles)
    target = companies(
        {
            "debt": 500.0,
            "preferred_equity": 50.0,
            "minority_interest": 0.0,
            "cash": 200.0,
            "shares_diluted": 150.0,
        }
    )
    fin = financials(
        [{"company_id": "X", "year": 2026, "is_forecast": True, "ebitda": 300.0, "fcff": 100.0}]
    )
    multiples = [9.0, 9.8, 11.5, 13.2, 14.0]
    peer = peers(
        [
            {
                "peer_id": f"P{i}",
                "name": f"Peer {i}",
                "sector": "S",
                "enterprise_value": m * 100.0,
                "market_cap": m * 80.0,
                "ebitda": 100.0,
                "revenue": 400.0,
                "ebit": 80.0,
                "net_income": 50.0,
            }
            for i, m in enumerate(multiples)
        ]
    )
    return target, fin, peer


def test_comparables_published_case() -> None:
    target, fin, peer = comparables_case()
    valued, detail, _, excluded = value_comparables(target, fin, peer, config=ComparablesConfig())
    row = detail.row(0, named=True)
    assert excluded.height == 0
    assert (row["low"], row["base"], row["high"]) == pytest.approx((9.8, 11.5, 13.2), abs=1e-12)
    assert row["enterprise_value"] == pytest.approx(3450.0, abs=1e-9)
    assert (row["equity_low"], row["equity_base"], row["equity_high"]) == pytest.approx(
        (2590.0, 3100.0, 3610.0), abs=1e-9
    )
    assert (row["per_share_low"], row["per_share_base"], row["per_share_high"]) == pytest.approx(
        (17.27, 20.67, 24.07), abs=CENT
    )
    assert valued["value_per_share"][0] == pytest.approx(20.67, abs=CENT)


def test_comparables_statistics_and_exclusions() -> None:
    target, fin, peer = comparables_case()
    peer = pl.concat(
        [
            peer,
            peers(
                [
                    {
                        "peer_id": "LOSS",
                        "name": "Loss",
                        "sector": "S",
                        "enterprise_value": 500.0,
                        "market_cap": 400.0,
                        "ebitda": -20.0,
                        "revenue": 100.0,
                        "ebit": -30.0,
                        "net_income": -40.0,
                    }
                ]
            ),
        ]
    )
    values = np.array([9.0, 9.8, 11.5, 13.2, 14.0])
    for statistic, expected in [
        ("mean", values.mean()),
        ("harmonic_mean", scipy.stats.hmean(values)),
        ("trimmed_mean", scipy.stats.trim_mean(values, 0.2)),
    ]:
        config = ComparablesConfig(statistic=statistic, trim=0.2)
        _, detail, table, _ = value_comparables(target, fin, peer, config=config)
        assert detail["base"][0] == pytest.approx(expected, rel=1e-12), statistic
    loss = table.filter(pl.col("peer_id") == "LOSS").row(0, named=True)
    assert loss["value"] is None
    assert loss["reason"] == "EV/EBITDA excluded: ebitda is not positive (-20.0)"


def test_comparables_pe_gives_equity_without_bridge_and_target_fallback() -> None:
    target, fin, peer = comparables_case()
    fin = fin.with_columns(pl.lit(40.0).alias("net_income"))
    config = ComparablesConfig(multiples=["pe"], min_peers=3)
    _, detail, _, _ = value_comparables(target, fin, peer, config=config)
    row = detail.row(0, named=True)
    # every peer has P/E 80 m / 50 = 1.6 m; median over [14.4, 15.68, 18.4, 21.12, 22.4]
    assert row["base"] == pytest.approx(18.4)
    assert row["equity_base"] == pytest.approx(18.4 * 40.0)
    assert row["peer_basis"] == "sector"
    few = ComparablesConfig(min_peers=6)
    _, detail, _, excluded = value_comparables(target, fin, peer, config=few)
    assert excluded["reason"][0] == "fewer than 6 valid peers for ev_ebitda in sector S"


def test_liquidation_published_case() -> None:
    # cash 5 at 100 %, receivables 10 at 80 %, inventory 15 at 50 %, machinery 20 at 70 %,
    # land and buildings 30 at 90 %: 5 + 8 + 7.5 + 14 + 27 = 61.5
    items = [
        ("cash", 5.0, 1.0),
        ("receivables", 10.0, 0.8),
        ("inventory", 15.0, 0.5),
        ("machinery", 20.0, 0.7),
        ("real_estate", 30.0, 0.9),
    ]
    rows = [
        {
            "company_id": "X",
            "item": c,
            "side": "asset",
            "asset_class": c,
            "book_value": v,
            "fair_value_adjustment": 0.0,
            "recovery_rate": r,
        }
        for c, v, r in items
    ]
    rows += [
        {
            "company_id": "X",
            "item": "bank loan",
            "side": "liability",
            "book_value": 40.0,
            "fair_value_adjustment": 0.0,
            "priority": "secured",
        },
        {
            "company_id": "X",
            "item": "suppliers",
            "side": "liability",
            "book_value": 30.0,
            "fair_value_adjustment": 0.0,
            "priority": "unsecured",
        },
    ]
    valued, _, waterfall, _ = value_assets(
        companies({"shares_diluted": 10.0}),
        balance_sheet(rows),
        config=AssetConfig(liquidation_cost_rate=0.1),
    )
    steps = dict(zip(waterfall["item"], waterfall["paid"], strict=True))
    assert steps["gross proceeds"] == pytest.approx(61.5)
    assert steps["administrative claims"] == pytest.approx(6.15)
    assert steps["secured claims"] == pytest.approx(40.0)
    assert steps["unsecured claims"] == pytest.approx(61.5 - 6.15 - 40.0)  # paid in part
    assert steps["to equity"] == 0.0
    row = valued.row(0, named=True)
    assert row["adjusted_nav"] == pytest.approx(80.0 - 70.0)
    assert row["liquidation_value"] == 0.0


def test_adjusted_nav_applies_signed_adjustments() -> None:
    rows = [
        {
            "company_id": "X",
            "item": "land",
            "side": "asset",
            "book_value": 100.0,
            "fair_value_adjustment": 25.0,
        },
        {
            "company_id": "X",
            "item": "goodwill",
            "side": "asset",
            "book_value": 40.0,
            "fair_value_adjustment": -40.0,
        },
        {
            "company_id": "X",
            "item": "pension",
            "side": "liability",
            "book_value": 30.0,
            "fair_value_adjustment": 10.0,
            "priority": "unsecured",
        },
    ]
    valued, lines, _, _ = value_assets(companies(), balance_sheet(rows), config=AssetConfig())
    assert valued["adjusted_nav"][0] == pytest.approx(125.0 + 0.0 - 40.0)
    assert lines.filter(pl.col("item") == "land")["recovery_source"][0] == "none given: 0 assumed"


def explicit(flows: list[float], **company: object):
    return companies(company), financials(fcff_rows("X", 2026, flows))


def test_exit_multiple_terminal_value_and_implied_growth() -> None:
    comp, fin = (
        companies({"discount_rate": 0.10}),
        financials([{**row, "ebitda": 50.0} for row in fcff_rows("X", 2026, [20.0, 22.0, 24.0])]),
    )
    detail, _, _ = value_dcf(comp, fin, terminal="exit_multiple", exit_multiple=8.0)
    row = detail.row(0, named=True)
    assert row["terminal_value"] == pytest.approx(400.0)
    assert row["pv_terminal"] == pytest.approx(400.0 / 1.1**3)
    # The implied growth g satisfies 24 (1 + g) / (0.10 - g) = 400.
    g = row["implied_growth"]
    assert 24 * (1 + g) / (0.10 - g) == pytest.approx(400.0, rel=1e-12)
    gordon, _, _ = value_dcf(comp, fin)
    assert gordon["implied_exit_multiple"][0] == pytest.approx(gordon["terminal_value"][0] / 50.0)


def test_date_based_discounting_matches_xnpv() -> None:
    # Valuation date 2026-03-31: 2026 is a stub of 275/365 years, pro-rated; XNPV-style ACT/365.
    comp, fin = explicit([100.0, 110.0, 120.0], discount_rate=0.09, terminal_growth=0.02)
    valuation_date = dt.date(2026, 3, 31)
    detail, flows, _ = value_dcf(comp, fin, valuation_date=valuation_date)
    ends = [dt.date(y, 12, 31) for y in (2026, 2027, 2028)]
    t = np.array([(d - valuation_date).days / 365 for d in ends])
    cash = np.array([100.0 * t[0], 110.0, 120.0])
    pv = (cash / 1.09**t).sum()
    tv = 120.0 * 1.02 / 0.07
    assert flows["stub"].to_list() == pytest.approx([275 / 365, 1.0, 1.0])
    assert detail["pv_explicit"][0] == pytest.approx(pv, rel=1e-12)
    assert detail["pv_terminal"][0] == pytest.approx(tv / 1.09 ** t[-1], rel=1e-12)


def test_date_based_at_year_end_equals_end_of_year_convention_without_leap_days() -> None:
    comp, fin = explicit([100.0, 110.0], discount_rate=0.09)
    by_date, _, _ = value_dcf(comp, fin, valuation_date=dt.date(2025, 12, 31))
    plain, _, _ = value_dcf(comp, fin)
    assert by_date["enterprise_value"][0] == pytest.approx(plain["enterprise_value"][0], rel=1e-12)


def test_mid_year_terminal_value_uses_year_n_factor() -> None:
    comp, fin = explicit([100.0, 100.0, 100.0], discount_rate=0.10, terminal_growth=0.0)
    mid, _, _ = value_dcf(comp, fin, timing="mid_year")
    end, _, _ = value_dcf(comp, fin)
    assert mid["pv_terminal"][0] == pytest.approx(end["pv_terminal"][0], rel=1e-12)
    assert mid["pv_explicit"][0] == pytest.approx(end["pv_explicit"][0] * 1.1**0.5, rel=1e-12)


def test_driver_paths_hand_checked() -> None:
    # Base revenue 100, margin 10 % -> 20 % by year 2, growth 10 % then fading to g = 2 %.
    p = driver_paths(
        base_revenue=np.array([100.0]),
        base_margin=np.array([0.10]),
        near_growth=np.array([0.10]),
        stable_growth=np.array([0.02]),
        target_margin=np.array([0.20]),
        tax_rate=np.array([0.25]),
        sales_to_capital=np.array([2.0]),
        stable_roc=np.array([0.10]),
        years=2,
        high_growth_years=1,
    )
    # year 1: revenue 110, margin 15 %, EBIT 16.5, NOPAT 12.375, reinvestment 5, FCFF 7.375
    # year 2: growth 2 %, revenue 112.2, margin 20 %, EBIT 22.44, NOPAT 16.83, reinv 1.1, FCFF 15.73
    assert p["revenue"][0].tolist() == pytest.approx([110.0, 112.2])
    assert p["fcff"][0].tolist() == pytest.approx([7.375, 15.73])
    # stable: revenue 114.444, EBIT 22.8888, NOPAT 17.1666, reinvestment rate 0.02 / 0.10 = 20 %
    assert p["next_flow"][0] == pytest.approx(112.2 * 1.02 * 0.2 * 0.75 * 0.8)
    # ROC year 2 = NOPAT_2 / capital after year 1 = 16.83 / (50 + 5)
    assert p["roc"][0, 1] == pytest.approx(16.83 / 55.0)


def inputs_for(flows: list[float], n: int = 1, **company: object):
    comp = companies(*[{"company_id": f"C{i}", **company} for i in range(n)])
    rows = [r for i in range(n) for r in fcff_rows(f"C{i}", 2026, flows)]
    inputs, _, _ = explicit_inputs(comp, financials(rows))
    return inputs


def test_sensitivity_centre_equals_base_and_value_falls_with_rate() -> None:
    inputs = inputs_for([100.0, 105.0, 110.0], discount_rate=0.09, terminal_growth=0.02)
    grid = sensitivity_rate_growth(
        inputs, rate_deltas=[-0.01, 0.0, 0.01], growth_deltas=[-0.005, 0.0, 0.005]
    )
    base = per_share_from_ev(enterprise_value_parts(inputs)["enterprise_value"], inputs.companies)
    centre = grid.filter((pl.col("rate_delta") == 0.0) & (pl.col("second_delta") == 0.0))
    assert centre["value_per_share"][0] == pytest.approx(base[0], rel=1e-12)
    by_rate = grid.filter(pl.col("second_delta") == 0.0).sort("rate_delta")["value_per_share"]
    assert (by_rate.diff().drop_nulls() < 0).all()
    assert grid.height == 9
    multiples = sensitivity_rate_multiple(inputs, rate_deltas=[0.0], exit_multiples=[5.0, 10.0])
    assert multiples["second_value"].to_list() == [5.0, 10.0]


def test_grid_point_with_rate_not_above_growth_is_null() -> None:
    inputs = inputs_for([100.0], discount_rate=0.05, terminal_growth=0.04)
    grid = sensitivity_rate_growth(inputs, rate_deltas=[-0.02, 0.0], growth_deltas=[0.0])
    assert grid.sort("rate_delta")["value_per_share"].to_list()[0] is None


def test_scenarios_probability_weighted() -> None:
    inputs = inputs_for([100.0, 100.0], discount_rate=0.10, terminal_growth=0.0)
    scenarios = [
        Scenario(name="bear", probability=0.3, cash_flow_scale=0.5),
        Scenario(name="bull", probability=0.7, cash_flow_scale=1.5),
    ]
    per, summary = scenario_values(inputs, scenarios, terminal="gordon")
    values = dict(zip(per["scenario"], per["value_per_share"], strict=True))
    assert values["bull"] == pytest.approx(3 * values["bear"])
    assert summary["expected_value_per_share"][0] == pytest.approx(
        0.3 * values["bear"] + 0.7 * values["bull"]
    )


def test_monte_carlo_reproducible_counts_rejections_and_matches_numpy_percentiles() -> None:
    inputs = inputs_for([100.0, 100.0], n=3, discount_rate=0.06, terminal_growth=0.04)
    config = MonteCarloConfig(draws=1000, seed=7, sampler="random", cash_flow_scale=None)
    first, draws = monte_carlo(inputs, config, terminal="gordon", keep_draws=["C0"])
    again, _ = monte_carlo(inputs, config, terminal="gordon")
    assert first.equals(again)
    assert first["draws"][0] == 1000
    assert 0 < first["rejected"][0] < 1000  # a 1 % rate shock often closes a 2 % spread
    kept = draws["value_per_share"].to_numpy()
    assert len(kept) == 1000 - first["rejected"][0]
    assert first["p50"][0] == pytest.approx(np.percentile(kept, 50), rel=1e-12)
    assert first["std"][0] == pytest.approx(kept.std(ddof=1), rel=1e-9)
    sobol, _ = monte_carlo(inputs, MonteCarloConfig(draws=1000, seed=7), terminal="gordon")
    assert sobol["draws"][0] == 1024  # rounded up to a power of two


def test_monte_carlo_chunking_does_not_change_results() -> None:
    inputs = inputs_for([100.0, 120.0], n=7, discount_rate=0.09, terminal_growth=0.02)
    config = MonteCarloConfig(draws=256, seed=3)
    whole, _ = monte_carlo(inputs, config, terminal="gordon")
    chunked, _ = monte_carlo(inputs, config, terminal="gordon", chunk_bytes=8 * 256 * 2)
    assert whole.equals(chunked)


def test_reverse_dcf_round_trip() -> None:
    inputs = inputs_for([1.0, 1.0, 1.0, 1.0, 1.0], n=2, discount_rate=0.09, terminal_growth=0.02)
    base = np.array([100.0, 100.0])
    growth = np.array([0.05, 0.12])
    t = np.arange(1, 6)
    flows = base[:, None] * (1 + growth[:, None]) ** t
    pv = (flows / 1.09**t).sum(axis=1) + flows[:, -1] * 1.02 / 0.07 / 1.09**5
    price = pv / 100.0  # 100 shares, no bridge items
    solved, reason = reverse_dcf(inputs, base_flow=base, price=price)
    assert reason.tolist() == [0, 0]
    assert solved == pytest.approx(growth, abs=1e-10)
    _, reason = reverse_dcf(
        inputs, base_flow=np.array([-5.0, 100.0]), price=np.array([10.0, np.nan])
    )
    assert reason.tolist() == [1, 1]


def test_blend_renormalises_over_available_methods() -> None:
    valuations = pl.DataFrame(
        {
            "company_id": ["A", "A", "A"],
            "method": ["dcf", "comparables", "asset"],
            "status": ["valued", "valued", "excluded"],
            "reason": [None, None, "no valid balance-sheet rows"],
            "value_per_share": [10.0, 20.0, None],
            "low": [8.0, 15.0, None],
            "high": [12.0, 25.0, None],
        }
    )
    row = blend_values(valuations, weights={"dcf": 0.5, "comparables": 0.3, "asset": 0.2}).row(
        0, named=True
    )
    assert row["base"] == pytest.approx((0.5 * 10 + 0.3 * 20) / 0.8)
    assert row["low"] == pytest.approx((0.5 * 8 + 0.3 * 15) / 0.8)
    assert row["methods_used"] == "comparables 0.375, dcf 0.625"  # by method name
    assert row["methods_missing"] == "asset: no valid balance-sheet rows"


def test_driver_mode_end_to_end_values_sample() -> None:
    from wfo_kit.config import load_config
    from wfo_kit.pipeline import RunContext, run_pipeline

    config = load_config(
        overrides={
            "valuation": {
                "forecast": "drivers",
                "methods": ["dcf"],
                "drivers": {"target_margin": 0.2},
            }
        }
    )
    ctx = run_pipeline(RunContext(config), ["load", "validate", "value"])
    dcf = ctx["valuations"].filter(pl.col("status") == "valued")
    assert dcf.height == 37  # C038's gap does not matter in driver mode; 3 bad company rows
    assert ctx["driver_forecast"]["t"].max() == DriversConfig().years


def test_wacc_mode_names_the_missing_inputs() -> None:
    from wfo_kit.value import prepare_dcf

    comp = companies(
        {"company_id": "A", "beta": None, "discount_rate": None},
        {"company_id": "B", "beta": 1.0, "share_price": 10.0},
    )
    fin = financials(fcff_rows("A", 2026, [10.0, 11.0]) + fcff_rows("B", 2026, [10.0, 11.0]))
    config = ValuationConfig(rate_source="wacc")
    inputs, _, excluded = prepare_dcf({"companies": comp, "financials": fin}, config)
    assert inputs.companies["company_id"].to_list() == ["B"]
    assert excluded.rows() == [
        ("A", "WACC needs beta, market_cap or share_price (rate_source: wacc)")
    ]


def test_target_peers_win_over_sector_when_there_are_enough() -> None:
    target, fin, peer = comparables_case()
    own = peers(
        [
            {
                "peer_id": f"T{i}",
                "name": f"Own {i}",
                "sector": "Other",
                "target_id": "X",
                "enterprise_value": 2000.0,
                "market_cap": 1500.0,
                "ebitda": 100.0,
                "revenue": 400.0,
                "ebit": 80.0,
                "net_income": 50.0,
            }
            for i in range(3)
        ]
    )
    both = pl.concat(
        [peer.with_columns(pl.lit(None, pl.String).alias("target_id")), own], how="diagonal_relaxed"
    )
    _, detail, _, _ = value_comparables(target, fin, both, config=ComparablesConfig(min_peers=3))
    assert detail.row(0, named=True)["peer_basis"] == "target"
    assert detail.row(0, named=True)["base"] == pytest.approx(20.0)
    _, detail, _, _ = value_comparables(target, fin, both, config=ComparablesConfig(min_peers=4))
    assert detail.row(0, named=True)["peer_basis"] == "sector"  # too few own peers: fall back
    assert detail.row(0, named=True)["base"] == pytest.approx(11.5)


def test_scenario_scale_applies_to_exit_multiple_terminal_value() -> None:
    comp = companies({"discount_rate": 0.1, "exit_multiple": 8.0})
    fin = financials([{**r, "ebitda": 50.0} for r in fcff_rows("X", 2026, [20.0, 22.0])])
    inputs, _, _ = explicit_inputs(comp, fin)
    base = enterprise_value_parts(inputs, terminal="exit_multiple")["enterprise_value"][0]
    half = enterprise_value_parts(inputs, terminal="exit_multiple", flow_scale=0.5)
    assert half["enterprise_value"][0] == pytest.approx(0.5 * base)
