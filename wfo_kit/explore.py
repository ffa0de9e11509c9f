"""The interactive explorer behind notebooks/explore.ipynb.

:func:`revalue` is the pure function: one company re-valued under new assumptions (discount rate,
terminal growth, target margin, cash-flow scale from a scenario, method weights). :class:`Explorer`
wires it to ipywidgets controls and Plotly ``FigureWidget``s that update in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from wfo_kit.blend import blend_values
from wfo_kit.charts import range_bars
from wfo_kit.config import ValuationConfig
from wfo_kit.dcf import enterprise_value_parts, per_share_from_ev
from wfo_kit.risk import monte_carlo, scenario_values, sensitivity_rate_growth, value_range
from wfo_kit.trust import plotly_text
from wfo_kit.value import prepare_dcf


@dataclass(frozen=True)
class Assumptions:
    company_id: str
    discount_rate: float
    terminal_growth: float
    target_margin: float | None = None
    scenario: str | None = None
    weights: tuple[tuple[str, float], ...] = ()


def revalue(ctx: Any, assumptions: Assumptions) -> dict[str, Any]:
    """Re-value one company: DCF under the assumptions, the other methods as run, the blend.

    Returns ``dcf`` (value per share or None with ``reason``), ``methods`` (frame of method,
    low, value_per_share, high), ``blend`` (low/base/high) and ``sensitivity`` (the grid around
    the new rate and growth).
    """
    valuation: ValuationConfig = ctx.config.valuation
    company = ctx["companies"].filter(pl.col("company_id") == assumptions.company_id)
    if company.height == 0:
        msg = f"company {assumptions.company_id!r} has no valid company row"
        raise KeyError(msg)
    overrides: dict[str, Any] = {
        "discount_rate": assumptions.discount_rate,
        "terminal_growth": assumptions.terminal_growth,
    }
    scale = 1.0
    if assumptions.scenario:
        scenario = next(s for s in valuation.scenarios if s.name == assumptions.scenario)
        overrides["discount_rate"] += scenario.discount_rate_delta
        overrides["terminal_growth"] += scenario.terminal_growth_delta
        scale = scenario.cash_flow_scale
    if assumptions.target_margin is not None:
        overrides["target_margin"] = assumptions.target_margin
    config = valuation.model_copy(update={"rate_source": "given"})

    def dcf_inputs(values: dict[str, Any]) -> tuple[Any, pl.DataFrame]:
        assumed = company.with_columns(pl.lit(v, pl.Float64).alias(k) for k, v in values.items())
        inputs, _, excluded = prepare_dcf(
            {"companies": assumed, "financials": ctx["financials"]}, config
        )
        return inputs, excluded

    inputs, excluded = dcf_inputs(overrides)
    # Scenarios and the simulation move with the sliders, around the assumptions without the
    # selected scenario's own shifts (which they would otherwise apply twice).
    unshifted = {
        **overrides,
        "discount_rate": assumptions.discount_rate,
        "terminal_growth": assumptions.terminal_growth,
    }
    base_inputs = inputs if not assumptions.scenario else dcf_inputs(unshifted)[0]
    rows = []
    dcf_value = None
    reason = None
    if inputs.companies.height:
        ev = enterprise_value_parts(inputs, terminal=valuation.terminal, flow_scale=scale)
        dcf_value = float(per_share_from_ev(ev["enterprise_value"], inputs.companies)[0])
        bounds = value_range(
            inputs, deltas=valuation.range, terminal=valuation.terminal, flow_scale=scale
        ).row(0, named=True)
        rows.append(
            {
                "company_id": assumptions.company_id,
                "method": "dcf",
                "status": "valued",
                "reason": None,
                "low": bounds["low"],
                "value_per_share": dcf_value,
                "high": bounds["high"],
            }
        )
    else:
        reason = excluded["reason"][0] if excluded.height else "not valued"
        rows.append(
            {
                "company_id": assumptions.company_id,
                "method": "dcf",
                "status": "excluded",
                "reason": reason,
                "low": None,
                "value_per_share": None,
                "high": None,
            }
        )
    others = (
        ctx["valuations"]
        .filter((pl.col("company_id") == assumptions.company_id) & (pl.col("method") != "dcf"))
        .select("company_id", "method", "status", "reason", "low", "value_per_share", "high")
    )
    methods = pl.concat([pl.DataFrame(rows, schema=others.schema), others])
    # the pipeline's blend: weights renormalised per company there, missing bounds named there
    blend = blend_values(methods, weights=dict(assumptions.weights) or dict(valuation.blend)).row(
        0, named=True
    )
    sensitivity = (
        sensitivity_rate_growth(
            inputs,
            rate_deltas=valuation.sensitivity.rate_deltas,
            growth_deltas=valuation.sensitivity.growth_deltas,
        )
        if inputs.companies.height
        else pl.DataFrame()
    )
    scenarios, simulation, draws = _risk(base_inputs, valuation, assumptions.company_id)
    return {
        "dcf": dcf_value,
        "reason": reason,
        "methods": methods,
        "blend": blend,
        "sensitivity": sensitivity,
        "scenarios": scenarios,
        "simulation": simulation,
        "draws": draws,
    }


#: Monte Carlo draws that follow the explorer's sliders (the report uses monte_carlo.draws).
EXPLORER_DRAWS = 2000


def _risk(
    inputs: Any, valuation: ValuationConfig, company_id: str
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The company's scenarios, and a Monte Carlo of up to :data:`EXPLORER_DRAWS` draws (its
    summary and its draws), under the explorer's assumptions; empty frames where not computed."""
    empty = pl.DataFrame()
    if not inputs.companies.height:
        return empty, empty, empty
    scenarios = (
        scenario_values(inputs, valuation.scenarios, terminal=valuation.terminal)[0]
        if valuation.scenarios
        else empty
    )
    if not valuation.monte_carlo.enabled:
        return scenarios, empty, empty
    draws = min(valuation.monte_carlo.draws, EXPLORER_DRAWS)
    config = valuation.monte_carlo.model_copy(update={"draws": draws})
    simulation, kept = monte_carlo(
        inputs, config, terminal=valuation.terminal, keep_draws=[company_id]
    )
    return scenarios, simulation, kept


class Explorer:
    """ipywidgets controls and Plotly FigureWidgets over :func:`revalue`."""

    def __init__(self, ctx: Any) -> None:
        import ipywidgets as w
        import plotly.graph_objects as go

        self.ctx = ctx
        valued = (
            ctx["valuations"]
            .filter((pl.col("method") == "dcf") & (pl.col("status") == "valued"))["company_id"]
            .to_list()
        )
        names = dict(ctx["companies"].select("company_id", "name").iter_rows())
        valuation = ctx.config.valuation
        self.company = w.Dropdown(
            options=[(f"{c} {names.get(c, '')}", c) for c in valued], description="company"
        )
        self.rate = w.FloatSlider(
            min=0.02, max=0.2, step=0.0025, readout_format=".2%", description="discount r"
        )
        self.growth = w.FloatSlider(
            min=-0.02, max=0.06, step=0.0025, readout_format=".2%", description="terminal g"
        )
        self.margin = w.FloatSlider(
            min=0.0,
            max=0.6,
            step=0.01,
            readout_format=".0%",
            description="margin*",
            disabled=valuation.forecast != "drivers",
        )
        self.scenario = w.Dropdown(
            options=[("none", None)] + [(s.name, s.name) for s in valuation.scenarios],
            description="scenario",
        )
        self.weights = {
            m: w.FloatSlider(
                value=valuation.blend.get(m, 0.0), min=0, max=1, step=0.05, description=f"w {m}"
            )
            for m in ("dcf", "comparables", "asset")
        }
        self.status = w.HTML()
        self.field = go.FigureWidget(
            layout={
                "title": "Football field",
                "height": 320,
                "barmode": "overlay",
                "showlegend": False,
            }
        )
        self.field.add_bar(
            orientation="h", y=[], x=[], base=[], textposition="outside", hoverinfo="text"
        )
        self.field.add_scatter(
            mode="markers",
            y=[],
            x=[],
            marker={"symbol": "line-ns-open", "size": 18, "color": "black"},
        )
        self.heat = go.FigureWidget(layout={"title": "Sensitivity: r x g", "height": 380})
        self.heat.add_heatmap(z=[[0]], colorscale="RdYlGn")
        self.scenario_bars = go.FigureWidget(
            layout={"title": "Scenarios: value per share", "height": 260, "showlegend": False}
        )
        self.scenario_bars.add_bar(x=[], y=[], hoverinfo="text")
        self.histogram = go.FigureWidget(
            layout={
                "title": f"Monte Carlo ({EXPLORER_DRAWS:,} draws): value per share",
                "height": 260,
                "showlegend": False,
                "xaxis": {"title": "value per share"},
                "yaxis": {"title": "draws"},
            }
        )
        self.histogram.add_histogram(x=[], nbinsx=40)
        controls = [
            self.company,
            self.rate,
            self.growth,
            self.margin,
            self.scenario,
            *self.weights.values(),
        ]
        self.widget = w.VBox(
            [
                w.HBox([w.VBox(controls[:5]), w.VBox(controls[5:])]),
                self.status,
                self.field,
                self.heat,
                w.HBox([self.scenario_bars, self.histogram]),
            ]
        )
        self.company.observe(self._company_changed, names="value")
        for control in controls[1:]:
            control.observe(lambda _change: self.update(), names="value")
        self._company_changed(None)

    def _company_changed(self, _change: Any) -> None:
        detail = self.ctx["dcf_detail"].filter(pl.col("company_id") == self.company.value)
        if detail.height:
            with self.rate.hold_trait_notifications(), self.growth.hold_trait_notifications():
                self.rate.value = float(detail["discount_rate"][0])
                self.growth.value = float(detail["terminal_growth"][0])
        self.update()

    def assumptions(self) -> Assumptions:
        return Assumptions(
            company_id=self.company.value,
            discount_rate=self.rate.value,
            terminal_growth=self.growth.value,
            target_margin=None if self.margin.disabled else self.margin.value,
            scenario=self.scenario.value,
            weights=tuple((m, s.value) for m, s in self.weights.items()),
        )

    def update(self) -> dict[str, Any]:
        result = revalue(self.ctx, self.assumptions())
        methods = result["methods"].filter(pl.col("status") == "valued")
        blend = result["blend"]
        bars = range_bars(
            pl.concat(
                [
                    methods.select("method", "low", "value_per_share", "high"),
                    pl.DataFrame(
                        {
                            "method": ["blend"],
                            "low": [blend["low"]],
                            "value_per_share": [blend["base"]],
                            "high": [blend["high"]],
                        },
                        schema=methods.select("method", "low", "value_per_share", "high").schema,
                    ),
                ]
            )
        )
        labels = bars["method"].to_list()
        with self.field.batch_update():
            self.field.data[0].y = labels
            self.field.data[0].base = bars["bar_start"].to_list()
            self.field.data[0].x = bars["bar_width"].to_list()
            self.field.data[0].text = bars["note"].fill_null("").to_list()
            self.field.data[0].hovertext = [
                f"{m}: {h}" for m, h in zip(labels, bars["hover"].to_list(), strict=True)
            ]
            self.field.data[1].y = labels
            self.field.data[1].x = bars["value_per_share"].to_list()
        grid = result["sensitivity"]
        if grid.height:
            rates = grid["discount_rate"].unique(maintain_order=True).to_list()
            growths = grid["second_value"].unique(maintain_order=True).to_list()
            z = np.array(grid["value_per_share"].fill_null(np.nan).to_list()).reshape(
                len(rates), len(growths)
            )
            with self.heat.batch_update():
                self.heat.data[0].z = z
                self.heat.data[0].x = [f"{g:.2%}" for g in growths]
                self.heat.data[0].y = [f"{r:.2%}" for r in rates]
        scenarios = result["scenarios"]
        with self.scenario_bars.batch_update():
            names = scenarios["scenario"].to_list() if scenarios.height else []
            self.scenario_bars.data[0].x = [plotly_text(n) for n in names]
            self.scenario_bars.data[0].y = (
                scenarios["value_per_share"].to_list() if scenarios.height else []
            )
        draws = result["draws"]
        with self.histogram.batch_update():
            self.histogram.data[0].x = (
                draws["value_per_share"].drop_nulls().to_numpy() if draws.height else []
            )
        text = (
            f"DCF {result['dcf']:,.2f} per share"
            if result["dcf"] is not None
            else f"DCF not available: {result['reason']}"
        )
        import html

        self.status.value = html.escape(f"{text}; blended {blend['base'] or float('nan'):,.2f}")
        return result
