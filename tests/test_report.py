"""The report's building blocks (issue 12 items 1-5): headline, price against value, labels and
units, the company picker's data, one look. Library level; the browser test is in test_e2e."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
import pytest

import wfo_kit as wfo
from wfo_kit import charts
from wfo_kit import display as show
from wfo_kit.config import ReportConfig, load_config
from wfo_kit.pipeline import RunContext
from wfo_kit.summary import currency_units, headline, price_against_value, simulation_note


@pytest.fixture(scope="module")
def ctx(sample_ctx: RunContext) -> RunContext:
    return sample_ctx


@pytest.fixture(scope="module")
def names(ctx: RunContext) -> pl.DataFrame:
    return (
        ctx["input_companies"]
        .unique("company_id", keep="first")
        .select("company_id", "name", "sector", "currency", "share_price")
    )


@pytest.fixture(scope="module")
def prices(ctx: RunContext, names: pl.DataFrame) -> pl.DataFrame:
    return price_against_value(
        ctx["blend"],
        names,
        reverse=ctx["reverse_dcf"],
        flows=ctx["fcff"],
        financials=ctx["financials"],
    )


def test_price_against_value_matches_its_definitions(ctx: RunContext, prices: pl.DataFrame) -> None:
    blended = ctx["blend"].filter(pl.col("base").is_not_null())
    assert prices["company_id"].to_list() == sorted(blended["company_id"].to_list())
    c001 = prices.filter(pl.col("company_id") == "C001").row(0, named=True)
    assert c001["share_price"] == 103.76
    assert c001["upside"] == pytest.approx(c001["base"] / 103.76 - 1, rel=1e-15)
    assert c001["price_to_value"] == pytest.approx(103.76 / c001["base"], rel=1e-15)
    reverse = ctx["reverse_dcf"].filter(pl.col("company_id") == "C001")
    assert c001["implied_fcff_growth"] == reverse["implied_fcff_growth"][0]
    # the forecast's own growth on the reverse DCF's footing: from the last actual FCFF (2025)
    # to the last forecast year's (2030), compounded over those 5 years
    last = ctx["fcff"].filter(pl.col("company_id") == "C001").sort("year")["fcff"][-1]
    expected = (last / reverse["base_fcff"][0]) ** (1 / 5) - 1
    assert c001["forecast_fcff_growth"] == pytest.approx(expected, rel=1e-12)
    # growing the base flow at the forecast's rate reaches the forecast's last flow
    assert reverse["base_fcff"][0] * (1 + c001["forecast_fcff_growth"]) ** 5 == pytest.approx(last)


def test_price_against_value_without_a_price_says_nothing_about_upside() -> None:
    blend = pl.DataFrame(
        {"company_id": ["A", "B"], "low": [8.0, 1.0], "base": [10.0, 2.0], "high": [12.0, 3.0]}
    )
    companies = pl.DataFrame(
        {
            "company_id": ["A", "B"],
            "name": ["a", "b"],
            "currency": ["USD", "USD"],
            "share_price": [None, 0.0],
        }
    )
    out = price_against_value(blend, companies)
    assert out["upside"].to_list() == [None, None]
    assert out["price_to_value"].to_list() == [None, None]
    assert "implied_fcff_growth" in out.columns  # the columns are there, null


def test_headline_counts_units_and_reading(ctx: RunContext, prices: pl.DataFrame) -> None:
    facts = headline(
        prices,
        input_companies=ctx["input_companies"],
        valid_companies=ctx["companies"],
        financials=ctx["financials"],
    )
    shown = dict(facts["facts"])
    assert shown["Companies"].startswith("40 in the input: 38 valued, 0 excluded")
    assert "2 quarantined" in shown["Companies"]  # C012 (duplicate id) and C027 (no shares)
    assert shown["Data as of"] == "actuals to fiscal 2025; forecasts fiscal 2026-2030"
    assert shown["Valuation date"].startswith("not set")
    assert "EUR, USD" in shown["Currency and units"]
    below = prices.filter(pl.col("upside") > 0).height
    assert f", {below} trade below their blended value" in facts["reading"]
    assert "C005 Ironvale Power (+32.4%)" in facts["reading"]  # the largest upside, named
    dated = headline(
        prices,
        input_companies=ctx["input_companies"],
        valid_companies=ctx["companies"],
        valuation_date="2026-06-30",
    )
    assert dict(dated["facts"])["Valuation date"] == "2026-06-30"


def test_currency_and_units_line() -> None:
    assert currency_units(["USD"], "millions") == "USD millions; per share in USD"
    assert currency_units(["EUR"], "thousands") == "EUR thousands; per share in EUR"


def test_sobol_rounding_is_explained_and_the_seed_is_a_seed(ctx: RunContext) -> None:
    note = simulation_note(2000, "sobol", ctx["simulation"])
    assert "random seed 20261126" in note
    assert "asks for 2,000" in note
    assert "rounded up to 2,048" in note
    assert "power of two" in note
    html = show.html_table(ctx["simulation"].head(1))
    assert ">20261126<" in html  # not 20,261,126
    assert ">2,048<" in html  # a count keeps its separator


def test_headers_are_words_with_units() -> None:
    frame = pl.DataFrame(
        {
            "company_id": ["C1"],
            "value_per_share": [1.0],
            "enterprise_value": [2.0],
            "terminal_share": [0.5],
            "asset_per_share": [3.0],
            "upside": [0.1],
        }
    )
    html = show.html_table(frame, currency="USD", units="millions")
    for header in (
        "Company",
        "Value per share (USD)",
        "Enterprise value (USD millions)",
        "Terminal value share of EV (%)",
        "Asset per share (USD)",
        "Upside (+) or downside (-) to blended value (%)",
    ):
        assert f">{header}</th>" in html, header
    assert ">10.00%<" in html  # upside as a percentage
    mixed = show.html_table(frame, currency="", units="thousands")
    assert ">Enterprise value (company currency, thousands)</th>" in mixed


def test_detail_tables_tag_rows_for_the_picker_and_escape_ids() -> None:
    frame = pl.DataFrame({"company_id": ["C1", "<b>x</b>"], "value_per_share": [1.0, 2.0]})
    html = show.html_table(frame, company_column="company_id")
    assert 'data-wfo-company="C1"' in html
    assert "<b>x</b>" not in html
    assert "data-wfo-picked" in html
    picker = show.picker_html([("C1", "C1 One"), ("<b>x</b>", "<b>x</b> Bad")], note="all")
    assert "<b>x</b>" not in picker
    assert 'id="wfo-company-picker"' in picker


def test_report_companies_chooses_the_detailed_companies(ctx: RunContext) -> None:
    """`report.companies` names the companies detailed, in its order; else the first
    `report.detail_limit` (default 40: all 38 of the sample); the report says which."""
    report = ReportConfig(companies=["C038", "C001"])
    assert show.selected_companies(ctx["valuations"], report) == ["C038", "C001"]
    assert show.detail_note(ctx["valuations"], report, ["C038", "C001"]).startswith(
        "Detailed: the 2 companies listed in report.companies"
    )
    default = show.selected_companies(ctx["valuations"], ReportConfig())
    assert len(default) == 38
    assert show.detail_note(ctx["valuations"], ReportConfig(), default) == (
        "Detailed: all 38 valued companies."
    )
    few = show.selected_companies(ctx["valuations"], ReportConfig(detail_limit=3))
    note = show.detail_note(ctx["valuations"], ReportConfig(detail_limit=3), few)
    assert "first 3 of 38" in note
    assert "report.companies" in note
    named_bad = show.detail_note(ctx["valuations"], ReportConfig(companies=["C012"]), ["C012"])
    assert "Not valued, so shown without values: C012" in named_bad
    assert load_config(overrides={"report": {"units": "thousands"}}).report.units == "thousands"


def _figures(ctx: RunContext, names: pl.DataFrame, prices: pl.DataFrame, ids: list[str]) -> list:
    why = charts.reasons_for(ctx["valuations"], "dcf")
    return [
        go.Figure(charts.upside_ranking(prices)),
        go.Figure(charts.football_field(ctx["valuations"], ctx["blend"], names, ids, prices=names)),
        go.Figure(charts.bridge_waterfall(ctx["equity_bridge"], names, ids, reasons=why)),
        go.Figure(charts.sensitivity_heatmap(ctx["sensitivity"], names, ids, reasons=why)),
        go.Figure(
            charts.sensitivity_heatmap(ctx["sensitivity"], names, ids, grid="rate_x_exit_multiple")
        ),
        go.Figure(
            charts.scenario_bars(ctx["scenarios"], ctx["scenario_summary"], names, ids, reasons=why)
        ),
        go.Figure(
            charts.simulation_histogram(
                ctx["simulation_draws"], ctx["simulation"], names, ids, reasons=why
            )
        ),
        go.Figure(charts.liquidation_waterfall(ctx["liquidation_waterfall"], names, ids)),
        go.Figure(charts.value_per_share_bars(ctx["valuations"], names)),
    ]


def _layout_for(fig: Any, index: int) -> dict[str, Any]:
    """The figure's layout as it is once company ``index`` is chosen (its menu's update)."""
    layout = fig.layout.to_plotly_json()
    meta = layout.get("meta") or {}
    if "wfo_layouts" not in meta:
        return layout
    for key, value in meta["wfo_layouts"][index].items():
        node = layout
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return layout


def test_every_chart_titles_its_axes_with_units_for_every_company(
    ctx: RunContext, names: pl.DataFrame, prices: pl.DataFrame
) -> None:
    ids = ["C001", "C004", "C038"]  # USD, EUR, and one the DCF could not value
    figures = _figures(ctx, names, prices, ids)
    for fig in figures:
        meta = fig.layout.meta or {}
        for i, _cid in enumerate(meta.get("wfo_companies", [None])):
            layout = _layout_for(fig, i)
            for axis in ("xaxis", "yaxis"):
                title = layout.get(axis, {}).get("title", {}).get("text")
                assert title, (fig.layout.title.text, axis, i)
        assert fig.layout.template.layout.font.family == charts.FONT  # one template
        assert fig.layout.template.layout.plot_bgcolor == "white"  # no default grey
        for menu in fig.layout.updatemenus or ():
            # top left: clear of the mode bar, which sits at the top right
            assert menu.x == 0.0
            assert menu.xanchor == "left"
    field = figures[1]
    eur = _layout_for(field, 1)
    assert eur["xaxis"]["title"]["text"] == "Value per share (EUR)"  # C004's own currency
    assert _layout_for(field, 0)["xaxis"]["title"]["text"] == "Value per share (USD)"
    price_lines = [t for t in field.data if t.name == "market price"]
    assert [t.x[0] for t in price_lines] == [103.76, 76.02, 38.29]
    bridge = figures[2]
    note = bridge.layout.meta["wfo_layouts"][2]["annotations"][0]["text"]
    assert "No DCF equity bridge" in note
    assert "not contiguous" in note  # C038: says why
    liquidation = figures[7]
    assert _layout_for(liquidation, 0)["yaxis"]["title"]["text"] == "USD millions"


def test_each_method_keeps_its_colour_in_every_chart(ctx: RunContext, names: pl.DataFrame) -> None:
    field = go.Figure(charts.football_field(ctx["valuations"], ctx["blend"], names, ["C001"]))
    bars = field.data[0]
    colours = dict(zip(bars.y, bars.marker.color, strict=True))
    assert colours == {
        "DCF": charts.METHOD_COLORS["dcf"],
        "Comparables": charts.METHOD_COLORS["comparables"],
        "Asset-based": charts.METHOD_COLORS["asset"],
        "Blended": charts.METHOD_COLORS["blend"],
    }
    by_method = go.Figure(charts.value_per_share_bars(ctx["valuations"], names))
    for trace in by_method.data:
        method = next(m for m, label in charts.METHOD_LABELS.items() if label == trace.name)
        assert trace.marker.color == charts.METHOD_COLORS[method]
    assert charts.method_color("real_options") in charts.COLORWAY  # a new method gets one too


def test_value_bars_never_put_two_currencies_on_one_axis(
    ctx: RunContext, names: pl.DataFrame
) -> None:
    fig = go.Figure(charts.value_per_share_bars(ctx["valuations"], names))
    currency = dict(names.select("company_id", "currency").iter_rows())
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["USD", "EUR"]
    for button in buttons:
        shown = [t for t, v in zip(fig.data, button.args[0]["visible"], strict=True) if v]
        assert {currency[c] for t in shown for c in t.x} == {button.label}
        assert button.args[1]["yaxis.title.text"] == f"Value per share ({button.label})"


def test_monte_carlo_chart_carries_bins_not_draws(ctx: RunContext, names: pl.DataFrame) -> None:
    fig = go.Figure(
        charts.simulation_histogram(ctx["simulation_draws"], ctx["simulation"], names, ["C001"])
    )
    bars = fig.data[0]
    draws = ctx["simulation_draws"].filter(pl.col("company_id") == "C001").height
    assert len(bars.x) == 50
    assert sum(bars.y) == draws  # every draw counted once
    assert wfo.simulation_note is simulation_note
