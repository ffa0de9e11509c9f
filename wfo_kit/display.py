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


def setup(*, interactive: bool = True, units: str = "millions") -> None:
    """Call once at the top of a report notebook: table styles and Polars display settings.

    plotly.js itself is not put in the notebook: the HTML export embeds it once in the page head
    (see wfo_kit.publish.export_html), and JupyterLab draws figures from their MIME bundle. So
    the executed notebook stays small and no chart depends on another cell's output.
    """
    import polars as pl
    from IPython.display import display

    _SETTINGS["mime"] = interactive
    _SETTINGS["units"] = units
    _SETTINGS["picker"] = False
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(30)
    pl.Config.set_fmt_str_lengths(200)
    display({"text/html": TABLE_CSS}, raw=True)


# Whether figures also carry Plotly's MIME type (for drawing in JupyterLab). A headless run only
# needs the HTML: the figure JSON as nested cells made papermill's saves and nbconvert's copies
# about 0.7 s slower per report (measured here), for a notebook nobody looks at live.
_SETTINGS: dict[str, Any] = {"mime": True, "units": "millions", "currency": ""}


def set_currency(currency: str) -> None:
    """The one currency of the portfolio (headers say ``(USD)``), or empty when companies use
    several (headers say ``(company currency)`` and per-company tables get a Currency column)."""
    _SETTINGS["currency"] = currency


def figure_bundle(fig: Any) -> dict[str, Any]:
    """MIME bundle for one figure: a plain div for HTML export, plus Plotly's MIME type (which
    JupyterLab draws natively) in interactive sessions.

    ``fig`` is a figure as plain data (``{"data": ..., "layout": ...}``, what
    :mod:`wfo_kit.charts` returns) or a Plotly figure object.
    """
    import plotly.io as pio

    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    shown = spec
    layout = spec.get("layout") or {}
    if _SETTINGS.get("picker") and _picked(layout):
        # the shared company picker drives this chart in the HTML: its own dropdown (each
        # button a list of every trace's visibility) would only repeat it, at ~40% of its size
        margin = {**(layout.get("margin") or {}), "t": 60}  # no room needed for the dropdown
        rest = {k: v for k, v in layout.items() if k != "updatemenus"}
        shown = {**spec, "layout": {**rest, "margin": margin}}
    # validate=False: the charts are plain data already checked against Plotly's schema by the
    # tests (go.Figure(spec)); validating again here cost ~0.5 s a report, measured
    div = pio.to_html(
        shown,
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        config=_PLOT_CONFIG,
        validate=False,
    )
    bundle: dict[str, Any] = {"text/html": div}
    if _SETTINGS["mime"]:
        bundle[PLOTLY_MIME] = json.loads(pio.to_json(spec, validate=False))
    return bundle


def _picked(layout: dict[str, Any]) -> bool:
    meta = layout.get("meta")
    return isinstance(meta, dict) and "wfo_companies" in meta


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


_PERCENT = (
    "rate",
    "growth",
    "share",
    "margin",
    "spread",
    "weight",
    "probability",
    "roc",
    "score",
    "upside",
)


# integers that are names, not quantities: no thousands separator (a seed is not "20,261,126")
_PLAIN_INTEGERS = ("row", "seed", "step", "priority", "horizon", "first_year")


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
        plain = "year" in column or column in _PLAIN_INTEGERS
        return str(value) if plain else f"{value:,d}"
    return str(value)


def html_table(
    frame: Any,
    *,
    masked: list[str] | tuple[str, ...] = (),
    rows: int = 100,
    company_column: str | None = None,
    currency: str | None = None,
    units: str | None = None,
) -> str:
    """A report table: every cell escaped, numbers formatted (rates as %, money with commas),
    headers in words with units (:func:`column_label`).

    With ``company_column`` each row carries ``data-wfo-company`` (its company id, escaped as
    Plotly shows it), so the report's shared company picker can show one company's rows.
    """
    from wfo_kit.trust import MASK, plotly_text

    columns = list(frame.columns)
    currency = _SETTINGS["currency"] if currency is None else currency
    units = _SETTINGS["units"] if units is None else units
    labels = [column_label(c, currency=currency, units=units) for c in columns]
    head = "".join(
        f'<th title="{html.escape(c)}">{html.escape(label)}</th>'
        for c, label in zip(columns, labels, strict=True)
    )
    keys = (
        frame[company_column].to_list()
        if company_column and company_column in columns
        else [None] * frame.height
    )
    body = []
    for key, record in zip(keys, frame.head(rows).iter_rows(), strict=False):
        cells = []
        for column, value in zip(columns, record, strict=True):
            text = MASK if column in masked else _format(value, column)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            align = ' class="num"' if numeric and column not in masked else ""
            cells.append(f"<td{align}>{html.escape(text)}</td>")
        attr = f' data-wfo-company="{html.escape(plotly_text(key))}"' if key is not None else ""
        body.append(f"<tr{attr}>{''.join(cells)}</tr>")
    more = frame.height - rows
    caption = f"<caption>{more:,d} more rows in the result files</caption>" if more > 0 else ""
    picked = " data-wfo-picked" if company_column else ""
    none = (
        '<p class="wfo-none" hidden>No row for this company in this table.</p>'
        if company_column
        else ""
    )
    return (
        f'<div class="wfo-table"{picked}>{none}<table>'
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


def table(
    frame: Any,
    report: Any = None,
    *,
    rows: int = 100,
    caption: str = "",
    company_column: str | None = None,
) -> None:
    """Display a frame as an escaped, formatted table, masking ``report.masked_columns``.

    Both representations are masked (the notebook keeps the plain-text one too), and so is the
    ``value`` of a long table's rows that name a masked column (the quarantine). With
    ``company_column`` the rows follow the report's company picker (:func:`company_picker`).
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
            "text/html": title
            + html_table(frame, masked=masked, rows=rows, company_column=company_column),
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


def detail_note(valuations: Any, report: Any, company_ids: list[str]) -> str:
    """Which companies the detail sections cover, and how to choose others.

    Examples
    --------
    >>> import polars as pl
    >>> from wfo_kit.config import ReportConfig
    >>> v = pl.DataFrame({"company_id": ["A", "B", "C"], "status": ["valued"] * 3})
    >>> detail_note(v, ReportConfig(detail_limit=2), ["A", "B"])[:58]
    'Detailed: the first 2 of 3 valued companies (report.detail'
    """
    import polars as pl

    valued = valuations.filter(pl.col("status") == "valued")["company_id"].unique()
    if report.companies:
        missing = [c for c in company_ids if c not in set(valued.to_list())]
        note = f"Detailed: the {len(company_ids):,d} companies listed in report.companies."
        if missing:
            note += f" Not valued, so shown without values: {', '.join(missing)}."
        return note
    if len(company_ids) >= valued.len():
        return f"Detailed: all {valued.len():,d} valued companies."
    return (
        f"Detailed: the first {len(company_ids):,d} of {valued.len():,d} valued companies "
        f"(report.detail_limit: {report.detail_limit}). To detail others, list them in "
        "report.companies (or raise report.detail_limit)."
    )


# Column headers in words, with the kind of unit each holds. A column not listed reads as its
# name in words ("peer_basis" -> "Peer basis"), and the unit is guessed from its name the way
# numbers are formatted (rates as %, *_per_share in the currency), so a new method's columns
# need no edit here to read well.
COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "company_id": ("Company", ""),
    "name": ("Name", ""),
    "sector": ("Sector", ""),
    "currency": ("Currency", ""),
    "method": ("Method", ""),
    "status": ("Status", ""),
    "reason": ("Reason", ""),
    "share_price": ("Market price per share", "per_share"),
    "low": ("Blended low per share", "per_share"),
    "base": ("Blended value per share", "per_share"),
    "high": ("Blended high per share", "per_share"),
    "upside": ("Upside (+) or downside (-) to blended value", "pct"),
    "price_to_value": ("Price / blended value", "times"),
    "implied_fcff_growth": ("Market-implied FCFF growth (reverse DCF)", "pct_year"),
    "forecast_fcff_growth": ("Forecast FCFF growth", "pct_year"),
    "methods_missing": ("Methods that could not value it", ""),
    "blend_low": ("Blended low per share", "per_share"),
    "blend_base": ("Blended value per share", "per_share"),
    "blend_high": ("Blended high per share", "per_share"),
    "methods_used": ("Methods and weights used", ""),
    "discount_rate": ("Discount rate", "pct"),
    "terminal_growth": ("Terminal growth", "pct_year"),
    "spread": ("Discount rate less terminal growth", "pct"),
    "horizon": ("Forecast years", ""),
    "pv_explicit": ("PV of forecast cash flows", "money"),
    "terminal_value": ("Terminal value", "money"),
    "pv_terminal": ("PV of terminal value", "money"),
    "enterprise_value": ("Enterprise value", "money"),
    "equity_value": ("Equity value", "money"),
    "terminal_share": ("Terminal value share of EV", "pct"),
    "implied_exit_multiple": ("Implied exit multiple (EV / EBITDA)", "times"),
    "value_per_share": ("Value per share", "per_share"),
    "draws": ("Draws", ""),
    "rejected": ("Draws rejected", ""),
    "mean": ("Mean value per share", "per_share"),
    "std": ("Standard deviation per share", "per_share"),
    "p5": ("5th percentile per share", "per_share"),
    "p25": ("25th percentile per share", "per_share"),
    "p50": ("Median per share", "per_share"),
    "p75": ("75th percentile per share", "per_share"),
    "p95": ("95th percentile per share", "per_share"),
    "sampler": ("Sampler", ""),
    "seed": ("Random seed", ""),
    "multiple": ("Multiple", ""),
    "peer_basis": ("Peers chosen by", ""),
    "peers": ("Peers used", ""),
    "metric_value": ("Company metric", "money"),
    "bridge": ("EV to equity bridge", "money"),
    "equity_low": ("Equity value, low", "money"),
    "equity_base": ("Equity value, base", "money"),
    "equity_high": ("Equity value, high", "money"),
    "per_share_low": ("Value per share, low", "per_share"),
    "per_share_base": ("Value per share, base", "per_share"),
    "per_share_high": ("Value per share, high", "per_share"),
    "adjusted_nav": ("Adjusted net asset value", "money"),
    "liquidation_value": ("Liquidation value", "money"),
    "rows_in": ("Rows in", ""),
    "rows_valid": ("Rows valid", ""),
    "rows_quarantined": ("Rows quarantined", ""),
    "score": ("Quality score (valid / in)", "pct"),
    "table": ("Table", ""),
    "row": ("Row", ""),
    "column": ("Column", ""),
    "check": ("Check", ""),
    "value": ("Value", ""),
    "key": ("Key", ""),
    "source": ("Source", ""),
    "peer_id": ("Peer", ""),
    "target_id": ("Target company", ""),
}


_ACRONYMS = {
    "dcf": "DCF",
    "ev": "EV",
    "ebitda": "EBITDA",
    "ebit": "EBIT",
    "fcff": "FCFF",
    "nav": "NAV",
    "wacc": "WACC",
    "pv": "PV",
    "roc": "ROC",
    "id": "id",
}


def column_label(column: str, *, currency: str = "", units: str = "millions") -> str:
    """A column's header: words with the unit.

    Examples
    --------
    >>> column_label("value_per_share", currency="USD")
    'Value per share (USD)'
    >>> column_label("enterprise_value", currency="USD", units="millions")
    'Enterprise value (USD millions)'
    >>> column_label("terminal_share")
    'Terminal value share of EV (%)'
    >>> column_label("dcf_per_share", currency="")
    'DCF per share (company currency)'
    """
    words, kind = COLUMN_LABELS.get(column, (None, None))
    if words is None:
        parts = column.replace("_", " ").strip().split(" ")
        words = " ".join(_ACRONYMS.get(w, w) for w in parts)
        words = words[:1].upper() + words[1:]
        if column.endswith("per_share"):
            kind = "per_share"
        elif column.isdigit():
            kind = ""  # a year as a column: the table's caption gives the unit
        else:
            kind = "pct" if _is_percent(column) else ""
    money = currency or "company currency"
    unit = {
        "per_share": money,
        "money": f"{currency} {units}" if currency else f"company currency, {units}",
        "pct": "%",
        "pct_year": "% a year",
        "times": "times",
    }.get(kind or "", "")
    return f"{words} ({unit})" if unit else words


PICKER_SCRIPT = """
(function () {
  "use strict";
  var picker = document.getElementById("wfo-company-picker");
  if (!picker) return;
  // Sticky only within its parent: lift the bar out of its output cell to the page's main
  // column, so that it stays at the top of the window through every detail section.
  var bar = document.getElementById("wfo-picker");
  var cell = bar && bar.closest(".jp-Cell");
  if (cell && cell.parentNode) cell.parentNode.insertBefore(bar, cell);
  function charts(id) {
    if (!window.Plotly || !window.Plotly.update) return;
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      var meta = gd.layout && gd.layout.meta;
      var ids = meta && meta.wfo_companies;
      if (!ids) return;
      var i = ids.indexOf(id);
      if (i < 0) return;
      var first = meta.wfo_traces[i][0], count = meta.wfo_traces[i][1];
      var visible = gd.data.map(function (_t, k) { return k >= first && k < first + count; });
      window.Plotly.update(gd, {visible: visible}, meta.wfo_layouts[i]);
    });
  }
  function tables(id) {
    document.querySelectorAll("[data-wfo-picked]").forEach(function (box) {
      var shown = 0;
      box.querySelectorAll("tr[data-wfo-company]").forEach(function (tr) {
        tr.hidden = tr.getAttribute("data-wfo-company") !== id;
        if (!tr.hidden) shown += 1;
      });
      var none = box.querySelector(".wfo-none");
      if (none) none.hidden = shown > 0;
      var table = box.querySelector("table");
      if (table) table.hidden = shown === 0;
    });
    document.querySelectorAll("[data-wfo-company-name]").forEach(function (el) {
      el.textContent = picker.options[picker.selectedIndex].text;
    });
  }
  function pick() {
    var id = picker.options[picker.selectedIndex].getAttribute("data-plotly-id");
    tables(id);
    charts(id);
  }
  picker.addEventListener("change", pick);
  tables(picker.options[picker.selectedIndex].getAttribute("data-plotly-id"));
})();
"""

PICKER_CSS = """<style>
.wfo-picker { position: sticky; top: 0; z-index: 10; background: #f4f6fa;
  border-bottom: 1px solid #c8cfdb; padding: 8px 12px; margin: 8px 0;
  font-family: sans-serif; font-size: 14px; }
.wfo-picker select { font-size: 14px; padding: 2px 4px; margin-left: 6px; }
.wfo-picker .wfo-picker-note { color: #555; font-size: 12px; margin-left: 12px; }
</style>"""


def picker_html(options: list[tuple[str, str]], *, note: str = "") -> str:
    """The report's shared company picker: a ``<select>`` (one option per ``(company_id,
    label)``) that shows the chosen company in every chart and table made for it, and the script
    that does it (inline: the report has no other file and allows no network).

    Examples
    --------
    >>> "C1 &lt;b&gt;" in picker_html([("C1", "C1 <b>")])
    True
    """
    from wfo_kit.trust import plotly_text

    opts = "".join(
        f'<option value="{html.escape(cid)}" data-plotly-id="{html.escape(plotly_text(cid))}">'
        f"{html.escape(label)}</option>"
        for cid, label in options
    )
    return (
        PICKER_CSS + '<div class="wfo-picker" id="wfo-picker"><label for="wfo-company-picker">'
        "Company shown in every detail section:</label>"
        f'<select id="wfo-company-picker">{opts}</select>'
        f'<span class="wfo-picker-note">{html.escape(note)}</span></div>'
        f"<script>{PICKER_SCRIPT}</script>"
    )


def company_picker(companies: Any, company_ids: list[str], *, note: str = "") -> None:
    """Display the shared company picker for ``company_ids`` (``companies``: id and name)."""
    import polars as pl
    from IPython.display import display

    names = dict(companies.select("company_id", "name").iter_rows())
    options = [(c, f"{c} {names.get(c) or ''}".strip()) for c in company_ids]
    html_text = picker_html(options, note=note)
    _SETTINGS["picker"] = True
    plain = pl.DataFrame({"company": [o[1] for o in options]})
    display({"text/html": html_text, "text/plain": f"companies detailed: {plain.height}"}, raw=True)


def headline(facts: dict[str, Any]) -> None:
    """The top of the report: facts as a definition list, then the plain reading (escaped)."""
    from IPython.display import display

    rows = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts["facts"]
    )
    text = (
        "<style>.wfo-headline{font-family:sans-serif;background:#f4f6fa;border:1px solid #c8cfdb;"
        "border-radius:4px;padding:10px 16px;margin:8px 0 16px 0}"
        ".wfo-headline dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;"
        "margin:0 0 8px 0}.wfo-headline dt{font-weight:bold}.wfo-headline dd{margin:0}"
        ".wfo-headline p{margin:0;font-size:15px;line-height:1.45}</style>"
        f'<div class="wfo-headline" id="wfo-headline"><dl>{rows}</dl>'
        f'<p id="wfo-reading">{html.escape(facts["reading"])}</p></div>'
    )
    plain = "\n".join(f"{k}: {v}" for k, v in facts["facts"]) + "\n" + facts["reading"]
    display({"text/html": text, "text/plain": plain}, raw=True)


# --------------------------------------------------------------------------------------------
# Diagnostics as traffic lights: colours come from report.css classes (wfo-light-<colour>); the
# light's name is written beside the dot, so colour is never the only cue.

#: light -> its text label (the ``light`` column of the diagnostics table)
LIGHT_LABELS = {"green": "green", "amber": "amber", "red": "red", "grey": "grey: no data"}

#: check -> (words, how its value reads: "pct" a rate or share, "times" a multiple)
CHECK_LABELS: dict[str, tuple[str, str]] = {
    "roic_vs_wacc": ("Return on capital less discount rate", "pct"),
    "terminal_share": ("Terminal value share of EV", "pct"),
    "spread": ("Discount rate less terminal growth", "pct"),
    "exit_multiple_vs_peers": ("Implied exit multiple against peers", "times"),
    "growth_consistency": ("Growth less reinvestment x return on capital", "pct"),
}


def _light_key(light: Any) -> str:
    """A light the stylesheet knows (anything else reads grey: never an unescaped class)."""
    return light if light in LIGHT_LABELS else "grey"


def light_cell(light: Any) -> str:
    """One table cell: a coloured dot (CSS class) and the light's name.

    >>> light_cell("red")
    '<td class="wfo-light wfo-light-red"><span class="wfo-dot"></span>red</td>'
    >>> light_cell("<b>")[:44]
    '<td class="wfo-light wfo-light-grey"><span c'
    """
    key = _light_key(light)
    return (
        f'<td class="wfo-light wfo-light-{key}"><span class="wfo-dot"></span>'
        f"{html.escape(LIGHT_LABELS[key])}</td>"
    )


def _check_value(value: Any, check: str) -> str:
    if value is None or value != value:
        return ""
    kind = CHECK_LABELS.get(check, ("", "pct"))[1]
    return f"{value:.1f}x" if kind == "times" else f"{value:.2%}"


def _check_words(check: Any) -> str:
    return CHECK_LABELS.get(str(check), (str(check), ""))[0]


def lights_html(diagnostics: Any, company_ids: list[str]) -> str:
    """The picked company's checks (rows follow the company bar): check, light, value,
    threshold and the note where the light is grey. Every string escaped."""
    import polars as pl

    from wfo_kit.trust import plotly_text

    frame = diagnostics.filter(pl.col("company_id").is_in(company_ids))
    head = "".join(
        f"<th>{label}</th>" for label in ("Check", "Light", "Value", "Threshold", "Note")
    )
    body = "".join(
        f'<tr data-wfo-company="{html.escape(plotly_text(r["company_id"]))}">'
        f'<td title="{html.escape(str(r["check"]))}">{html.escape(_check_words(r["check"]))}</td>'
        f"{light_cell(r['light'])}"
        f'<td class="num">{html.escape(_check_value(r["value"], r["check"]))}</td>'
        f"<td>{html.escape(r['rule'] or '')}</td><td>{html.escape(r['note'] or '')}</td></tr>"
        for r in frame.iter_rows(named=True)
    )
    return (
        '<div class="wfo-table wfo-lights" id="wfo-lights" data-wfo-picked>'
        '<p class="wfo-none" hidden>No DCF diagnostics for this company (not valued by DCF).</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def lights_grid_html(diagnostics: Any, names: Any = None, *, rows: int = 1000) -> str:
    """Every company x check, each cell its light (class and label): the portfolio at a glance.
    Companies with a red light first, then by id."""
    import polars as pl

    checks = list(dict.fromkeys(diagnostics["check"].to_list()))
    wide = diagnostics.pivot(on="check", index="company_id", values="light").select(
        "company_id", *checks
    )
    from wfo_kit.frames import ordered_sum

    reds = ordered_sum((pl.col(c) == "red").cast(pl.Int32) for c in checks)
    wide = wide.with_columns(reds.alias("_reds")).sort(
        ["_reds", "company_id"], descending=[True, False]
    )
    label = dict(names.select("company_id", "name").iter_rows()) if names is not None else {}
    head = "<th>Company</th><th>Name</th>" + "".join(
        f'<th title="{html.escape(c)}">{html.escape(_check_words(c))}</th>' for c in checks
    )
    body = "".join(
        f"<tr><td>{html.escape(str(r['company_id']))}</td>"
        f"<td>{html.escape(str(label.get(r['company_id']) or ''))}</td>"
        + "".join(light_cell(r[c]) for c in checks)
        + "</tr>"
        for r in wide.head(rows).iter_rows(named=True)
    )
    more = wide.height - rows
    caption = f"<caption>{more:,d} more companies in the result files</caption>" if more > 0 else ""
    return (
        '<div class="wfo-table wfo-lights-grid" id="wfo-lights-grid"><table>'
        f"{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def lights(diagnostics: Any, *, company_ids: list[str] | None = None, names: Any = None) -> None:
    """Display the diagnostics: the picked company's lights (with ``company_ids``), else the
    portfolio grid."""
    from IPython.display import display

    if diagnostics.height == 0:
        display({"text/html": "<p>No DCF diagnostics.</p>", "text/plain": "none"}, raw=True)
        return
    text = (
        lights_html(diagnostics, company_ids)
        if company_ids is not None
        else lights_grid_html(diagnostics, names)
    )
    display({"text/html": text, "text/plain": repr(diagnostics)}, raw=True)
