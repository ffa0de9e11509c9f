"""The explorer's library function, without widgets."""

from __future__ import annotations

import polars as pl
import pytest

from wfo_kit.config import load_config
from wfo_kit.explore import Assumptions, revalue
from wfo_kit.pipeline import RunContext, run_pipeline


@pytest.fixture(scope="module")
def ctx() -> RunContext:
    return run_pipeline(RunContext(load_config()), ["load", "validate", "value"])


def test_revalue_at_the_company_own_rates_reproduces_the_pipeline(ctx: RunContext) -> None:
    row = ctx["dcf_detail"].filter(pl.col("company_id") == "C001").row(0, named=True)
    result = revalue(ctx, Assumptions("C001", row["discount_rate"], row["terminal_growth"]))
    assert result["dcf"] == pytest.approx(row["value_per_share"], rel=1e-12)
    blend = ctx["blend"].filter(pl.col("company_id") == "C001").row(0, named=True)
    assert result["blend"]["base"] == pytest.approx(blend["base"], rel=1e-12)


def test_revalue_moves_with_assumptions(ctx: RunContext) -> None:
    row = ctx["dcf_detail"].filter(pl.col("company_id") == "C001").row(0, named=True)
    base = revalue(ctx, Assumptions("C001", row["discount_rate"], row["terminal_growth"]))
    higher_rate = revalue(
        ctx, Assumptions("C001", row["discount_rate"] + 0.01, row["terminal_growth"])
    )
    assert higher_rate["dcf"] < base["dcf"]
    bear = revalue(
        ctx, Assumptions("C001", row["discount_rate"], row["terminal_growth"], scenario="bear")
    )
    assert bear["dcf"] < base["dcf"]
    only_dcf = revalue(
        ctx,
        Assumptions(
            "C001",
            row["discount_rate"],
            row["terminal_growth"],
            weights=(("dcf", 1.0), ("comparables", 0.0), ("asset", 0.0)),
        ),
    )
    assert only_dcf["blend"]["base"] == pytest.approx(base["dcf"])
    assert only_dcf["sensitivity"].height == 121


def test_revalue_says_why_when_rate_is_not_above_growth(ctx: RunContext) -> None:
    result = revalue(ctx, Assumptions("C001", 0.03, 0.03))
    assert result["dcf"] is None
    assert result["reason"] == "discount rate 0.03 must exceed terminal growth 0.03"


def test_scenarios_and_simulation_follow_the_assumptions(ctx: RunContext) -> None:
    row = ctx["dcf_detail"].filter(pl.col("company_id") == "C001").row(0, named=True)
    own = revalue(ctx, Assumptions("C001", row["discount_rate"], row["terminal_growth"]))
    # At the company's own rates they are the pipeline's (same shocks, same seed: exactly).
    pipeline_scenarios = ctx["scenarios"].filter(pl.col("company_id") == "C001")
    assert own["scenarios"].equals(pipeline_scenarios)
    pipeline_simulation = ctx["simulation"].filter(pl.col("company_id") == "C001")
    assert own["simulation"].equals(pipeline_simulation)
    assert own["draws"].height == pipeline_simulation["draws"][0]
    # A higher discount rate lowers every scenario and the simulated mean.
    dearer = revalue(ctx, Assumptions("C001", row["discount_rate"] + 0.01, row["terminal_growth"]))
    lower = dearer["scenarios"]["value_per_share"] < own["scenarios"]["value_per_share"]
    assert lower.all()
    assert dearer["simulation"]["mean"][0] < own["simulation"]["mean"][0]
    # A selected scenario shifts the DCF, not the scenario table built around the sliders.
    bear = revalue(
        ctx, Assumptions("C001", row["discount_rate"], row["terminal_growth"], scenario="bear")
    )
    assert bear["scenarios"].equals(own["scenarios"])


def test_explorer_draws_scenarios_and_the_simulation(ctx: RunContext) -> None:
    from wfo_kit.explore import EXPLORER_DRAWS, Explorer

    explorer = Explorer(ctx)
    assert list(explorer.scenario_bars.data[0].x) == ["bear", "base", "bull"]
    drawn = len(explorer.histogram.data[0].x)
    assert EXPLORER_DRAWS <= drawn < 2 * EXPLORER_DRAWS  # Sobol rounds up to a power of two
    before = list(explorer.scenario_bars.data[0].y)
    explorer.rate.value = explorer.rate.value + 0.01  # a slider move re-draws both
    assert all(a < b for a, b in zip(explorer.scenario_bars.data[0].y, before, strict=True))
