"""Plotly figures for the report. Pure: frames in, a figure out; no display, no I/O.

Plotly escapes text in titles, labels and hover text, so untrusted company names are safe here.
"""

from __future__ import annotations

from typing import Any

import polars as pl


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
            x=part["company_id"].to_list(),
            y=part["value_per_share"].to_list(),
            name=method.upper(),
            customdata=list(zip(part["name"].to_list(), part["currency"].to_list(), strict=True)),
            hovertemplate="%{x} %{customdata[0]}<br>%{y:,.2f} %{customdata[1]} per share"
            "<extra>%{fullData.name}</extra>",
        )
    fig.update_layout(
        title="Value per share by company",
        xaxis_title="company",
        yaxis_title="value per share (company currency)",
        barmode="group",
        height=420,
        margin={"t": 60, "b": 40, "l": 60, "r": 20},
    )
    return fig


def bridge_waterfall(bridge: pl.DataFrame, company_id: str, *, title: str | None = None) -> Any:
    """Waterfall from enterprise value to equity value for one company."""
    import plotly.graph_objects as go

    rows = bridge.filter(pl.col("company_id") == company_id).sort("step")
    labels = [item.replace("_", " ") for item in rows["item"].to_list()]
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
        title=title or f"Equity bridge: {company_id}",
        yaxis_title="money (input units)",
        height=380,
        margin={"t": 60, "b": 40, "l": 60, "r": 20},
    )
    return fig
