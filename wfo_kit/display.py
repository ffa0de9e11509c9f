"""Notebook display helpers: Plotly figures that survive nbconvert offline, escaped text.

Why not ``fig.show()``: a kernel's default Plotly renderer is a MIME type nbconvert drops (blank
charts), and the ``notebook`` renderer adds a remote MathJax ``<script src>`` to every figure.
Here plotly.js is embedded once by :func:`setup`, and :func:`show` sends each figure both as
Plotly's MIME type (JupyterLab renders it natively) and as a bare ``<div>`` + ``Plotly.newPlot``
for the HTML export.
"""

from __future__ import annotations

import html
import json
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def setup() -> None:
    """Call once at the top of a report notebook: embeds plotly.js and sets table display."""
    import plotly.offline
    import polars as pl
    from IPython.display import display

    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(30)
    pl.Config.set_fmt_str_lengths(200)
    script = plotly.offline.get_plotlyjs()
    display(
        {"text/html": f'<script type="text/javascript" id="wfo-plotlyjs">{script}</script>'},
        raw=True,
    )


def figure_bundle(fig: Any) -> dict[str, Any]:
    """MIME bundle for one figure: native for JupyterLab, a plain div for HTML export."""
    import plotly.io as pio

    div = pio.to_html(
        fig, full_html=False, include_plotlyjs=False, include_mathjax=False, config=_PLOT_CONFIG
    )
    return {PLOTLY_MIME: json.loads(pio.to_json(fig)), "text/html": div}


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
