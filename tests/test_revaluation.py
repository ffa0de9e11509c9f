"""Re-valuation under shifted parameters equals a valuation made from scratch with them.

Two classes of defect are covered here:

* shapes: ``enterprise_value_parts`` accepts rate, growth, flow scale and exit multiple per
  company or per (company, draw); every documented combination must equal a loop of one-company,
  one-draw valuations;
* invariance: every sensitivity grid point, scenario, Monte Carlo draw and the DCF low/high equal a
  full re-valuation (forecast rebuilt from the inputs) with those parameters, in both forecast
  modes: in driver mode the forecast itself and its stable-stage flow NOPAT(1+g)(1-g/ROC) move with
  g (and with r when ROC defaults to the discount rate).

Tolerance: relative 1e-9 (the two sides take different but exact routes through float64).
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from tests.builders import companies, fcff_rows, financials
from wfo_kit.config import (
    Distribution,
    DriversConfig,
    MonteCarloConfig,
    RangeConfig,
    Scenario,
    ValuationConfig,
)
from wfo_kit.dcf import DcfInputs, enterprise_value_parts, explicit_inputs, per_share_from_ev
from wfo_kit.risk import monte_carlo, scenario_values, sensitivity_rate_growth, simulation_shocks
from wfo_kit.value import dcf_method, prepare_dcf

REL = 1e-9

# ---------------------------------------------------------------------------------------------
# Shapes (issue 10, item 9)

N, D = 3, 4


def explicit_case() -> DcfInputs:
    comp = companies(
        {"company_id": "A", "discount_rate": 0.08, "terminal_growth": 0.00, "exit_multiple": 7.0},
        {"company_id": "B", "discount_rate": 0.09, "terminal_growth": 0.02, "exit_multiple": 9.0},
        {"company_id": "C", "discount_rate": 0.11, "terminal_growth": 0.04, "exit_multiple": 11.0},
    )
    rows = [
        *fcff_rows("A", 2026, [100.0, 110.0, 120.0], ebitda=150.0),
        *fcff_rows("B", 2026, [50.0, 40.0, 70.0], ebitda=90.0),
        *fcff_rows("C", 2026, [200.0, 210.0, 190.0], ebitda=260.0),
    ]
    inputs, _, _ = explicit_inputs(comp, financials(rows))
    return inputs


def _draws(base: np.ndarray, spread: float, draws: int) -> np.ndarray:
    """(companies x draws): the company's own value plus a per-draw shift, distinct per cell."""
    shifts = np.linspace(-spread, spread, draws)[None, :]
    return base[:, None] + shifts + 1e-4 * np.arange(base.shape[0])[:, None]


def shape_variants(draws: int) -> dict[str, dict[str, object]]:
    inputs = explicit_case()
    rate, growth = inputs.rate, inputs.growth
    multiple = inputs.companies["exit_multiple"].to_numpy()
    return {
        "rate": {
            "none": None,
            "company": rate + 0.005,
            "company_x_draw": _draws(rate, 0.01, draws),
        },
        "growth": {
            "none": None,
            "company": growth - 0.003,
            "company_x_draw": _draws(growth, 0.004, draws),
        },
        "flow_scale": {
            "scalar": 0.9,
            "company": np.array([0.8, 1.0, 1.2]),
            "draw": np.linspace(0.7, 1.3, draws)[None, :],
            "company_x_draw": np.linspace(0.7, 1.3, N * draws).reshape(N, draws),
        },
        "exit_multiple": {
            "none": None,
            "company": multiple + 1.0,
            "company_x_draw": _draws(multiple, 2.0, draws),
        },
    }


def _cell(value: object, i: int, j: int) -> float | None:
    """Company i, draw j of a documented-shape argument, as a scalar (None stays None)."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return float(array)
    if array.ndim == 1:
        return float(array[i])
    return float(array[i if array.shape[0] > 1 else 0, j if array.shape[1] > 1 else 0])


def scalar_loop(inputs: DcfInputs, draws: int, *, terminal: str, **kwargs: object) -> np.ndarray:
    """One valuation per company and draw, each with one-element arrays: the reference."""
    out = np.empty((inputs.companies.height, draws))
    for i in range(inputs.companies.height):
        one = inputs.take(np.arange(inputs.companies.height) == i)
        for j in range(draws):
            args = {k: _cell(v, i, j) for k, v in kwargs.items()}
            out[i, j] = enterprise_value_parts(
                one,
                terminal=terminal,  # type: ignore[arg-type]
                rate=None if args["rate"] is None else np.array([args["rate"]]),
                growth=None if args["growth"] is None else np.array([args["growth"]]),
                exit_multiple=(
                    None if args.get("exit_multiple") is None else np.array([args["exit_multiple"]])
                ),
                flow_scale=args["flow_scale"],  # type: ignore[arg-type]
            )["enterprise_value"][0]
    return out


def _combinations(terminal: str) -> list[tuple[str, str, str, str]]:
    second = "exit_multiple" if terminal == "exit_multiple" else "growth"
    names = shape_variants(D)
    return [
        (terminal, r, s, f)
        for r, s, f in itertools.product(names["rate"], names[second], names["flow_scale"])
    ]


@pytest.mark.parametrize(
    ("terminal", "rate", "second", "scale"),
    _combinations("gordon") + _combinations("exit_multiple"),
)
@pytest.mark.parametrize("draws", [N, D], ids=["square", "wide"])
def test_every_documented_shape_matches_a_loop_of_scalar_valuations(
    terminal: str, rate: str, second: str, scale: str, draws: int
) -> None:
    inputs = explicit_case()
    variants = shape_variants(draws)
    kwargs: dict[str, object] = {
        "rate": variants["rate"][rate],
        "growth": variants["growth"][second] if terminal == "gordon" else None,
        "exit_multiple": variants["exit_multiple"][second] if terminal != "gordon" else None,
        "flow_scale": variants["flow_scale"][scale],
    }
    got = enterprise_value_parts(inputs, terminal=terminal, **kwargs)["enterprise_value"]  # type: ignore[arg-type]
    expected = scalar_loop(inputs, draws, terminal=terminal, **kwargs)
    per_company_only = all(
        np.ndim(v) < 2 for v in kwargs.values() if v is not None
    )  # no draw axis given: one value per company
    if per_company_only:
        assert got.shape == (N,)
        np.testing.assert_allclose(got, expected[:, 0], rtol=REL)
    else:
        np.testing.assert_allclose(np.broadcast_to(got, (N, draws)), expected, rtol=REL)
        assert got.shape[0] == N


def test_issue_case_two_dimensional_rate_with_per_company_growth() -> None:
    """3 companies x 3 draws, growth per company 0 %, 2 %, 4 %: each row uses its own g."""
    inputs = explicit_case()
    rate = np.tile(np.array([[0.08, 0.09, 0.10]]), (3, 1))
    ev = enterprise_value_parts(inputs, rate=rate)["enterprise_value"]
    # company C (row 2) at r 10 %, its own g 4 %: PV of 200, 210, 190 plus 190 x 1.04 / 6 %
    expected = sum(f / 1.10**t for t, f in enumerate([200.0, 210.0, 190.0], 1))
    expected += 190.0 * 1.04 / 0.06 / 1.10**3
    assert ev[2, 2] == pytest.approx(expected, rel=1e-12)


def test_a_wrong_shape_is_refused_with_the_shapes_named() -> None:
    inputs = explicit_case()
    with pytest.raises(ValueError, match="rate"):
        enterprise_value_parts(inputs, rate=np.array([0.1, 0.1]))
    with pytest.raises(ValueError, match="growth"):
        enterprise_value_parts(inputs, growth=np.zeros((2, 5)))


# ---------------------------------------------------------------------------------------------
# Invariance: risk analyses equal full re-valuations (issue 10, item 3)

MODES = {
    "explicit": ValuationConfig(forecast="explicit", methods=["dcf"]),
    "drivers": ValuationConfig(forecast="drivers", methods=["dcf"]),
    "drivers_given_roc": ValuationConfig(
        forecast="drivers",
        methods=["dcf"],
        drivers=DriversConfig(stable_roc=0.14, target_margin=0.18),
    ),
    "drivers_mid_year": ValuationConfig(forecast="drivers", methods=["dcf"], timing="mid_year"),
}


def universe() -> dict[str, pl.DataFrame]:
    """Two companies with actual years (driver mode) and explicit forecasts (explicit mode).

    D1 is the issue's driver company: revenue 1,000, EBIT 150, r 9 %, g 2 %. D2 has a narrow
    spread (r 6 %, g 3 %) so that some grid points reach r <= g.
    """
    comp = companies(
        {"company_id": "D1", "discount_rate": 0.09, "terminal_growth": 0.02},
        {"company_id": "D2", "discount_rate": 0.06, "terminal_growth": 0.03, "debt": 200.0},
    )
    actual = [
        {"company_id": c, "year": 2025, "is_forecast": False, "revenue": rev, "ebit": ebit}
        for c, rev, ebit in (("D1", 1000.0, 150.0), ("D2", 400.0, 40.0))
    ]
    forecast = [
        *fcff_rows("D1", 2026, [90.0, 95.0, 101.0, 104.0]),
        *fcff_rows("D2", 2026, [20.0, 24.0, 27.0, 30.0]),
    ]
    return {"companies": comp, "financials": financials(actual + forecast)}


def full_value(
    valuation: ValuationConfig, company_id: str, *, rate: float, growth: float, scale: float = 1.0
) -> float:
    """Value per share from scratch: the company's row given r and g, forecast rebuilt."""
    valid = universe()
    valid["companies"] = valid["companies"].filter(pl.col("company_id") == company_id)
    valid["companies"] = valid["companies"].with_columns(
        pl.lit(rate).alias("discount_rate"), pl.lit(growth).alias("terminal_growth")
    )
    inputs, _, _ = prepare_dcf(valid, valuation)
    if inputs.companies.height == 0:  # r <= g: excluded, never a number
        return float("nan")
    ev = enterprise_value_parts(inputs, flow_scale=scale)["enterprise_value"]
    return float(per_share_from_ev(ev, inputs.companies)[0])


def assert_same(got: float | None, expected: float, what: str) -> None:
    if np.isnan(expected):
        assert got is None or np.isnan(got), what
    else:
        assert got == pytest.approx(expected, rel=REL), what


@pytest.mark.parametrize("mode", list(MODES))
def test_every_grid_point_equals_a_full_revaluation(mode: str) -> None:
    valuation = MODES[mode]
    inputs, _, _ = prepare_dcf(universe(), valuation)
    grid = sensitivity_rate_growth(
        inputs, rate_deltas=[-0.02, -0.01, 0.0, 0.01], growth_deltas=[-0.01, 0.0, 0.005, 0.01]
    )
    assert grid["value_per_share"].null_count() > 0  # D2 reaches r <= g: null, not a number
    for row in grid.iter_rows(named=True):
        expected = full_value(
            valuation, row["company_id"], rate=row["discount_rate"], growth=row["second_value"]
        )
        assert_same(row["value_per_share"], expected, str(row))


@pytest.mark.parametrize("mode", list(MODES))
def test_every_scenario_equals_a_full_revaluation(mode: str) -> None:
    valuation = MODES[mode]
    inputs, _, _ = prepare_dcf(universe(), valuation)
    scenarios = [
        Scenario(name="bear", probability=0.3, discount_rate_delta=0.01, cash_flow_scale=0.8),
        Scenario(name="base", probability=0.4),
        Scenario(
            name="bull",
            probability=0.3,
            discount_rate_delta=-0.005,
            terminal_growth_delta=0.01,
            cash_flow_scale=1.1,
        ),
    ]
    per_scenario, _ = scenario_values(inputs, scenarios, terminal="gordon")
    for row in per_scenario.iter_rows(named=True):
        expected = full_value(
            valuation,
            row["company_id"],
            rate=row["discount_rate"],
            growth=row["terminal_growth"],
            scale=row["cash_flow_scale"],
        )
        assert_same(row["value_per_share"], expected, str(row))


@pytest.mark.parametrize("mode", list(MODES))
def test_monte_carlo_draws_equal_full_revaluations(mode: str) -> None:
    valuation = MODES[mode]
    inputs, _, _ = prepare_dcf(universe(), valuation)
    config = MonteCarloConfig(
        draws=64,
        seed=11,
        sampler="random",
        discount_rate_shift=Distribution(dist="uniform", params={"loc": -0.005, "scale": 0.01}),
        terminal_growth_shift=Distribution(dist="uniform", params={"loc": -0.004, "scale": 0.008}),
        cash_flow_scale=Distribution(dist="uniform", params={"loc": 0.8, "scale": 0.4}),
    )
    summary, draws = monte_carlo(inputs, config, terminal="gordon", keep_draws=["D1", "D2"])
    assert summary["rejected"].to_list() == [0, 0]  # spreads stay open: draws align with shocks
    shocks = simulation_shocks(config)
    for company_id, rate, growth in zip(
        inputs.companies["company_id"], inputs.rate, inputs.growth, strict=True
    ):
        values = draws.filter(pl.col("company_id") == company_id)["value_per_share"].to_numpy()
        for j in (0, 1, 17, 40, 63):
            expected = full_value(
                valuation,
                company_id,
                rate=rate + shocks["discount_rate_shift"][j],
                growth=growth + shocks["terminal_growth_shift"][j],
                scale=shocks["cash_flow_scale"][j],
            )
            assert values[j] == pytest.approx(expected, rel=REL), (company_id, j)


@pytest.mark.parametrize("mode", list(MODES))
def test_dcf_low_and_high_equal_full_revaluations(mode: str) -> None:
    valuation = MODES[mode].model_copy(
        update={"range": RangeConfig(rate_delta=0.01, growth_delta=0.005)}
    )
    valued = dcf_method(universe(), valuation).valued
    own = universe()["companies"]
    for row in valued.join(own, on="company_id").iter_rows(named=True):
        r, g = row["discount_rate"], row["terminal_growth"]
        low = full_value(valuation, row["company_id"], rate=r + 0.01, growth=g - 0.005)
        high = full_value(valuation, row["company_id"], rate=r - 0.01, growth=g + 0.005)
        assert_same(row["low"], low, f"{mode} {row['company_id']} low")
        assert_same(row["high"], high, f"{mode} {row['company_id']} high")


def test_driver_growth_sensitivity_is_the_full_revaluation_one() -> None:
    """The issue's figure: one point of g moved value +9 % in the grid, +1.5 % from scratch."""
    valuation = MODES["drivers"]
    inputs, _, _ = prepare_dcf(universe(), valuation)
    grid = sensitivity_rate_growth(inputs, rate_deltas=[0.0], growth_deltas=[0.0, 0.01])
    values = grid.filter(pl.col("company_id") == "D1")["value_per_share"].to_list()
    base = full_value(valuation, "D1", rate=0.09, growth=0.02)
    moved = full_value(valuation, "D1", rate=0.09, growth=0.03)
    assert values == pytest.approx([base, moved], rel=REL)
    assert moved / base - 1 < 0.03  # no excess returns: growth adds little value
