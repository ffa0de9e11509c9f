"""The interactive explorer behind notebooks/explore.ipynb.

:func:`revalue` is the pure function: one company re-valued under new assumptions (discount rate,
terminal growth, target margin, cash-flow scale from a scenario, method weights). :class:`Explorer`
wires it to ipywidgets controls and Plotly ``FigureWidget``s that update in place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from wfo_kit.blend import blend_values
from wfo_kit.charts import range_bars
from wfo_kit.config import CacheConfig, ValuationConfig, config_wins
from wfo_kit.dcf import DcfInputs, enterprise_value_parts, per_share_from_ev
from wfo_kit.effects import apply_precedence
from wfo_kit.risk import monte_carlo, scenario_values, sensitivity_rate_growth, value_range
from wfo_kit.trust import plotly_text
from wfo_kit.value import forecast_inputs, prepare_dcf, with_rate_checks


@dataclass(frozen=True)
class Assumptions:
    company_id: str
    discount_rate: float
    terminal_growth: float
    target_margin: float | None = None
    scenario: str | None = None
    weights: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Prepared:
    """What re-valuing one company needs that no slider moves: its row, the other methods as
    the run valued them, and (explicit forecasts) its DCF inputs before any rate is applied
    with the companies the forecast excludes. See :func:`prepare`."""

    company_id: str
    company: pl.DataFrame
    others: pl.DataFrame
    forecast: tuple[DcfInputs, pl.DataFrame] | None


def prepare(ctx: Any, company_id: str) -> Prepared:
    """The slider-independent part of :func:`revalue` for one company (reused while only the
    sliders move: the explorer keeps one per company)."""
    valuation: ValuationConfig = ctx.config.valuation
    company = ctx["companies"].filter(pl.col("company_id") == company_id)
    if company.height == 0:
        msg = f"company {company_id!r} has no valid company row"
        raise KeyError(msg)
    others = (
        ctx["valuations"]
        .filter((pl.col("company_id") == company_id) & (pl.col("method") != "dcf"))
        .select("company_id", "method", "status", "reason", "low", "value_per_share", "high")
    )
    forecast = None
    if valuation.forecast != "drivers":
        # Explicit flows do not depend on the rates: forecast once, apply each rate after.
        inputs, _, excluded = forecast_inputs(
            {"companies": company, "financials": ctx["financials"]},
            _given_rates(valuation, moved=("discount_rate", "terminal_growth")),
        )
        forecast = (inputs, excluded)
    return Prepared(company_id, company, others, forecast)


def _given_rates(valuation: ValuationConfig, *, moved: tuple[str, ...]) -> ValuationConfig:
    """The valuation settings under which the explorer's inputs apply: rates as given (the
    slider's, not a WACC), and the slider's value winning over a configured one that would
    otherwise win over the row (``valuation.precedence``) and leave the slider without effect."""
    wins = [a for a in config_wins(valuation) if a not in moved]
    return valuation.model_copy(update={"rate_source": "given", "precedence": wins or "rows"})


def revalue(
    ctx: Any, assumptions: Assumptions, *, prepared: Prepared | None = None
) -> dict[str, Any]:
    """Re-value one company: DCF under the assumptions, the other methods as run, the blend.

    Returns ``dcf`` (value per share or None with ``reason``), ``methods`` (frame of method,
    low, value_per_share, high), ``blend`` (low/base/high), ``sensitivity`` (the grid around
    the new rate and growth), ``scenarios``, ``simulation`` and ``draws``. ``prepared``
    (:func:`prepare` for the same company) saves the work no assumption changes.
    """
    valuation: ValuationConfig = ctx.config.valuation
    if prepared is None or prepared.company_id != assumptions.company_id:
        prepared = prepare(ctx, assumptions.company_id)
    rate, growth, scale = assumptions.discount_rate, assumptions.terminal_growth, 1.0
    if assumptions.scenario:
        scenario = next(s for s in valuation.scenarios if s.name == assumptions.scenario)
        rate += scenario.discount_rate_delta
        growth += scenario.terminal_growth_delta
        scale = scenario.cash_flow_scale
    margin = (
        {} if assumptions.target_margin is None else {"target_margin": assumptions.target_margin}
    )
    config = _given_rates(valuation, moved=("discount_rate", "terminal_growth", *margin))

    def dcf_inputs(rate: float, growth: float) -> tuple[DcfInputs, pl.DataFrame]:
        moved = {"discount_rate": rate, "terminal_growth": growth}
        if prepared.forecast is not None:
            forecast, excluded = prepared.forecast
            rated = replace(
                forecast,
                companies=forecast.companies.with_columns(
                    pl.lit(v, pl.Float64).alias(k) for k, v in moved.items()
                ),
            )
            inputs, bad = with_rate_checks(rated, config)
            return inputs, pl.concat([excluded, bad])
        # Driver forecasts re-project their flows at the rates and target margin.
        assumed = prepared.company.with_columns(
            pl.lit(v, pl.Float64).alias(k) for k, v in {**moved, **margin}.items()
        )
        inputs, _, excluded = prepare_dcf(
            {"companies": assumed, "financials": ctx["financials"]}, config
        )
        return inputs, excluded

    inputs, excluded = dcf_inputs(rate, growth)
    # Scenarios and the simulation move with the sliders, around the assumptions without the
    # selected scenario's own shifts (which they would otherwise apply twice).
    base_inputs = (
        inputs
        if not assumptions.scenario
        else dcf_inputs(assumptions.discount_rate, assumptions.terminal_growth)[0]
    )
    dcf_value = None
    reason = None
    if inputs.companies.height:
        ev = enterprise_value_parts(inputs, terminal=valuation.terminal, flow_scale=scale)
        dcf_value = float(per_share_from_ev(ev["enterprise_value"], inputs.companies)[0])
        bounds = value_range(
            inputs, deltas=valuation.range, terminal=valuation.terminal, flow_scale=scale
        ).row(0, named=True)
        row = ("valued", None, bounds["low"], dcf_value, bounds["high"])
    else:
        reason = excluded["reason"][0] if excluded.height else "not valued"
        row = ("excluded", reason, None, None, None)
    others = prepared.others
    dcf_row = pl.DataFrame(
        [(assumptions.company_id, "dcf", *row)], schema=others.schema, orient="row"
    )
    methods = pl.concat([dcf_row, others])
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
    scenarios, simulation, draws = _risk(
        base_inputs, valuation, assumptions.company_id, shock_cache=ctx.config.cache
    )
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
    inputs: Any,
    valuation: ValuationConfig,
    company_id: str,
    *,
    shock_cache: CacheConfig | None = None,
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
        inputs,
        config,
        terminal=valuation.terminal,
        keep_draws=[company_id],
        shock_cache=shock_cache,
    )
    return scenarios, simulation, kept


#: What each input box means, in words with its unit (the explorer's labels).
LABELS = {
    "company": "Company",
    "rate": "Discount rate (% a year)",
    "growth": "Terminal growth (% a year)",
    "margin": "Target operating margin (%)",
    "scenario": "Scenario applied to the DCF",
    "weight": "Weight of {} in the blend (0 to 1)",
    "reset": "Back to the report's inputs",
}


def percent_input(shown: float, own: float) -> float:
    """The decimal rate behind a box that shows percent: the company's own value, exactly, while
    the box still shows it (9.74 / 100 is not 0.0974 in binary floating point), else shown/100.

    Examples
    --------
    >>> percent_input(9.74, 0.0974)
    0.0974
    >>> percent_input(10.0, 0.0974)
    0.1
    """
    return own if abs(shown - own * 100.0) < 1e-9 else shown / 100.0


def explorer_companies(ctx: Any) -> list[str]:
    """Every company the run valued by any method (a blended value), in company order."""
    return ctx["blend"].filter(pl.col("base").is_not_null())["company_id"].to_list()


def report_inputs(ctx: Any, company_id: str) -> dict[str, float | None]:
    """The inputs the report used for one company: its DCF's discount rate and terminal growth
    (where the DCF could not value it, the company row's as ``valuation.precedence`` leaves
    them) and its target margin."""
    valuation = ctx.config.valuation
    detail = ctx["dcf_detail"].filter(pl.col("company_id") == company_id)
    row = ctx["companies"].filter(pl.col("company_id") == company_id)
    source = detail if detail.height else apply_precedence(row, valuation=valuation)

    def pick(column: str, fallback: float | None) -> float | None:
        if column in source.columns and source.height and source[column][0] is not None:
            return float(source[column][0])
        return fallback

    return {
        "discount_rate": pick("discount_rate", valuation.discount_rate),
        "terminal_growth": pick("terminal_growth", valuation.terminal_growth),
        "target_margin": pick("target_margin", None),
    }


class Explorer:
    """ipywidgets controls and Plotly FigureWidgets over :func:`revalue`.

    It opens on the report's numbers: entry boxes hold each company's own inputs exactly (arrow
    steps of 0.25 percentage point move from there; any value can be typed), and "Back to the
    report's inputs" restores them.
    """

    def __init__(self, ctx: Any) -> None:
        import ipywidgets as w
        import plotly.graph_objects as go

        from wfo_kit.charts import PRICE_COLOR, TEMPLATE, method_color

        self.ctx = ctx
        self._prepared: Prepared | None = None
        self._method_color = method_color
        valued = explorer_companies(ctx)
        info = ctx["input_companies"].unique("company_id", keep="first")
        self.info = {r["company_id"]: r for r in info.iter_rows(named=True)}
        valuation = ctx.config.valuation
        wide = {"description_width": "initial"}
        layout = w.Layout(width="360px")
        self.company = w.Dropdown(
            options=[(f"{c} {self.info.get(c, {}).get('name') or ''}".strip(), c) for c in valued],
            description=LABELS["company"],
            style=wide,
            layout=w.Layout(width="420px"),
        )

        def box(label: str, low: float, high: float, step: float) -> Any:
            return w.BoundedFloatText(
                min=low, max=high, step=step, description=label, style=wide, layout=layout
            )

        self.rate = box(LABELS["rate"], -50.0, 100.0, 0.25)
        self.growth = box(LABELS["growth"], -50.0, 50.0, 0.25)
        self.margin = box(LABELS["margin"], -100.0, 100.0, 0.5)
        self.margin.disabled = valuation.forecast != "drivers"
        self.scenario = w.Dropdown(
            options=[("none (the report's DCF)", None)]
            + [(s.name, s.name) for s in valuation.scenarios],
            description=LABELS["scenario"],
            style=wide,
            layout=layout,
        )
        self.weights = {
            m: w.BoundedFloatText(
                value=valuation.blend.get(m, 0.0),
                min=0,
                max=1,
                step=0.05,
                description=LABELS["weight"].format(m),
                style=wide,
                layout=layout,
            )
            for m in ("dcf", "comparables", "asset")
        }
        self.reset = w.Button(description=LABELS["reset"], layout=w.Layout(width="240px"))
        self.status = w.HTML()
        self._own: dict[str, float | None] = {}

        def figure(title: str, height: int, **extra: Any) -> Any:
            return go.FigureWidget(
                layout={"title": title, "height": height, "template": TEMPLATE, **extra}
            )

        self.field = figure(
            "Football field: value per share by method, against the market price",
            340,
            barmode="overlay",
            showlegend=False,
            yaxis={"title": {"text": "Method"}},
        )
        self.field.add_bar(
            orientation="h", y=[], x=[], base=[], textposition="outside", hoverinfo="text"
        )
        self.field.add_scatter(
            mode="markers",
            y=[],
            x=[],
            marker={"symbol": "line-ns-open", "size": 18, "color": "black"},
            name="base value",
        )
        self.field.add_scatter(
            mode="lines",
            y=[],
            x=[],
            line={"color": PRICE_COLOR, "dash": "dash", "width": 2},
            name="market price",
        )
        self.heat = figure(
            "Sensitivity: DCF value per share, discount rate x terminal growth",
            400,
            xaxis={"title": {"text": "Terminal growth (% a year)"}},
            yaxis={"title": {"text": "Discount rate (% a year)"}},
        )
        self.heat.add_heatmap(z=[[0]], colorscale="RdYlGn", texttemplate="%{z:,.1f}")
        self.scenario_bars = figure(
            "Scenarios: DCF value per share",
            280,
            showlegend=False,
            xaxis={"title": {"text": "Scenario"}},
        )
        self.scenario_bars.add_bar(x=[], y=[], hoverinfo="text")
        self.histogram = figure(
            f"Monte Carlo ({EXPLORER_DRAWS:,} draws): DCF value per share",
            280,
            showlegend=False,
            yaxis={"title": {"text": "Draws"}},
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
                w.HBox([w.VBox(controls[:5]), w.VBox([*controls[5:], self.reset])]),
                self.status,
                self.field,
                self.heat,
                w.HBox([self.scenario_bars, self.histogram]),
            ]
        )
        self.company.observe(self._company_changed, names="value")
        self._quiet = False
        for control in controls[1:]:
            control.observe(lambda _change: None if self._quiet else self.update(), names="value")
        self.reset.on_click(lambda _button: self.back_to_report())
        self._company_changed(None)

    def _company_changed(self, _change: Any) -> None:
        self.back_to_report()

    def back_to_report(self) -> dict[str, Any]:
        """Put every input back to the report's (this company's own rates, the configured
        weights, no scenario) and re-value."""
        own = report_inputs(self.ctx, self.company.value)
        self._own = own
        valuation = self.ctx.config.valuation
        self._quiet = True  # one update once every box is back, not one per box
        try:
            self.rate.value = (own["discount_rate"] or 0.0) * 100.0
            self.growth.value = (own["terminal_growth"] or 0.0) * 100.0
            self.margin.value = (own["target_margin"] or 0.0) * 100.0
            self.scenario.value = None
            for method, control in self.weights.items():
                control.value = valuation.blend.get(method, 0.0)
        finally:
            self._quiet = False
        return self.update()

    def assumptions(self) -> Assumptions:
        own = self._own
        return Assumptions(
            company_id=self.company.value,
            discount_rate=percent_input(self.rate.value, own.get("discount_rate") or 0.0),
            terminal_growth=percent_input(self.growth.value, own.get("terminal_growth") or 0.0),
            target_margin=self._margin(),
            scenario=self.scenario.value,
            weights=tuple((m, s.value) for m, s in self.weights.items()),
        )

    def _margin(self) -> float | None:
        """The target margin to apply: none while the box is off (explicit forecasts) or still
        shows a company that gives no margin of its own (the configured one then applies)."""
        own = self._own.get("target_margin")
        if self.margin.disabled or (own is None and self.margin.value == 0.0):
            return None
        return percent_input(self.margin.value, own if own is not None else 0.0)

    def prepared(self) -> Prepared:
        """The selected company's slider-independent inputs (:func:`prepare`), kept while the
        company stays selected."""
        company = self.company.value
        if self._prepared is None or self._prepared.company_id != company:
            self._prepared = prepare(self.ctx, company)
        return self._prepared

    def update(self) -> dict[str, Any]:
        result = revalue(self.ctx, self.assumptions(), prepared=self.prepared())
        info = self.info.get(self.company.value, {})
        currency = plotly_text(info.get("currency") or "")
        per_share = f"Value per share ({currency})" if currency else "Value per share"
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
        raw = bars["method"].to_list()
        labels = [plotly_text(m) for m in raw]
        price = info.get("share_price")
        with self.field.batch_update():
            self.field.data[0].y = labels
            self.field.data[0].base = bars["bar_start"].to_list()
            self.field.data[0].x = bars["bar_width"].to_list()
            self.field.data[0].marker.color = [self._method_color(m) for m in raw]
            self.field.data[0].text = bars["note"].fill_null("").to_list()
            self.field.data[0].hovertext = [
                f"{m}: {h}" for m, h in zip(labels, bars["hover"].to_list(), strict=True)
            ]
            self.field.data[1].y = labels
            self.field.data[1].x = bars["value_per_share"].to_list()
            self.field.data[2].y = labels if price else []
            self.field.data[2].x = [price] * len(labels) if price else []
            self.field.layout.xaxis.title.text = per_share
        grid = result["sensitivity"]
        with self.heat.batch_update():
            if grid.height:
                rates = grid["discount_rate"].unique(maintain_order=True).to_list()
                growths = grid["second_value"].unique(maintain_order=True).to_list()
                z = np.array(grid["value_per_share"].fill_null(np.nan).to_list()).reshape(
                    len(rates), len(growths)
                )
                self.heat.data[0].z = z
                self.heat.data[0].x = [f"{g:.2%}" for g in growths]
                self.heat.data[0].y = [f"{r:.2%}" for r in rates]
            else:
                self.heat.data[0].z = [[None]]
                self.heat.data[0].x, self.heat.data[0].y = [""], [""]
            self.heat.data[0].colorbar.title.text = per_share
        scenarios = result["scenarios"]
        with self.scenario_bars.batch_update():
            names = scenarios["scenario"].to_list() if scenarios.height else []
            self.scenario_bars.data[0].x = [plotly_text(n) for n in names]
            self.scenario_bars.data[0].y = (
                scenarios["value_per_share"].to_list() if scenarios.height else []
            )
            self.scenario_bars.layout.yaxis.title.text = per_share
        draws = result["draws"]
        with self.histogram.batch_update():
            self.histogram.data[0].x = (
                draws["value_per_share"].drop_nulls().to_numpy() if draws.height else []
            )
            self.histogram.layout.xaxis.title.text = per_share
        self.status.value = status_text(result, price=price, currency=info.get("currency") or "")
        return result


def status_text(result: dict[str, Any], *, price: float | None, currency: str) -> str:
    """The explorer's one line (escaped HTML): DCF, blended range, market price and upside."""
    import html

    blend = result["blend"]
    unit = f" {currency}" if currency else ""
    dcf = (
        f"DCF {result['dcf']:,.2f}{unit} per share"
        if result["dcf"] is not None
        else f"DCF not available: {result['reason']}"
    )
    parts = [dcf]
    if blend["base"] is not None:
        low = f"{blend['low']:,.2f}" if blend["low"] is not None else "n/a"
        high = f"{blend['high']:,.2f}" if blend["high"] is not None else "n/a"
        parts.append(f"blended {blend['base']:,.2f}{unit} (low {low}, high {high})")
        if price:
            parts.append(f"market price {price:,.2f}{unit}")
            parts.append(f"upside {blend['base'] / price - 1:+.1%}")
    else:
        parts.append("no blended value")
    return "<b>" + html.escape("; ".join(parts)) + "</b>"
