"""Notebook display helpers: Plotly figures that survive nbconvert offline, escaped text.

Why not ``fig.show()``: a kernel's default Plotly renderer is a MIME type nbconvert drops (blank
charts), and the ``notebook`` renderer adds a remote MathJax ``<script src>`` to every figure.
:func:`show` sends each figure both as Plotly's MIME type (JupyterLab renders it natively) and as
a bare ``<div>`` + ``Plotly.newPlot`` for the HTML export, whose template embeds plotly.js once.
"""

from __future__ import annotations

import html
import json
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def setup(*, interactive: bool = True) -> None:
    """Call once at the top of a report notebook: table styles and Polars display settings.

    plotly.js itself is not put in the notebook: the HTML export embeds it once in the page head
    (see wfo_kit.publish.export_html), and JupyterLab draws figures from their MIME bundle. So
    the executed notebook stays small and no chart depends on another cell's output.
    """
    import polars as pl
    from IPython.display import display

    _SETTINGS["mime"] = interactive
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(30)
    pl.Config.set_fmt_str_lengths(200)
    display({"text/html": TABLE_CSS}, raw=True)


# Whether figures also carry Plotly's MIME type (for drawing in JupyterLab). A headless run only
# needs the HTML: the figure JSON as nested cells made papermill's saves and nbconvert's copies
# about 0.7 s slower per report (measured here), for a notebook nobody looks at live.
_SETTINGS = {"mime": True}


def figure_bundle(fig: Any) -> dict[str, Any]:
    """MIME bundle for one figure: a plain div for HTML export, plus Plotly's MIME type (which
    JupyterLab draws natively) in interactive sessions."""
    import plotly.io as pio

    div = pio.to_html(
        fig, full_html=False, include_plotlyjs=False, include_mathjax=False, config=_PLOT_CONFIG
    )
    bundle: dict[str, Any] = {"text/html": div}
    if _SETTINGS["mime"]:
        bundle[PLOTLY_MIME] = json.loads(pio.to_json(fig))
    return bundle


def show(fig: Any) -> None:
    """Display one Plotly figure (see module docstring for why not ``fig.show()``)."""
    from IPython.display import display

    display(figure_bundle(fig), raw=True)


def heading(text: str, level: int = 2) -> None:
    """A heading from untrusted text (company names, titles): always escaped."""
    from IPython.display import display

    level = min(max(int(level), 1), 6)
    display({"text/html": f"<h{level}>{html.escape(str(text))}</h{level}>"}, raw=True)


def note(text: str) -> None:
    """A paragraph of untrusted text, escaped."""
    from IPython.display import display

    display({"text/html": f"<p>{html.escape(str(text))}</p>", "text/plain": str(text)}, raw=True)


_PERCENT = ("rate", "growth", "share", "margin", "spread", "weight", "probability", "roc", "score")


def _is_percent(column: str) -> bool:
    """Rates, growth, margins and shares of a whole are shown as %; money per share is not."""
    if "per_share" in column or column.startswith(("value", "equity", "enterprise")):
        return False
    return any(part in column for part in _PERCENT)


def _format(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if _is_percent(column) and abs(value) < 10:
            return f"{value:.2%}"
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,d}" if "year" not in column and column != "row" else str(value)
    return str(value)


def html_table(frame: Any, *, masked: list[str] | tuple[str, ...] = (), rows: int = 100) -> str:
    """A report table: every cell escaped, numbers formatted (rates as %, money with commas)."""
    from wfo_kit.trust import MASK

    columns = list(frame.columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for record in frame.head(rows).iter_rows():
        cells = []
        for column, value in zip(columns, record, strict=True):
            text = MASK if column in masked else _format(value, column)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            align = ' class="num"' if numeric and column not in masked else ""
            cells.append(f"<td{align}>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = frame.height - rows
    caption = f"<caption>{more:,d} more rows in the result files</caption>" if more > 0 else ""
    return (
        '<div class="wfo-table"><table>'
        + caption
        + f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


TABLE_CSS = """<style>
.wfo-table { overflow-x: auto; margin: 8px 0 16px 0; }
.wfo-table table { border-collapse: collapse; font-size: 12px; font-family: sans-serif; }
div.wfo-table table th { text-align: left !important; border-bottom: 2px solid #444;
                         padding: 4px 8px; }
div.wfo-table table td { border-bottom: 1px solid #ddd; padding: 3px 8px; vertical-align: top;
                max-width: 420px; text-align: left !important; }
.wfo-table-caption { font-family: sans-serif; font-size: 13px; font-weight: bold;
                     margin: 12px 0 2px 0; }
div.wfo-table table td.num { text-align: right !important; white-space: nowrap;
                             font-variant-numeric: tabular-nums; }
.wfo-table caption { caption-side: bottom; text-align: left; color: #666; padding-top: 4px; }
</style>"""


def table(frame: Any, report: Any = None, *, rows: int = 100, caption: str = "") -> None:
    """Display a frame as an escaped, formatted table, masking ``report.masked_columns``.

    Both representations are masked (the notebook keeps the plain-text one too), and so is the
    ``value`` of a long table's rows that name a masked column (the quarantine).
    """
    from IPython.display import display

    from wfo_kit.trust import mask_frame

    frame = mask_frame(frame, masked_columns(report))
    masked = [c for c in masked_columns(report) if c in frame.columns]
    title = f'<div class="wfo-table-caption">{html.escape(caption)}</div>' if caption else ""
    if frame.height == 0:
        display({"text/html": f"{title}<p>None.</p>", "text/plain": f"{caption}: none"}, raw=True)
        return
    display(
        {
            "text/html": title + html_table(frame, masked=masked, rows=rows),
            "text/plain": repr(frame),
        },
        raw=True,
    )


def masked_columns(report: Any) -> list[str]:
    """``report.masked_columns``, or none without a report configuration."""
    return list(getattr(report, "masked_columns", None) or [])


def masked(frame: Any, report: Any) -> Any:
    """``frame`` with ``report.masked_columns`` hidden (:func:`wfo_kit.trust.mask_frame`): what
    a chart may show."""
    from wfo_kit.trust import mask_frame

    return mask_frame(frame, masked_columns(report))


def selected_companies(valuations: Any, report: Any) -> list[str]:
    """The companies the report details: configured ids, or the first N valued ones."""
    import polars as pl

    if report.companies:
        return list(report.companies)
    valued = valuations.filter(pl.col("status") == "valued")["company_id"].unique(
        maintain_order=True
    )
    return valued.head(report.detail_limit).to_list()
