"""Monte Carlo speed tricks never change a number: threads, chunk sizes and the fused path.

The simulation runs chunks of companies on worker threads and, for fixed flows on whole years,
folds the terminal value into Horner's rule. These tests hold it to the bit across thread counts
and chunk sizes (rejected draws, kept draws and every statistic included), and hold the fused
path to the general one (``enterprise_value_parts``) and to NumPy's own statistics.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wfo_kit.config import MonteCarloConfig
from wfo_kit.dcf import DcfInputs, Timing, enterprise_value_parts, per_share_from_ev
from wfo_kit.risk import _fusable, default_threads, monte_carlo, simulation_shocks

DRAWS = 500


def portfolio(n: int = 23, years: int = 6, *, timing: Timing = "end_of_year") -> DcfInputs:
    """Companies with bridge items, an exit multiple, and spreads r - g from wide to closed."""
    rng = np.random.default_rng(42)
    flows = rng.normal(100.0, 30.0, (n, years))
    rate = rng.uniform(0.06, 0.12, n)
    growth = rng.uniform(0.0, 0.03, n)
    growth[::5] = rate[::5] - 0.004  # every fifth company: a shock often closes its spread
    companies = pl.DataFrame(
        {
            "company_id": [f"C{i}" for i in range(n)],
            "discount_rate": rate,
            "terminal_growth": growth,
            "shares_diluted": rng.uniform(10.0, 100.0, n),
            "exit_multiple": rng.uniform(5.0, 12.0, n),
            **{
                c: rng.uniform(0.0, 50.0, n)
                for c in ("debt", "cash", "preferred_equity", "minority_interest")
            },
            "non_operating_assets": np.zeros(n),
        }
    )
    return DcfInputs(
        companies=companies,
        flows=flows,
        times=np.broadcast_to(np.arange(1.0, years + 1), (n, years)).copy(),
        terminal_time=np.full(n, float(years)),
        last_flow=flows[:, -1].copy(),
        last_ebitda=rng.uniform(50.0, 200.0, n),
        regular=True,
        timing=timing,
    )


CONFIG = MonteCarloConfig(draws=DRAWS, seed=9, sampler="random")


@pytest.mark.parametrize("terminal", ["gordon", "exit_multiple"])
@pytest.mark.parametrize("timing", ["end_of_year", "mid_year"])
def test_threads_and_chunk_sizes_give_the_same_bits(terminal: str, timing: Timing) -> None:
    inputs = portfolio(timing=timing)
    keep = ["C0", "C7", "C22"]
    reference = monte_carlo(inputs, CONFIG, terminal=terminal, threads=1, keep_draws=keep)
    if terminal == "gordon":
        assert reference[0]["rejected"].sum() > 0  # rejected draws are part of what must match
        assert (reference[0]["rejected"] == 0).sum() > 0
    for threads in (2, 3):
        for rows in (1, 2, 5, 23):
            other = monte_carlo(
                inputs,
                CONFIG,
                terminal=terminal,
                threads=threads,
                chunk_bytes=8 * DRAWS * rows,
                keep_draws=keep,
            )
            assert_frame_equal(other[0], reference[0], check_exact=True)
            assert_frame_equal(other[1], reference[1], check_exact=True)


@pytest.mark.parametrize("terminal", ["gordon", "exit_multiple"])
@pytest.mark.parametrize("timing", ["end_of_year", "mid_year"])
def test_fused_path_equals_the_general_valuation(terminal: str, timing: Timing) -> None:
    fused = portfolio(timing=timing)
    # explicit year times: the same valuation, but not the fused path's case
    half = 0.5 if timing == "mid_year" else 0.0
    general = replace(fused, regular=False, times=fused.times - half)
    assert _fusable(fused)
    assert not _fusable(general)
    ids = fused.companies["company_id"].to_list()
    ours, draws = monte_carlo(fused, CONFIG, terminal=terminal, keep_draws=ids)
    theirs, their_draws = monte_carlo(general, CONFIG, terminal=terminal, keep_draws=ids)
    assert ours["rejected"].to_list() == theirs["rejected"].to_list()
    assert_frame_equal(ours, theirs, check_exact=False, rel_tol=1e-12, abs_tol=0.0)
    assert_frame_equal(draws, their_draws, check_exact=False, rel_tol=1e-12, abs_tol=0.0)
    # each kept draw is a full re-valuation at that draw's shocks
    shocks = simulation_shocks(CONFIG)
    j = np.arange(DRAWS)
    ev = enterprise_value_parts(
        fused,
        rate=fused.rate[:, None] + shocks["discount_rate_shift"][None, j],
        growth=fused.growth[:, None] + shocks["terminal_growth_shift"][None, j],
        terminal=terminal,
        flow_scale=shocks["cash_flow_scale"][None, j],
    )["enterprise_value"]
    expected = per_share_from_ev(ev, fused.companies)
    for i, company_id in enumerate(ids):
        row = expected[i][np.isfinite(expected[i])]
        got = draws.filter(pl.col("company_id") == company_id)["value_per_share"].to_numpy()
        np.testing.assert_allclose(got, row, rtol=1e-12)
        summary = ours.row(i, named=True)
        assert summary["rejected"] == DRAWS - row.size
        assert summary["mean"] == pytest.approx(row.mean(), rel=1e-12)
        assert summary["std"] == pytest.approx(row.std(ddof=1), rel=1e-10)
        for p in (5, 25, 50, 75, 95):
            assert summary[f"p{p}"] == pytest.approx(np.percentile(row, p), rel=1e-12)


def test_every_draw_rejected_gives_nulls_and_an_error_is_raised_from_a_thread() -> None:
    inputs = portfolio(n=4)
    closed = inputs.companies.with_columns(terminal_growth=pl.col("discount_rate") + 0.5)
    summary, _ = monte_carlo(
        replace(inputs, companies=closed), CONFIG, terminal="gordon", threads=2, chunk_bytes=1
    )
    assert summary["rejected"].to_list() == [DRAWS] * 4
    assert summary.select(pl.col("mean", "std", "p5", "p95").null_count()).row(0) == (4,) * 4
    assert 1 <= default_threads() <= 4
    broken = inputs.companies.drop("exit_multiple")
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        monte_carlo(replace(inputs, companies=broken), CONFIG, terminal="exit_multiple")


@pytest.mark.parametrize("mode", ["drivers", "drivers_mid_year"])
def test_driver_forecasts_give_the_same_bits_on_threads(mode: str) -> None:
    """The general path (a forecast re-projected per draw) on one company per chunk."""
    from tests.test_revaluation import MODES, universe
    from wfo_kit.value import prepare_dcf

    inputs, _, _ = prepare_dcf(universe(), MODES[mode])
    assert not _fusable(inputs)
    assert inputs.companies.height >= 2
    one = monte_carlo(inputs, CONFIG, terminal="gordon", threads=1, keep_draws=["D2"])
    for threads in (2, 3):
        other = monte_carlo(
            inputs, CONFIG, terminal="gordon", threads=threads, chunk_bytes=1, keep_draws=["D2"]
        )
        assert_frame_equal(other[0], one[0], check_exact=True)
        assert_frame_equal(other[1], one[1], check_exact=True)


def test_shocks_of_one_configuration_are_drawn_once_and_read_only() -> None:
    # The explorer draws the same 2,000 shocks on every slider move: they are kept, so nobody
    # may change them in place; another seed draws others; a large set is never kept.
    config = MonteCarloConfig(draws=2000, seed=7)
    first, again = (
        simulation_shocks(config),
        simulation_shocks(MonteCarloConfig(draws=2000, seed=7)),
    )
    assert all(first[k] is again[k] for k in first)  # drawn once
    scale = first["cash_flow_scale"]
    again["cash_flow_scale"] = scale * 2  # a caller's own dict: the kept shocks are unchanged
    again.pop("discount_rate_shift")
    assert simulation_shocks(config).keys() == first.keys()
    assert simulation_shocks(config)["cash_flow_scale"] is scale
    for values in first.values():
        assert not values.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            values[0] = 0.0
    other = simulation_shocks(MonteCarloConfig(draws=2000, seed=8))
    assert not np.array_equal(other["discount_rate_shift"], first["discount_rate_shift"])
    large = MonteCarloConfig(draws=200_000, seed=7)
    assert (
        simulation_shocks(large)["cash_flow_scale"]
        is not simulation_shocks(large)["cash_flow_scale"]
    )


def test_shocks_kept_in_the_step_cache_are_the_drawn_ones_to_the_bit(tmp_path) -> None:
    from wfo_kit import cache, risk
    from wfo_kit.config import CacheConfig

    settings = CacheConfig(dir=str(tmp_path / "steps"))
    config = MonteCarloConfig(draws=1000, seed=11)
    risk._KEPT.clear()  # another test of this worker may have drawn them
    cache.clear_memory()
    drawn = risk._shocks(config)
    assert not risk.shocks_stored(config, settings)
    stored = simulation_shocks(config, cache=settings)
    assert risk.shocks_stored(config, settings)
    assert not risk.shocks_stored(MonteCarloConfig(draws=1000, seed=12), settings)
    assert not risk.shocks_stored(config, settings.model_copy(update={"enabled": False}))
    (entry,) = (tmp_path / "steps").iterdir()
    risk._KEPT.clear()  # as a new process: neither level in memory
    cache.clear_memory()
    found = simulation_shocks(config, cache=settings)
    for name, values in drawn.items():
        np.testing.assert_array_equal(stored[name], values, strict=True)
        np.testing.assert_array_equal(found[name], values, strict=True)
        assert not found[name].flags.writeable
    # An entry that is not whole is a miss, removed, and the shocks are drawn again.
    for file in entry.glob("*.arrow"):
        file.write_bytes(file.read_bytes()[:-7])
    risk._KEPT.clear()
    cache.clear_memory()
    redrawn = simulation_shocks(config, cache=settings)
    np.testing.assert_array_equal(redrawn["cash_flow_scale"], drawn["cash_flow_scale"])
    # Without the cache (--no-cache) nothing is written.
    off = CacheConfig(dir=str(tmp_path / "off"), enabled=False)
    simulation_shocks(MonteCarloConfig(draws=1000, seed=12), cache=off)
    assert not (tmp_path / "off").exists()


def test_a_run_whose_shocks_are_stored_never_imports_scipy(tmp_path) -> None:
    # The point of storing them: a kernel that valued once before starts without scipy.stats.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from wfo_kit.config import load_config\n"
        "from wfo_kit.pipeline import RunContext, run_pipeline\n"
        "ctx = run_pipeline(RunContext(load_config()), ['load', 'validate', 'value'])\n"
        "assert ctx['simulation'].height > 0\n"
        "print('scipy' in sys.modules)\n"
    )
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert runs == ["True", "False"]


def test_a_failing_chunk_stops_the_other_threads() -> None:
    import time

    from wfo_kit.risk import _each_chunk

    done: list[int] = []

    def work(start: int, _buffers: np.ndarray) -> None:
        if start == 0:
            msg = "chunk 0 failed"
            raise ValueError(msg)
        time.sleep(0.001)
        done.append(start)

    with pytest.raises(ValueError, match="chunk 0 failed"):
        _each_chunk(range(1000), work, buffers=lambda: np.empty(1), threads=2)
    assert len(done) < 100  # without the stop: all 999 other chunks ran first
