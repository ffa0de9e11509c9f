"""``wfo diff --html``: two runs compared on one self-contained page.

The summary, the largest moves, a waterfall per company (its blended value in run A, one bar per
cause, its value in run B: :mod:`wfo_kit.attribution`), and the tables. plotly.js is embedded as
in the reports (:func:`wfo_kit.publish.plotly_resources`: compressed, inflated in the page), so the
page opens offline. Every string from data or configuration is escaped (tables with
:func:`wfo_kit.display.html_table`, text with :func:`html.escape`, chart labels with
:func:`wfo_kit.trust.plotly_text`).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import polars as pl

from wfo_kit.attribution import ORDER, Attribution
from wfo_kit.display import TABLE_CSS, html_table
from wfo_kit.io import write_text
from wfo_kit.trust import plotly_text, plotly_texts

#: Companies offered in the waterfall's dropdown (largest moves first): one trace each, so the
#: page stays small for a large portfolio; the table lists every company.
CHART_LIMIT = 200


def attribution_wide(attribution: Attribution) -> pl.DataFrame | None:
    """One row per company: base_a, base_b, change, then one column per cause (in order)."""
    if attribution.parts is None or attribution.values is None:
        return None
    causes = attribution.parts.select("step", "cause").unique().sort("step")["cause"].to_list()
    values = attribution.values.select("company_id", "base_a", "base_b", "change", "note")
    if not causes:
        return values
    wide = attribution.parts.pivot(on="cause", index="company_id", values="change")
    return values.join(wide.select("company_id", *causes), on="company_id", how="left")


def waterfall(parts: pl.DataFrame, values: pl.DataFrame, companies: list[str]) -> Any:
    """A waterfall per company (run A, each cause, run B), one shown at a time (dropdown).

    The value axis spans each company's own path (run A, every step, run B) with a margin, so a
    move of a few cents is visible; the dropdown sets it per company.
    """
    import plotly.graph_objects as go

    chosen = pl.DataFrame({"company_id": companies})
    rows = chosen.join(values, on="company_id", how="left", maintain_order="left")
    own_parts = (
        chosen.join(parts, on="company_id", how="inner", maintain_order="left")
        .sort("company_id", "step")
        .partition_by("company_id", as_dict=True, maintain_order=True)
    )
    fig = go.Figure()
    buttons = []
    for i, row in enumerate(rows.iter_rows(named=True)):
        own = own_parts.get((row["company_id"],), parts.clear())
        changes = own["change"].fill_null(0.0).to_list()
        path = [row["base_a"] + sum(changes[:k]) for k in range(len(changes) + 1)]
        low, high = min([*path, row["base_b"]]), max([*path, row["base_b"]])
        pad = max((high - low) * 0.15, abs(high) * 0.01, 0.05)
        y_range = [max(low - pad, 0.0) if low >= 0 else low - pad, high + pad]
        fig.add_trace(
            go.Waterfall(
                x=["run A", *plotly_texts(own["cause"]), "run B"],
                y=[row["base_a"], *changes, row["base_b"]],
                measure=["absolute", *["relative"] * own.height, "total"],
                name=plotly_text(row["company_id"]),
                visible=i == 0,
                hovertemplate="%{x}: %{y:,.2f} per share<extra></extra>",
                texttemplate="%{y:,.2f}",  # each bar says its amount: the parts and the values
                textposition="outside",
                cliponaxis=False,
            )
        )
        if i == 0:
            fig.update_yaxes(range=y_range)
        visible = [j == i for j in range(rows.height)]
        buttons.append(
            {
                "label": plotly_text(row["company_id"]),
                "method": "update",
                "args": [{"visible": visible}, {"yaxis.range": y_range}],
            }
        )
    fig.update_layout(
        title="Change in blended value per share, by cause",
        xaxis_title="cause (applied in this order)",
        yaxis_title="blended value per share (company currency)",
        showlegend=False,
        margin={"t": 90, "b": 120, "l": 70, "r": 20},
        updatemenus=[
            {"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left", "y": 1.18}
        ]
        if len(companies) > 1
        else [],
    )
    return fig


def diff_page(
    *,
    run_a: str,
    run_b: str,
    summary: str,
    largest: pl.DataFrame,
    parts: dict[str, pl.DataFrame],
    attribution: Attribution,
    changed_only: bool,
) -> str:
    """The whole HTML page (a string); plotly.js embedded only if there is a chart."""
    from wfo_kit.publish import plotly_resources, trace_types

    e = html.escape
    blocks = [
        f"<h1>Runs compared: {e(run_a)} &rarr; {e(run_b)}</h1>",
        f'<p id="wfo-diff-summary">{e(summary)}</p>',
        "<h2>Largest moves (blended value per share)</h2>",
        html_table(shown(largest)),
    ]
    chart = ""
    wide = attribution_wide(attribution)
    blocks.append("<h2>Why the values moved</h2>")
    if wide is None or attribution.parts is None or attribution.values is None:
        blocks.append(
            f'<p id="wfo-no-attribution">Not attributed: {e(attribution.reason or "")}</p>'
        )
    else:
        movers = attribution.values.filter(pl.col("change").fill_null(0) != 0)
        order = ", then ".join(ORDER)
        blocks.append(
            f"<p>Each company's change is re-valued one cause at a time: {e(order)} "
            "(docs/conventions.md, \u201cAttribution\u201d). The parts sum exactly to the change, "
            "in cents.</p>"
        )
        if movers.height:
            ids = movers.sort(pl.col("change").abs(), descending=True)["company_id"].to_list()
            if len(ids) > CHART_LIMIT:
                blocks.append(
                    f"<p>The chart offers the {CHART_LIMIT} largest moves of {len(ids)}; the "
                    "table below lists every company.</p>"
                )
            fig = waterfall(attribution.parts, attribution.values, ids[:CHART_LIMIT])
            chart = fig.to_html(full_html=False, include_plotlyjs=False, div_id="wfo-waterfall")
            blocks.append(chart)
        rows = wide.filter(moved(wide)) if changed_only else wide
        blocks.append(html_table(shown(rows), rows=10_000))
    blend = parts["blend"].filter(pl.col("changed")) if changed_only else parts["blend"]
    blocks += ["<h2>Blended values</h2>", html_table(shown(blend.drop("changed")), rows=10_000)]
    for name, title in (("parameters", "Parameters that differ"), ("inputs", "Inputs that differ")):
        frame = parts[name]
        blocks.append(f"<h2>{title}</h2>")
        blocks.append(html_table(frame) if frame.height else "<p>identical</p>")
    values = parts["values"]
    if changed_only:
        values = values.filter(_value_changed())
    blocks += ["<h2>Values per company and method</h2>", html_table(shown(values), rows=10_000)]
    head = ""
    if chart:
        head = plotly_resources("compressed", traces=trace_types(chart))["wfo_plotly_head"]
    title = e(f"wfo diff {run_a} {run_b}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>{head}{TABLE_CSS}"
        "<style>body{font-family:sans-serif;margin:16px 24px}</style></head><body>"
        + "\n".join(blocks)
        + "</body></html>\n"
    )


def shown(frame: pl.DataFrame) -> pl.DataFrame:
    """Numbers as the page shows them: money to the cent, ``change_pct`` as a percentage.

    Formatted here, not by :func:`~wfo_kit.display.html_table`, which guesses percentages from
    column names, and a cause such as ``valuation.discount_rate`` is money per share here.
    """
    money = [c for c, t in frame.schema.items() if t == pl.Float64 and c != "change_pct"]
    out = frame.with_columns(fixed(pl.col(c), 2).alias(c) for c in money)
    if "change_pct" in out.columns:
        pct = fixed(pl.col("change_pct") * 100, 1, sign=True) + pl.lit("%")
        out = out.with_columns(pct.alias("change_pct")).rename({"change_pct": "change %"})
    return out


def fixed(value: pl.Expr, decimals: int, *, sign: bool = False) -> pl.Expr:
    """A number as text with exactly ``decimals`` decimals (vectorized; null stays null).

    Examples
    --------
    >>> pl.select(a=fixed(pl.lit(-1234.5), 2), b=fixed(pl.lit(0.04), 1, sign=True)).row(0)
    ('-1234.50', '+0.0')
    """
    scale = 10**decimals
    units = (value * scale).round().cast(pl.Int64)
    whole = (units.abs() // scale).cast(pl.String)
    part = (units.abs() % scale).cast(pl.String).str.zfill(decimals)
    minus = pl.when(units < 0).then(pl.lit("-")).otherwise(pl.lit("+" if sign else ""))
    return pl.concat_str([minus, whole, pl.lit("."), part])


def moved(frame: pl.DataFrame) -> pl.Expr:
    """Rows of an attribution whose blended value changed, or exists in one run only."""
    a, b = pl.col("base_a"), pl.col("base_b")
    return (pl.col("change") != 0).fill_null(False) | (a.is_null() != b.is_null())


def _value_changed() -> pl.Expr:
    a, b = pl.col("value_a"), pl.col("value_b")
    return ((b - a).abs() >= 0.005).fill_null(False) | (a.is_null() != b.is_null())


def write_diff_html(target: Path, page: str) -> Path:
    """Write the page atomically (a temporary name, then renamed into place)."""
    return write_text(target, page)
