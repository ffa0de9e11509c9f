"""Plotly figures for the report. Pure: frames in, a figure out; no display, no I/O.

Plotly is NOT an HTML escaper: plotly.js renders ``<a href>`` (a live link), ``<b>``, ``<i>``,
``<br>`` and ``<span style>`` in titles, axis and tick labels, hover text, legend entries and
dropdown labels. So every string that comes from data or parameters (company ids, names,
currencies, methods, scenario names, line items) goes through :func:`_text` (one helper,
:func:`wfo_kit.trust.plotly_text`) before it reaches a figure; only the fixed templates written
here keep their markup (``<br>``, ``<extra>``).

One look (:data:`TEMPLATE`): one font, white background, light grid, one colour per method
(:data:`METHOD_COLORS`) in every chart. Figures about one company at a time carry every detailed
company: a dropdown (Plotly's own ``updatemenus``, top left, clear of the mode bar at the top
right) switches between them without a kernel (in JupyterLab), and ``layout.meta`` lists the ids,
each one's traces and layout, so that the report's shared company picker (wfo_kit.display)
drives every chart at once (the HTML report then leaves the per-chart dropdowns out). A company
a chart has nothing for stays in its dropdown and shows why.
Every axis has a title with its unit; a money axis is always one company's, in its currency.

Each function returns the figure as plain data, ``{"data": [traces], "layout": {...}}``, the
JSON plotly.js draws: building ``plotly.graph_objects`` figures (every property validated, copied
on each update) cost ~1 s of a 2.4 s report for 38 companies, measured. ``go.Figure(spec)``
turns one into a Plotly figure (validated) for anyone who wants that API; the tests do, so a
property plotly.js would not understand fails them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from wfo_kit.frames import format_text
from wfo_kit.trust import plotly_text as _text
from wfo_kit.trust import plotly_texts as _texts

FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Arial, sans-serif"
#: One colour per method, the same in every chart (new methods fall back to the colour cycle).
METHOD_COLORS = {
    "dcf": "#1f5fa8",
    "comparables": "#e08a1e",
    "asset": "#3a9a5b",
    "blend": "#6b3fa0",
}
PRICE_COLOR = "#c62828"
COLORWAY = ["#1f5fa8", "#e08a1e", "#3a9a5b", "#6b3fa0", "#8c564b", "#17becf", "#7f7f7f"]
UP_COLOR, DOWN_COLOR = "#2e7d32", "#c62828"
_AXIS = {
    "gridcolor": "#e6e6e6",
    "linecolor": "#888888",
    "zerolinecolor": "#bbbbbb",
    "ticks": "outside",
    "tickcolor": "#888888",
    "automargin": True,
    "zerolinewidth": 2,
    "title": {"standoff": 8},
}
#: ColorBrewer's red-yellow-green (Plotly's "RdYlGn", which plotly.js does not know by name).
RED_YELLOW_GREEN = [
    [0.0, "rgb(165,0,38)"],
    [0.1, "rgb(215,48,39)"],
    [0.2, "rgb(244,109,67)"],
    [0.3, "rgb(253,174,97)"],
    [0.4, "rgb(254,224,139)"],
    [0.5, "rgb(255,255,191)"],
    [0.6, "rgb(217,239,139)"],
    [0.7, "rgb(166,217,106)"],
    [0.8, "rgb(102,189,99)"],
    [0.9, "rgb(26,152,80)"],
    [1.0, "rgb(0,104,55)"],
]
#: The project's Plotly template: a small dict (Plotly's default template is ~7 KB per chart).
TEMPLATE: dict[str, Any] = {
    "layout": {
        "font": {"family": FONT, "size": 13, "color": "#222222"},
        "title": {"font": {"size": 16}, "x": 0.01, "xanchor": "left"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": COLORWAY,
        "xaxis": _AXIS,
        "yaxis": _AXIS,
        "hoverlabel": {"font": {"family": FONT}, "align": "left"},
        "legend": {"orientation": "h", "y": -0.2},
        # category labels that look like numbers ("2026", a numeric company id) stay categories
        "autotypenumbers": "strict",
        "hovermode": "closest",
    },
    "data": {
        "bar": [{"marker": {"line": {"color": "white", "width": 0.5}}}],
        "heatmap": [{"colorbar": {"outlinewidth": 0, "ticks": ""}}],
    },
}
# room above the plot for the title and, below it, the company dropdown (top left)
_LAYOUT = {"template": TEMPLATE, "margin": {"t": 96, "b": 50, "l": 70, "r": 30}}
METHOD_LABELS = {
    "dcf": "DCF",
    "comparables": "Comparables",
    "asset": "Asset-based",
    "blend": "Blended",
}


def _method(method: str) -> str:
    return _text(METHOD_LABELS.get(method, method.replace("_", " ").capitalize()))


def _num(values: Any, digits: int = 4) -> list[float | None]:
    """Numbers as the page carries them: 4 decimals (a chart shows 2; full floats cost ~2x)."""
    return [None if v is None or v != v else round(float(v), digits) for v in values]


def method_color(method: str) -> str:
    """The method's colour in every chart; an unknown method gets one from the colour cycle."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return COLORWAY[sum(map(ord, method)) % len(COLORWAY)]


def per_share_title(currency: str) -> str:
    """Axis title of a per-share amount in one currency (escaped already)."""
    return f"Value per share ({currency})" if currency else "Value per share (company currency)"


def money_title(currency: str, units: str) -> str:
    """Axis title of an amount of money: ``USD millions`` (escaped already)."""
    unit = _text(units)
    return f"{currency} {unit}".strip() if currency else f"company currency, {unit}"


def reasons_for(valuations: pl.DataFrame, method: str) -> dict[str, str]:
    """Why each company a method did not value was excluded (for the charts' notes)."""
    rows = valuations.filter((pl.col("method") == method) & (pl.col("status") != "valued"))
    return dict(rows.select("company_id", pl.col("reason").fill_null("not valued")).iter_rows())


def _missing(text: str, company_id: str, reasons: dict[str, str] | None) -> dict[str, Any]:
    """The note for a company the chart has nothing for: ``text``, and the reason if known."""
    why = (reasons or {}).get(company_id)
    return _note(f"{text}<br>{_text(why)}" if why else text)


def _note(text: str) -> dict[str, Any]:
    """The annotation a chart shows for a company it has nothing to draw for."""
    return {
        "text": text,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "showarrow": False,
        "font": {"size": 14, "color": "#555555"},
    }


def _figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    """A figure as plotly.js takes it, in the project's template and margins."""
    return {"data": traces, "layout": {**_LAYOUT, "margin": dict(_LAYOUT["margin"]), **layout}}


def _axis_titles(x: str | None = None, y: str | None = None) -> dict[str, Any]:
    titles: dict[str, Any] = {}
    if x is not None:
        titles["xaxis"] = {"title": {"text": x}}
    if y is not None:
        titles["yaxis"] = {"title": {"text": y}}
    return titles


def _apply(layout: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply a plotly.js relayout update (keys may be paths such as ``yaxis.title.text``)."""
    for key, value in update.items():
        *parents, last = key.split(".")
        node = layout
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value


def _labels(companies: pl.DataFrame) -> dict[str, str]:
    """Each company's dropdown label: its id and name, escaped for Plotly."""
    rows = companies.select("company_id", "name").unique("company_id", keep="first")
    return {c: _text(f"{c} {n}") for c, n in rows.iter_rows()}


def _currencies(companies: pl.DataFrame) -> dict[str, str]:
    """Each company's currency as charts show it (escaped); absent when unknown."""
    if "currency" not in companies.columns:
        return {}
    rows = companies.select("company_id", "currency").unique("company_id", keep="first")
    return {c: _text(cur) for c, cur in rows.iter_rows() if cur}


def _by_company(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The frame's rows per company, split once (not one filter per company)."""
    if frame.height == 0:
        return {}
    return {key[0]: part for key, part in frame.partition_by("company_id", as_dict=True).items()}


def company_menu(
    fig: dict[str, Any],
    companies: pl.DataFrame,
    items: list[tuple[str, int, dict[str, Any]]],
) -> dict[str, Any]:
    """Make ``fig`` show one company at a time.

    ``items`` is one ``(company_id, traces, layout)`` per company in order: its number of traces
    (in ``fig["data"]`` in that order; 0 for a company the chart has nothing for) and the layout
    it needs (axis titles in its currency, or an annotation saying why there is nothing), as a
    plotly.js relayout update. The first company is shown; a dropdown at the top left switches,
    and ``layout.meta.wfo_companies`` lets the report's shared picker do the same.
    """
    layout = fig["layout"]
    if not items:
        layout["annotations"] = [_note("No company to show")]
        return fig
    labels = _labels(companies)
    total = sum(n for _, n, _ in items)
    buttons, start, ranges, layouts = [], 0, [], []
    for company_id, n, update in items:
        visible = [False] * total
        visible[start : start + n] = [True] * n
        ranges.append([start, n])
        start += n
        update = {"annotations": [], **update}
        layouts.append(update)
        buttons.append(
            {
                "label": labels.get(company_id, _text(company_id)),
                "method": "update",
                "args": [{"visible": visible}, update],
            }
        )
    for trace, shown in zip(fig["data"], buttons[0]["args"][0]["visible"], strict=True):
        trace["visible"] = shown
    _apply(layout, buttons[0]["args"][1])
    # what the report's shared picker needs without the dropdown: each company's traces
    # (first index, count) and layout (wfo_kit.display.PICKER_SCRIPT)
    layout["meta"] = {
        "wfo_companies": [_text(c) for c, _, _ in items],
        "wfo_traces": ranges,
        "wfo_layouts": layouts,
    }
    layout["updatemenus"] = [
        {
            "buttons": buttons,
            "direction": "down",
            "x": 0.0,
            "xanchor": "left",
            "y": 1.02,
            "yanchor": "bottom",
            "showactive": True,
            "active": 0,
            "bgcolor": "white",
            "bordercolor": "#888888",
        }
    ]
    return fig


def value_per_share_bars(valuations: pl.DataFrame, companies: pl.DataFrame) -> dict[str, Any]:
    """Bar chart of value per share by company and method (valued rows only), one currency at a
    time: companies in different currencies never share a money axis (a dropdown per currency)."""
    data = (
        valuations.filter(pl.col("status") == "valued")
        .join(companies.select("company_id", "name", "currency"), on="company_id", how="left")
        .with_columns(pl.col("currency").fill_null(""))
        .sort("company_id")
    )
    traces: list[dict[str, Any]] = []
    currencies = data["currency"].unique(maintain_order=True).to_list()
    buttons = []
    for k, currency in enumerate(currencies):
        part_c = data.filter(pl.col("currency") == currency)
        methods = part_c["method"].unique(maintain_order=True).to_list()
        start = len(traces)
        for method in methods:
            part = part_c.filter(pl.col("method") == method)
            traces.append(
                {
                    "type": "bar",
                    "x": _texts(part["company_id"]),
                    "y": part["value_per_share"].to_list(),
                    "name": _method(method),
                    "marker": {"color": method_color(method)},
                    "visible": k == 0,
                    "customdata": list(
                        zip(_texts(part["name"]), _texts(part["currency"]), strict=True)
                    ),
                    "hovertemplate": "%{x} %{customdata[0]}<br>%{y:,.2f} %{customdata[1]} "
                    "per share<extra>%{fullData.name}</extra>",
                }
            )
        buttons.append((currency, start, len(methods)))
    menu = [
        {
            "label": _text(c or "currency not given"),
            "method": "update",
            "args": [
                {"visible": [start <= i < start + n for i in range(len(traces))]},
                {"yaxis.title.text": per_share_title(_text(c))},
            ],
        }
        for c, start, n in buttons
    ]
    layout: dict[str, Any] = {
        "title": {"text": "Value per share by company and method"},
        **_axis_titles("Company", per_share_title(_text(currencies[0]) if currencies else "")),
        "barmode": "group",
        "height": 420,
    }
    if len(menu) > 1:
        layout["updatemenus"] = [
            {"buttons": menu, "x": 0.0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"}
        ]
    return _figure(traces, layout)


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
    valuations: pl.DataFrame,
    blend: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    prices: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Low-high bars per method plus the blend, and the market price as a line; one company at a
    time (dropdown, or the report's shared picker).

    A bound that could not be computed is not drawn as if it were the base: the bar stops at the
    base on that side and its label says which bound is missing (:func:`range_bars`). ``prices``
    (``company_id``, ``share_price``) draws the market price per share as a vertical line.
    """
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
    by_company = _by_company(range_bars(rows))
    price_of = (
        dict(prices.select("company_id", "share_price").iter_rows()) if prices is not None else {}
    )
    currency_of = _currencies(companies)
    traces: list[dict[str, Any]] = []
    items = []
    for company_id in company_ids:
        part = by_company.get(company_id)
        currency = currency_of.get(company_id, "")
        layout = {"xaxis.title.text": per_share_title(currency)}
        if part is None:
            items.append(
                (company_id, 0, {**layout, "annotations": [_note("No method valued this company")]})
            )
            continue
        raw = part["method"].to_list()
        methods = [_method(m) for m in raw]
        traces.append(
            {
                "type": "bar",
                "y": methods,
                "x": _num(part["bar_width"]),
                "base": _num(part["bar_start"]),
                "orientation": "h",
                "name": "range (low to high)",
                "marker": {"color": [method_color(m) for m in raw]},
                "text": part["note"].fill_null("").to_list(),
                "textposition": "outside",
                "hovertext": [
                    f"{method}: {hover}"
                    for method, hover in zip(methods, part["hover"].to_list(), strict=True)
                ],
                "hoverinfo": "text",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "y": methods,
                "x": _num(part["value_per_share"]),
                "mode": "markers",
                "marker": {"symbol": "line-ns-open", "size": 18, "color": "black"},
                "name": "base value",
                "hovertemplate": "%{y} base: %{x:,.2f}<extra></extra>",
            }
        )
        n = 2
        price = price_of.get(company_id)
        if price is not None and price == price:
            traces.append(
                {
                    "type": "scatter",
                    "y": methods,
                    "x": [round(price, 4)] * len(methods),
                    "mode": "lines+text",
                    "line": {"color": PRICE_COLOR, "dash": "dash", "width": 2},
                    "text": [f"market price {price:,.2f}"] + [""] * (len(methods) - 1),
                    "textposition": "top right",
                    "textfont": {"color": PRICE_COLOR},
                    "name": "market price",
                    "hovertemplate": f"market price: %{{x:,.2f}} {currency}<extra></extra>",
                }
            )
            n += 1
        items.append((company_id, n, layout))
    fig = _figure(
        traces,
        {
            "title": {
                "text": "Football field: value per share by method, against the market price"
            },
            "showlegend": False,
            **_axis_titles(y="Method"),
            "height": 380,
        },
    )
    return company_menu(fig, companies, items)


def upside_ranking(summary: pl.DataFrame) -> dict[str, Any]:
    """Every company with a market price, ranked by upside of its blended value over the price,
    with the blended low-high range as a bar (all in %, so companies in any currency share it).

    ``summary`` is :func:`wfo_kit.summary.price_against_value`.
    """
    data = summary.filter(pl.col("upside").is_not_null()).sort("upside")
    price = pl.col("share_price")
    data = data.with_columns(
        ((pl.col("low") / price - 1) * 100).alias("up_low"),
        ((pl.col("high") / price - 1) * 100).alias("up_high"),
        (pl.col("upside") * 100).alias("up_base"),
    )
    labels = [
        _text(f"{c} {n or ''}".strip())
        for c, n in zip(data["company_id"], data["name"], strict=True)
    ]
    low = data["up_low"].fill_null(data["up_base"])
    high = data["up_high"].fill_null(data["up_base"])
    traces = [
        {
            "type": "bar",
            "y": labels,
            "x": _num(high - low),
            "base": _num(low),
            "orientation": "h",
            "name": "blended range (low to high)",
            "marker": {
                "color": [
                    "rgba(46,125,50,0.35)" if u >= 0 else "rgba(198,40,40,0.35)"
                    for u in data["up_base"]
                ]
            },
            "hoverinfo": "skip",
        },
        {
            "type": "scatter",
            "y": labels,
            "x": _num(data["up_base"]),
            "mode": "markers",
            "marker": {
                "color": [UP_COLOR if u >= 0 else DOWN_COLOR for u in data["up_base"]],
                "size": 9,
            },
            "name": "blended value",
            "customdata": list(
                zip(
                    data["share_price"].to_list(),
                    data["base"].to_list(),
                    _texts(data["currency"]),
                    strict=True,
                )
            ),
            "hovertemplate": "%{y}: %{x:+.1f}%<br>price %{customdata[0]:,.2f}, value "
            "%{customdata[1]:,.2f} %{customdata[2]}<extra></extra>",
        },
    ]
    zero_line = {
        "type": "line",
        "x0": 0,
        "x1": 0,
        "xref": "x",
        "y0": 0,
        "y1": 1,
        "yref": "y domain",
        "line": {"color": "#444444", "width": 1},
    }
    return _figure(
        traces,
        {
            "title": {"text": "Upside (or downside) of blended value against market price"},
            **_axis_titles("Blended value vs market price (%, low to high)", "Company"),
            "shapes": [zero_line],
            "height": max(320, 22 * len(labels) + 140),
            "showlegend": False,
        },
    )


def _company_waterfalls(
    frame: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    bars: Callable[[pl.DataFrame], tuple[list[str], list[float]]],
    missing: str,
    total_color: str,
    title: str,
    xaxis_title: str,
    units: str,
    reasons: dict[str, str] | None,
) -> dict[str, Any]:
    """One waterfall per company (first bar absolute, last a total), picked by the company menu;
    ``bars`` turns a company's rows (sorted by ``step``) into labels and signed amounts."""
    by_company = _by_company(frame)
    currency_of = _currencies(companies)
    traces: list[dict[str, Any]] = []
    items = []
    for company_id in company_ids:
        rows = by_company.get(company_id, frame.clear()).sort("step")
        money = money_title(currency_of.get(company_id, ""), units)
        layout = {"yaxis.title.text": money}
        if rows.height < 2:
            note = _missing(missing, company_id, reasons)
            items.append((company_id, 0, {**layout, "annotations": [note]}))
            continue
        labels, amounts = bars(rows)
        traces.append(
            {
                "type": "waterfall",
                "x": labels,
                "y": _num(amounts),
                "measure": ["absolute", *(["relative"] * (rows.height - 2)), "total"],
                "increasing": {"marker": {"color": UP_COLOR}},
                "decreasing": {"marker": {"color": DOWN_COLOR}},
                "totals": {"marker": {"color": total_color}},
                "hovertemplate": f"%{{x}}: %{{y:,.1f}} {money}<extra></extra>",
            }
        )
        items.append((company_id, 1, layout))
    fig = _figure(
        traces,
        {
            "title": {"text": title},
            **_axis_titles(x=xaxis_title),
            "height": 400,
            "showlegend": False,
        },
    )
    return company_menu(fig, companies, items)


def bridge_waterfall(
    bridge: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    units: str = "millions",
    reasons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Waterfall from enterprise value to equity value, one company at a time."""

    def bars(rows: pl.DataFrame) -> tuple[list[str], list[float]]:
        labels = [_text(item.replace("_", " ")) for item in rows["item"].to_list()]
        return labels, rows["amount"].to_list()

    return _company_waterfalls(
        bridge,
        companies,
        company_ids,
        bars=bars,
        missing="No DCF equity bridge for this company",
        total_color=METHOD_COLORS["dcf"],
        title="Equity bridge: enterprise value (DCF) to equity value",
        xaxis_title="Bridge item",
        units=units,
        reasons=reasons,
    )


def sensitivity_heatmap(
    sensitivity: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    grid: str = "rate_x_growth",
    reasons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Value per share over discount rate x terminal growth (or exit multiple), one company at a
    time."""
    traces: list[dict[str, Any]] = []
    items = []
    by_company = _by_company(sensitivity.filter(pl.col("grid") == grid))
    currency_of = _currencies(companies)
    growth = grid == "rate_x_growth"
    for company_id in company_ids:
        part = by_company.get(company_id)
        if part is None:
            note = _missing("No DCF sensitivity for this company", company_id, reasons)
            items.append((company_id, 0, {"annotations": [note]}))
            continue
        part = part.sort("discount_rate", "second_value")
        rates = part["discount_rate"].unique(maintain_order=True).to_list()
        seconds = part["second_value"].unique(maintain_order=True).to_list()
        z = part["value_per_share"].fill_null(np.nan).to_numpy().reshape(len(rates), len(seconds))
        currency = currency_of.get(company_id, "")
        traces.append(
            {
                "type": "heatmap",
                "x": [f"{s:.2%}" if growth else f"{s:.1f}x" for s in seconds],
                "y": [f"{r:.2%}" for r in rates],
                "z": np.round(z, 4),
                "colorscale": RED_YELLOW_GREEN,
                "colorbar": {"title": {"text": per_share_title(currency)}},
                "hovertemplate": "discount rate %{y}, "
                + ("terminal growth" if growth else "exit multiple")
                + f" %{{x}}: %{{z:,.2f}} {currency}<extra></extra>",
                "texttemplate": "%{z:,.1f}",
            }
        )
        items.append((company_id, 1, {}))
    second = "Terminal growth (% a year)" if growth else "Exit multiple (EV / EBITDA, times)"
    what = "terminal growth" if growth else "exit EV/EBITDA multiple"
    fig = _figure(
        traces,
        {
            "title": {"text": f"Sensitivity: value per share, discount rate x {what}"},
            **_axis_titles(second, "Discount rate (% a year)"),
            "height": 480,
        },
    )
    return company_menu(fig, companies, items)


def scenario_bars(
    scenarios: pl.DataFrame,
    summary: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    reasons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Value per share per scenario and the probability-weighted value, one company at a time."""
    traces: list[dict[str, Any]] = []
    items = []
    by_company = _by_company(scenarios)
    expected_of = dict(summary.select("company_id", "expected_value_per_share").iter_rows())
    currency_of = _currencies(companies)
    for company_id in company_ids:
        part = by_company.get(company_id)
        currency = currency_of.get(company_id, "")
        layout = {"yaxis.title.text": per_share_title(currency)}
        if part is None:
            note = _missing("No DCF scenarios for this company", company_id, reasons)
            items.append((company_id, 0, {**layout, "annotations": [note]}))
            continue
        names = [*_texts(part["scenario"]), "probability-weighted"]
        values = [*part["value_per_share"].to_list(), expected_of.get(company_id)]
        traces.append(
            {
                "type": "bar",
                "x": names,
                "y": _num(values),
                "text": [f"p={p:.0%}" for p in part["probability"].to_list()] + [""],
                "marker": {
                    "color": [METHOD_COLORS["dcf"]] * part.height + [METHOD_COLORS["blend"]]
                },
                "hovertemplate": f"%{{x}}: %{{y:,.2f}} {currency}<extra></extra>",
            }
        )
        items.append((company_id, 1, layout))
    fig = _figure(
        traces,
        {
            "title": {"text": "Scenarios: DCF value per share"},
            **_axis_titles(x="Scenario"),
            "height": 400,
            "showlegend": False,
        },
    )
    return company_menu(fig, companies, items)


def simulation_histogram(
    draws: pl.DataFrame,
    summary: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    bins: int = 50,
    reasons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Distribution of simulated value per share with P5/P50/P95 markers, one company at a time.

    The draws are binned here (counts per bin go into the page, not every draw). A company whose
    draws were not kept shows its percentiles (P5, P25, P50, P75, P95) as a box instead.
    """
    traces: list[dict[str, Any]] = []
    items = []
    stats_of = {row["company_id"]: row for row in summary.iter_rows(named=True)}
    draws_of = _by_company(draws.select("company_id", "value_per_share"))
    currency_of = _currencies(companies)
    for company_id in company_ids:
        s = stats_of.get(company_id)
        currency = currency_of.get(company_id, "")
        layout = {"xaxis.title.text": per_share_title(currency)}
        if s is None:
            why = "No Monte Carlo for this company (not valued by DCF)"
            note = _missing(why, company_id, reasons)
            items.append((company_id, 0, {**layout, "annotations": [note]}))
            continue
        kept = draws_of.get(company_id)
        values = kept["value_per_share"].to_numpy() if kept is not None else np.empty(0)
        values = values[np.isfinite(values)]
        if values.size:
            counts, edges = np.histogram(values, bins=bins)
            traces.append(
                {
                    "type": "bar",
                    "x": np.round((edges[:-1] + edges[1:]) / 2, 4),
                    "y": counts,
                    "width": float(edges[1] - edges[0]),
                    "marker": {"color": METHOD_COLORS["dcf"]},
                    "name": "draws",
                    "hovertemplate": f"%{{x:,.2f}} {currency}: %{{y}} draws<extra></extra>",
                }
            )
            traces.append(
                {
                    "type": "scatter",
                    "x": _num([s["p5"], s["p50"], s["p95"]]),
                    "y": [0, 0, 0],
                    "mode": "markers+text",
                    "text": ["P5", "P50", "P95"],
                    "textposition": "top center",
                    "marker": {"size": 12, "color": "black"},
                    "name": "percentiles",
                }
            )
            items.append((company_id, 2, {**layout, "yaxis.title.text": "Draws (count per bin)"}))
        else:
            traces.append(
                {
                    "type": "box",
                    "q1": [s["p25"]],
                    "median": [s["p50"]],
                    "q3": [s["p75"]],
                    "lowerfence": [s["p5"]],
                    "upperfence": [s["p95"]],
                    "mean": [s["mean"]],
                    "y": [_text(company_id)],
                    "orientation": "h",
                    "marker": {"color": METHOD_COLORS["dcf"]},
                    "name": "P5-P95",
                }
            )
            note = _note("Draws not kept for this company: box from P5, P25, P50, P75, P95")
            note["y"] = 1.0
            items.append(
                (company_id, 1, {**layout, "yaxis.title.text": "Company", "annotations": [note]})
            )
    fig = _figure(
        traces,
        {
            "title": {"text": "Monte Carlo: DCF value per share"},
            "bargap": 0,
            "height": 400,
            "showlegend": False,
        },
    )
    return company_menu(fig, companies, items)


def liquidation_waterfall(
    waterfall: pl.DataFrame,
    companies: pl.DataFrame,
    company_ids: list[str],
    *,
    units: str = "millions",
    reasons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Gross proceeds down to what is left for equity, one company at a time."""

    def bars(rows: pl.DataFrame) -> tuple[list[str], list[float]]:
        paid = rows["paid"].to_list()
        return _texts(rows["item"]), [paid[0], *[-p for p in paid[1:-1]], paid[-1]]

    return _company_waterfalls(
        waterfall,
        companies,
        company_ids,
        bars=bars,
        missing="No liquidation waterfall for this company",
        total_color=METHOD_COLORS["asset"],
        title="Liquidation waterfall: proceeds to claims, by priority",
        xaxis_title="Proceeds, then claims paid in order of priority",
        units=units,
        reasons=reasons,
    )
