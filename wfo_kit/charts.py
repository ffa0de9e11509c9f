"""Plotly figures for the report. Pure: frames in, a figure out; no display, no I/O.

Plotly is NOT an HTML escaper: plotly.js renders ``<a href>`` (a live link), ``<b>``, ``<i>``,
``<br>`` and ``<span style>`` in titles, axis and tick labels, hover text, legend entries and
dropdown labels. So every string that comes from data or parameters (company ids, names,
currencies, methods, scenario names, line items) goes through :func:`_text` (one helper,
:func:`wfo_kit.trust.plotly_text`) before it reaches a figure; only the fixed templates written
here keep their markup (``<br>``, ``<extra>``).
Figures meant for several companies carry a dropdown (Plotly's own ``updatemenus``), so switching
works in the shared HTML without a kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from wfo_kit.frames import format_text
from wfo_kit.trust import plotly_text as _text
from wfo_kit.trust import plotly_texts as _texts

_LAYOUT = {"margin": {"t": 60, "b": 40, "l": 60, "r": 20}}
METHOD_LABELS = {
    "dcf": "DCF",
    "comparables": "Comparables",
    "asset": "Asset-based",
    "blend": "Blended",
}


def _label(companies: pl.DataFrame, company_id: str) -> str:
    """The dropdown label of one company: its id and name, escaped for Plotly."""
    row = companies.filter(pl.col("company_id") == company_id)
    return _text(f"{company_id} {row['name'][0]}" if row.height else company_id)


def _method(method: str) -> str:
    return _text(METHOD_LABELS.get(method, method))


def _dropdown(labels: list[str], traces_per_item: int) -> list[dict[str, Any]]:
    """A Plotly dropdown showing one item's traces at a time."""
    total = len(labels) * traces_per_item
    buttons = []
    for i, label in enumerate(labels):
        visible = [False] * total
        visible[i * traces_per_item : (i + 1) * traces_per_item] = [True] * traces_per_item
        buttons.append({"label": label, "method": "update", "args": [{"visible": visible}]})
    return [
        {
            "buttons": buttons,
            "direction": "down",
            "x": 1.0,
            "xanchor": "right",
            "y": 1.15,
            "showactive": True,
        }
    ]


def value_per_share_bars(valuations: pl.DataFrame, companies: pl.DataFrame) -> Any:
    """Bar chart of value per share by company and method (valued rows only)."""
    import plotly.graph_objects as go

    data = (
        valuations.filter(pl.col("status") == "valued")
        .join(companies.select("company_id", "name", "currency"), on="company_id", how="left")
        .sort("company_id")
    )
    fig = go.Figure()
    for method in data["method"].unique(maintain_order=True):
        part = data.filter(pl.col("method") == method)
        fig.add_bar(
            x=_texts(part["company_id"]),
            y=part["value_per_share"].to_list(),
            name=_method(method),
            customdata=list(zip(_texts(part["name"]), _texts(part["currency"]), strict=True)),
            hovertemplate="%{x} %{customdata[0]}<br>%{y:,.2f} %{customdata[1]} per share"
            "<extra>%{fullData.name}</extra>",
        )
    fig.update_layout(
        title="Value per share by company and method",
        xaxis_title="company",
        yaxis_title="value per share (company currency)",
        barmode="group",
        height=420,
        **_LAYOUT,
    )
    return fig


def range_bars(rows: pl.DataFrame) -> pl.DataFrame:
    """Football-field geometry for rows with ``low``, ``value_per_share`` and ``high``.

    Adds ``bar_start`` and ``bar_width`` (a bar from low to high) and ``note``. A bound that could
    not be computed is not drawn: the bar stops at the base on that side (no whisker), and
    ``note`` says which bound is missing; both missing: no bar. ``hover`` describes the row.

    Examples
    --------
    >>> import polars as pl
    >>> rows = pl.DataFrame({"low": [8.0, 8.0], "value_per_share": [10.0, 10.0],
    ...                      "high": [12.0, None]})
    >>> range_bars(rows).select("bar_start", "bar_width", "note").rows()
    [(8.0, 4.0, None), (8.0, 2.0, 'high could not be computed')]
    """
    low, base, high = (
        pl.col(c).cast(pl.Float64).fill_nan(None) for c in ("low", "value_per_share", "high")
    )
    start, end = pl.coalesce(low, base), pl.coalesce(high, base)

    def shown(value: pl.Expr) -> pl.Expr:
        return value.round(2).cast(pl.String).fill_null("could not be computed")

    return rows.with_columns(
        start.alias("bar_start"),
        pl.when(low.is_null() & high.is_null())
        .then(None)
        .otherwise(end - start)
        .alias("bar_width"),
        pl.when(low.is_null() & high.is_null())
        .then(pl.lit("low and high could not be computed"))
        .when(high.is_null())
        .then(pl.lit("high could not be computed"))
        .when(low.is_null())
        .then(pl.lit("low could not be computed"))
        .alias("note"),
        format_text("low {}, base {}, high {}", shown(low), shown(base), shown(high)).alias(
            "hover"
        ),
    )


def football_field(
    valuations: pl.DataFrame, blend: pl.DataFrame, companies: pl.DataFrame, company_ids: list[str]
) -> Any:
    """Low-high bars per method plus the blend, one company at a time (dropdown).

    A bound that could not be computed is not drawn as if it were the base: the bar stops at the
    base on that side and its label says which bound is missing (:func:`range_bars`).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = []
    blend_rows = blend.rename({"base": "value_per_share"}).with_columns(
        pl.lit("blend").alias("method"), pl.lit("valued").alias("status")
    )
    rows = pl.concat(
        [
            valuations.select("company_id", "method", "status", "low", "value_per_share", "high"),
            blend_rows.select("company_id", "method", "status", "low", "value_per_share", "high"),
        ],
        how="vertical_relaxed",
    ).filter(pl.col("status") == "valued")
    rows = range_bars(rows)
    for i, company_id in enumerate(company_ids):
        part = rows.filter(pl.col("company_id") == company_id)
        methods = [_method(m) for m in part["method"].to_list()]
        fig.add_bar(
            y=methods,
            x=part["bar_width"].to_list(),
            base=part["bar_start"].to_list(),
            orientation="h",
            name="range",
            visible=i == 0,
            text=part["note"].fill_null("").to_list(),
            textposition="outside",
            hovertext=[
                f"{method}: {hover}"
                for method, hover in zip(methods, part["hover"].to_list(), strict=True)
            ],
            hoverinfo="text",
        )
        fig.add_scatter(
            y=methods,
            x=part["value_per_share"].to_list(),
            mode="markers",
            marker={"symbol": "line-ns-open", "size": 18, "color": "black"},
            name="base",
            visible=i == 0,
            hovertemplate="%{y} base: %{x:,.2f}<extra></extra>",
        )
        labels.append(_label(companies, company_id))
    fig.update_layout(
        title="Football field: value per share by method",
        showlegend=False,
        xaxis_title="value per share",
        height=360,
        updatemenus=_dropdown(labels, 2) if len(labels) > 1 else None,
        **_LAYOUT,
    )
    return fig


def bridge_waterfall(bridge: pl.DataFrame, company_id: str, *, title: str | None = None) -> Any:
    """Waterfall from enterprise value to equity value for one company."""
    import plotly.graph_objects as go

    rows = bridge.filter(pl.col("company_id") == company_id).sort("step")
    labels = [_text(item.replace("_", " ")) for item in rows["item"].to_list()]
    measures = ["absolute", *(["relative"] * (rows.height - 2)), "total"]
    fig = go.Figure(
        go.Waterfall(
            x=labels,
            y=rows["amount"].to_list(),
            measure=measures,
            hovertemplate="%{x}: %{y:,.1f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=_text(title or f"Equity bridge: {company_id}"),
        yaxis_title="money (input units)",
        height=380,
        **_LAYOUT,
    )
    return fig


def sensitivity_heatmap(
    sensitivity: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    grid: str = "rate_x_growth",
) -> Any:
    """Value per share over discount rate x terminal growth (or exit multiple), dropdown."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = []
    data = sensitivity.filter(pl.col("grid") == grid)
    for company_id in company_ids:
        part = data.filter(pl.col("company_id") == company_id).sort("discount_rate", "second_value")
        if part.height == 0:
            continue
        rates = part["discount_rate"].unique(maintain_order=True).to_list()
        seconds = part["second_value"].unique(maintain_order=True).to_list()
        z = np.array(part["value_per_share"].fill_null(np.nan).to_list()).reshape(
            len(rates), len(seconds)
        )
        fig.add_heatmap(
            x=[f"{s:.2%}" if grid == "rate_x_growth" else f"{s:.1f}x" for s in seconds],
            y=[f"{r:.2%}" for r in rates],
            z=z,
            colorscale="RdYlGn",
            visible=not labels,
            hovertemplate="r %{y}, second %{x}: %{z:,.2f}<extra></extra>",
            texttemplate="%{z:,.1f}",
        )
        labels.append(_label(companies, company_id))
    second = "terminal growth" if grid == "rate_x_growth" else "exit EV/EBITDA multiple"
    fig.update_layout(
        title=f"Sensitivity: value per share, discount rate x {second}",
        xaxis_title=second,
        yaxis_title="discount rate",
        height=460,
        updatemenus=_dropdown(labels, 1) if len(labels) > 1 else None,
        **_LAYOUT,
    )
    return fig


def scenario_bars(
    scenarios: pl.DataFrame, summary: pl.DataFrame, companies: pl.DataFrame, company_ids: list[str]
) -> Any:
    """Value per share per scenario and the probability-weighted value, dropdown by company."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = []
    for i, company_id in enumerate(company_ids):
        part = scenarios.filter(pl.col("company_id") == company_id)
        expected = summary.filter(pl.col("company_id") == company_id)
        names = [*_texts(part["scenario"]), "probability-weighted"]
        values = [
            *part["value_per_share"].to_list(),
            expected["expected_value_per_share"][0] if expected.height else None,
        ]
        text = [f"p={p:.0%}" for p in part["probability"].to_list()] + [""]
        fig.add_bar(
            x=names,
            y=values,
            text=text,
            visible=i == 0,
            hovertemplate="%{x}: %{y:,.2f}<extra></extra>",
        )
        labels.append(_label(companies, company_id))
    fig.update_layout(
        title="Scenarios: value per share",
        yaxis_title="value per share",
        height=380,
        updatemenus=_dropdown(labels, 1) if len(labels) > 1 else None,
        **_LAYOUT,
    )
    return fig


def simulation_histogram(
    draws: pl.DataFrame, summary: pl.DataFrame, companies: pl.DataFrame, company_ids: list[str]
) -> Any:
    """Distribution of simulated value per share with P5/P50/P95 markers, dropdown."""
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = []
    shown = [c for c in company_ids if draws.filter(pl.col("company_id") == c).height]
    for i, company_id in enumerate(shown):
        # a NumPy array: plotly validates a Python list element by element (slow at 1e4 draws)
        values = draws.filter(pl.col("company_id") == company_id)["value_per_share"].to_numpy()
        stats = summary.filter(pl.col("company_id") == company_id).row(0, named=True)
        fig.add_histogram(
            x=values,
            nbinsx=60,
            visible=i == 0,
            name="draws",
            hovertemplate="%{x}: %{y} draws<extra></extra>",
        )
        lines = [stats["p5"], stats["p50"], stats["p95"]]
        fig.add_scatter(
            x=lines,
            y=[0, 0, 0],
            mode="markers+text",
            text=["P5", "P50", "P95"],
            textposition="top center",
            marker={"size": 12, "color": "black"},
            visible=i == 0,
            name="percentiles",
        )
        labels.append(_label(companies, company_id))
    fig.update_layout(
        title="Monte Carlo: value per share",
        xaxis_title="value per share",
        yaxis_title="draws",
        height=380,
        showlegend=False,
        updatemenus=_dropdown(labels, 2) if len(labels) > 1 else None,
        **_LAYOUT,
    )
    return fig


def liquidation_waterfall(waterfall: pl.DataFrame, company_id: str) -> Any:
    """Gross proceeds down to what is left for equity, one company."""
    import plotly.graph_objects as go

    rows = waterfall.filter(pl.col("company_id") == company_id).sort("step")
    items = _texts(rows["item"])
    amounts = [rows["paid"][0], *[-p for p in rows["paid"].to_list()[1:-1]], rows["paid"][-1]]
    measures = ["absolute", *(["relative"] * (len(items) - 2)), "total"]
    fig = go.Figure(
        go.Waterfall(
            x=items, y=amounts, measure=measures, hovertemplate="%{x}: %{y:,.1f}<extra></extra>"
        )
    )
    fig.update_layout(title=_text(f"Liquidation waterfall: {company_id}"), height=360, **_LAYOUT)
    return fig
