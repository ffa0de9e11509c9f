"""Monte Carlo and sensitivity grids: throughput and peak memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import polars as pl

from benchmarks.common import figure, median_seconds
from wfo_kit.config import MonteCarloConfig
from wfo_kit.dcf import DcfInputs
from wfo_kit.risk import monte_carlo, sensitivity_rate_growth


def inputs(n: int, years: int = 10, seed: int = 1) -> DcfInputs:
    rng = np.random.default_rng(seed)
    flows = np.asfortranarray(rng.normal(100.0, 20.0, (n, years)))
    companies = pl.DataFrame(
        {
            "company_id": [f"C{i}" for i in range(n)],
            "discount_rate": rng.uniform(0.07, 0.12, n),
            "terminal_growth": rng.uniform(0.0, 0.03, n),
            "shares_diluted": rng.uniform(10.0, 100.0, n),
            **{
                c: np.zeros(n)
                for c in (
                    "debt",
                    "cash",
                    "preferred_equity",
                    "minority_interest",
                    "non_operating_assets",
                )
            },
        }
    )
    return DcfInputs(
        companies=companies,
        flows=flows,
        times=np.zeros_like(flows),
        terminal_time=np.full(n, float(years)),
        last_flow=flows[:, -1],
        last_ebitda=np.full(n, np.nan),
        regular=True,
        timing="end_of_year",
    )


def baseline_full_arrays(data: DcfInputs, draws: int, seed: int) -> np.ndarray:
    """Naive Monte Carlo: every company x draw array at once, then np.percentile."""
    rng = np.random.default_rng(seed)
    dr = rng.normal(0.0, 0.01, draws)
    dg = rng.uniform(-0.005, 0.005, draws)
    scale = rng.normal(1.0, 0.1, draws)
    rate = data.rate[:, None] + dr[None, :]
    growth = data.growth[:, None] + dg[None, :]
    v = 1.0 / (1.0 + rate)
    acc = np.zeros_like(rate)
    for t in range(data.flows.shape[1] - 1, -1, -1):
        acc = (acc + data.flows[:, t][:, None]) * v
    tv = data.last_flow[:, None] * (1.0 + growth) / (rate - growth)
    value = (acc + np.where(rate > growth, tv, np.nan) * v ** data.flows.shape[1]) * scale
    value /= data.companies["shares_diluted"].to_numpy()[:, None]
    return np.nanpercentile(value, [5, 25, 50, 75, 95], axis=1)


def peak_bytes(fn) -> int:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def run(companies: int = 1000, draws: int = 10_000, grid_companies: int = 10_000) -> list[dict]:
    data = inputs(companies)
    config = MonteCarloConfig(draws=draws, sampler="random", seed=5)
    ours = median_seconds(lambda: monte_carlo(data, config, terminal="gordon"), repeats=5)
    base = median_seconds(lambda: baseline_full_arrays(data, draws, 5), repeats=3)
    ours_peak = peak_bytes(lambda: monte_carlo(data, config, terminal="gordon"))
    base_peak = peak_bytes(lambda: baseline_full_arrays(data, draws, 5))
    sobol = MonteCarloConfig(draws=8192, sampler="sobol", seed=5)
    sobol_time = median_seconds(lambda: monte_carlo(data, sobol, terminal="gordon"), repeats=5)
    plain_8192 = MonteCarloConfig(draws=8192, sampler="random", seed=5)
    plain_time = median_seconds(lambda: monte_carlo(data, plain_8192, terminal="gordon"), repeats=5)

    grid_data = inputs(grid_companies)
    deltas_r = [round(-0.02 + 0.004 * i, 4) for i in range(11)]
    deltas_g = [round(-0.01 + 0.002 * i, 4) for i in range(11)]
    grid = median_seconds(
        lambda: sensitivity_rate_growth(grid_data, rate_deltas=deltas_r, growth_deltas=deltas_g),
        repeats=5,
    )
    single = median_seconds(
        lambda: sensitivity_rate_growth(grid_data, rate_deltas=[0.0], growth_deltas=[0.0]),
        repeats=5,
    )
    company_draws = companies * draws
    return [
        figure(
            "monte_carlo_throughput",
            value=company_draws / ours,
            unit="company-draws/s",
            baseline="numpy_full_arrays_nanpercentile",
            baseline_value=company_draws / base,
            n=company_draws,
            params={"companies": companies, "draws": draws, "goal": ">= 2e7 company-draws/s"},
        ),
        figure(
            "monte_carlo_peak_memory",
            value=ours_peak / 2**20,
            unit="MiB",
            baseline="numpy_full_arrays_nanpercentile",
            baseline_value=base_peak / 2**20,
            n=company_draws,
            params={"goal": "< 500 MiB", "measured_with": "tracemalloc"},
            higher_is_better=False,
        ),
        figure(
            "monte_carlo_sobol_cost",
            value=sobol_time,
            unit="s",
            baseline="pseudo_random_same_draws",
            baseline_value=plain_time,
            n=companies * 8192,
            params={"draws": 8192},
            higher_is_better=False,
        ),
        figure(
            "sensitivity_grid_11x11",
            value=grid,
            unit="s",
            baseline="one_grid_point",
            baseline_value=single,
            n=grid_companies * 121,
            params={"companies": grid_companies, "goal": "< 1 s"},
            higher_is_better=False,
        ),
    ]
