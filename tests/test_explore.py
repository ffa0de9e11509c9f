"""The explorer's library function, without widgets."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from wfo_kit.config import load_config
from wfo_kit.explore import Assumptions, percent_input, revalue
from wfo_kit.pipeline import RunContext, run_pipeline


@pytest.fixture(scope="module")
def ctx(sample_ctx: RunContext) -> RunContext:
    return sample_ctx


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


def _valued_at(
    rate: float, growth: float, forecast: str, margin: float | None = None
) -> RunContext:
    """The sample valued with every company at one discount rate and terminal growth (and
    target margin, driver forecasts): the configuration wins over the rows."""
    config = load_config()
    drivers = config.valuation.drivers.model_copy(update={"target_margin": margin})
    valuation = config.valuation.model_copy(
        update={
            "drivers": drivers,
            "forecast": forecast,
            "precedence": "config",
            "rate_source": "given",
            "discount_rate": rate,
            "terminal_growth": growth,
        }
    )
    return run_pipeline(
        RunContext(config.model_copy(update={"valuation": valuation})),
        ["load", "validate", "value"],
    )


@pytest.mark.parametrize("forecast", ["explicit", "drivers"])
def test_revalue_at_new_rates_is_the_pipeline_at_those_rates_where_the_configuration_wins(
    forecast: str,
) -> None:
    """The slider's rate applies even where valuation.precedence makes the configured rate win
    over the row (it used to be replaced by the configured one: the slider did nothing); one
    :func:`prepare` per company serves every rate, through an r <= g exclusion and back."""
    from wfo_kit.explore import prepare

    at_8, at_11 = _valued_at(0.08, 0.02, forecast), _valued_at(0.11, 0.025, forecast)
    expected = at_11["dcf_detail"].select("company_id", "value_per_share")
    assert expected.height >= 20
    bounds = at_11["valuations"].filter(pl.col("method") == "dcf")
    for company_id, value in expected.iter_rows():
        prepared = prepare(at_8, company_id)
        first = revalue(at_8, Assumptions(company_id, 0.11, 0.025), prepared=prepared)
        excluded = revalue(at_8, Assumptions(company_id, 0.02, 0.02), prepared=prepared)
        again = revalue(at_8, Assumptions(company_id, 0.11, 0.025), prepared=prepared)
        assert first["dcf"] == pytest.approx(value, rel=1e-12), company_id
        assert again["dcf"] == first["dcf"]
        assert excluded["dcf"] is None
        assert excluded["reason"] == "discount rate 0.02 must exceed terminal growth 0.02"
        row = bounds.filter(pl.col("company_id") == company_id).row(0, named=True)
        dcf = first["methods"].filter(pl.col("method") == "dcf").row(0, named=True)
        assert (dcf["low"], dcf["high"]) == pytest.approx((row["low"], row["high"]), rel=1e-12)


def test_a_company_the_dcf_excluded_opens_on_the_inputs_the_report_used() -> None:
    """Its boxes hold the row's values as valuation.precedence left them (here the configured
    growth, which wins and is above every rate), so the explorer opens on the report's exclusion
    and reason, not on a value the report never gave."""
    from wfo_kit.explore import explorer_companies, report_inputs

    config = load_config()
    valuation = config.valuation.model_copy(
        update={"precedence": ["terminal_growth"], "terminal_growth": 0.5}
    )
    ctx = run_pipeline(
        RunContext(config.model_copy(update={"valuation": valuation})),
        ["load", "validate", "value"],
    )
    assert ctx["dcf_detail"].height == 0
    reasons = ctx["valuations"].filter(pl.col("method") == "dcf")
    companies = explorer_companies(ctx)[:5]
    assert len(companies) == 5  # valued by the other methods
    for company_id in companies:
        own = report_inputs(ctx, company_id)
        assert own["terminal_growth"] == 0.5
        result = revalue(ctx, Assumptions(company_id, own["discount_rate"], own["terminal_growth"]))
        assert result["dcf"] is None
        expected = reasons.filter(pl.col("company_id") == company_id)["reason"][0]
        assert result["reason"] == expected, company_id


def test_the_margin_box_wins_over_a_configured_margin_and_none_leaves_it() -> None:
    at_30 = _valued_at(0.09, 0.02, "drivers", margin=0.30)
    at_15 = _valued_at(0.09, 0.02, "drivers", margin=0.15)
    for company_id, value in at_15["dcf_detail"].select("company_id", "value_per_share").rows():
        moved = revalue(at_30, Assumptions(company_id, 0.09, 0.02, target_margin=0.15))
        assert moved["dcf"] == pytest.approx(value, rel=1e-12), company_id
        unset = revalue(at_15, Assumptions(company_id, 0.09, 0.02))
        assert unset["dcf"] == pytest.approx(value, rel=1e-12), company_id


def test_a_prepared_company_is_not_used_for_another(ctx: RunContext) -> None:
    from wfo_kit.explore import prepare

    row = ctx["dcf_detail"].filter(pl.col("company_id") == "C002").row(0, named=True)
    result = revalue(
        ctx,
        Assumptions("C002", row["discount_rate"], row["terminal_growth"]),
        prepared=prepare(ctx, "C001"),
    )
    assert result["dcf"] == pytest.approx(row["value_per_share"], rel=1e-12)


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
    explorer.rate.value = (
        explorer.rate.value + 1.0
    )  # one point more (the box is in %) re-draws both
    assert all(a < b for a, b in zip(explorer.scenario_bars.data[0].y, before, strict=True))


@pytest.fixture(scope="module")
def explorer(ctx: RunContext) -> object:
    from wfo_kit.explore import Explorer

    return Explorer(ctx)


def test_explorer_offers_every_valued_company_and_opens_on_the_report_numbers(
    ctx: RunContext, explorer: object
) -> None:
    """Issue 12 item 6: C038 (comparables and assets only) is in the picker, and each company
    opens on exactly the report's blended value and DCF (no snapping of its own inputs)."""
    from wfo_kit.explore import explorer_companies

    blended = ctx["blend"].filter(pl.col("base").is_not_null())
    offered = [value for _label, value in explorer.company.options]  # type: ignore[attr-defined]
    assert offered == blended["company_id"].to_list() == explorer_companies(ctx)
    assert "C038" in offered
    dcf = dict(ctx["dcf_detail"].select("company_id", "value_per_share").iter_rows())
    base = dict(blended.select("company_id", "base").iter_rows())
    for company_id in ("C001", "C004", "C017", "C038"):
        explorer.company.value = company_id  # type: ignore[attr-defined]
        result = explorer.update()  # type: ignore[attr-defined]
        assert result["blend"]["base"] == base[company_id], company_id  # exactly, not approx
        assert result["dcf"] == dcf.get(company_id), company_id
    assert "not contiguous" in explorer.status.value  # type: ignore[attr-defined]  # C038 says why


def test_back_to_the_report_inputs_after_a_change(ctx: RunContext, explorer: object) -> None:
    e: Any = explorer
    e.company.value = "C001"
    report = e.update()["blend"]["base"]
    e.rate.value = e.rate.value + 0.25  # one step: a quarter of a percentage point
    e.weights["asset"].value = 0.0
    moved = e.update()["blend"]["base"]
    assert moved != report
    assert e.back_to_report()["blend"]["base"] == report
    assert e.rate.value == pytest.approx(9.74)  # the box shows percent, holds C001's own 0.0974


def test_explorer_labels_are_words_with_units_and_axes_are_titled(explorer: object) -> None:
    e: Any = explorer
    e.company.value = "C004"  # a EUR company
    e.update()
    labels = [e.rate, e.growth, e.margin, e.scenario, *e.weights.values()]
    for control in labels:
        assert "*" not in control.description
        assert control.style.description_width == "initial"  # never cut to "w compar..."
    assert e.rate.description == "Discount rate (% a year)"
    assert e.weights["comparables"].description == "Weight of comparables in the blend (0 to 1)"
    for fig in (e.field, e.heat, e.scenario_bars, e.histogram):
        assert fig.layout.xaxis.title.text, fig.layout.title.text
        assert fig.layout.yaxis.title.text or fig.data[0].type == "heatmap"
    assert e.field.layout.xaxis.title.text == "Value per share (EUR)"
    price = e.field.data[2]
    assert price.name == "market price"
    assert set(price.x) == {76.02}  # C004's market price, drawn as a line across the methods
    assert "market price 76.02 EUR" in e.status.value
    assert "upside -41.1%" in e.status.value


def test_percent_boxes_keep_the_company_own_rate_exactly() -> None:
    assert 8.22 / 100 != 0.0822  # why the box cannot just divide by 100 (a sample company's)
    assert percent_input(8.22, 0.0822) == 0.0822
    assert percent_input(0.0822 * 100, 0.0822) == 0.0822
    assert percent_input(8.5, 0.0822) == 0.085


def test_driver_forecasts_open_on_the_report_numbers_too() -> None:
    """Under driver forecasts the inputs the explorer opens on (each company's own rates and
    target margin, as its percent boxes hold them) give exactly the report's values."""
    from wfo_kit.explore import report_inputs

    fast = {"monte_carlo": {"enabled": False}, "sensitivity": {"enabled": False}}
    config = load_config(overrides={"valuation": {"forecast": "drivers", **fast}})
    ctx = run_pipeline(RunContext(config), ["load", "validate", "value"])
    base = dict(ctx["blend"].select("company_id", "base").iter_rows())
    for company_id in ("C001", "C004"):
        own = report_inputs(ctx, company_id)
        assert own["target_margin"] is not None
        shown = {k: percent_input(v * 100.0, v) for k, v in own.items() if v is not None}
        assumed = Assumptions(
            company_id,
            shown["discount_rate"],
            shown["terminal_growth"],
            target_margin=shown["target_margin"],
        )
        assert revalue(ctx, assumed)["blend"]["base"] == base[company_id], company_id
        more = Assumptions(
            company_id,
            shown["discount_rate"],
            shown["terminal_growth"],
            target_margin=shown["target_margin"] + 0.01,
        )
        assert revalue(ctx, more)["blend"]["base"] > base[company_id]
