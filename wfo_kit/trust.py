"""The trust boundary for data: what an untrusted string may become on its way to a reader.

Data files, and every string in them (company ids, names, sectors, balance-sheet items), are
untrusted. Each way out has one function here, used by every writer of that kind:

- :func:`plotly_text`: a string for a Plotly figure (titles, axis and tick labels, hover text,
  legend entries, dropdown labels). plotly.js renders a subset of HTML there (``<a href>`` as a
  live link, ``<b>``, ``<i>``, ``<br>``, ``<span style>``), so it is not an escaper.
- :func:`neutralise_formulas`: text cells of a CSV file, which a spreadsheet would run as formulas.
- :func:`mask_frame`: the values of ``report.masked_columns``, replaced in every file of a run.
- :func:`shared_path`: a path as a shared report shows it (no absolute path of the machine).

Report tables escape their cells themselves (:func:`wfo_kit.display.html_table`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

#: What a masked value becomes (report tables and text result columns).
MASK = "***"

#: A text cell starting with one of these is a formula to a spreadsheet (OWASP, CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = r"^[=+\-@\t\r]"
# A cell that is only a number (-1.5, +2e3) is not a formula: it keeps its sign, unquoted.
_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def plotly_text(value: Any) -> str:
    """``value`` as text that plotly.js shows literally (``<``, ``>`` and ``&`` escaped).

    plotly.js decodes ``&lt;``, ``&gt;`` and ``&amp;`` back to characters after it has looked
    for its tags, so the reader sees exactly the original text and no tag is ever rendered.
    ``None`` becomes an empty string.

    Examples
    --------
    >>> plotly_text('<a href="https://example.invalid">x</a> & Co')
    '&lt;a href="https://example.invalid"&gt;x&lt;/a&gt; &amp; Co'
    """
    return "" if value is None else html.escape(str(value), quote=False)


def plotly_texts(values: Iterable[Any]) -> list[str]:
    """:func:`plotly_text` of each value."""
    return [plotly_text(v) for v in values]


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells a spreadsheet would evaluate, prefixed with a single quote (for CSV only).

    A cell of a String column that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return is written as ``'`` followed by the cell, as OWASP recommends against CSV injection;
    a cell that is only a number (``-1.5``) is left alone. Columns of other types (negative
    numbers included) are not text and never change. Parquet and JSON outputs keep raw values.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"name": ['=HYPERLINK("http://x")', "-2+3", "-1.5", "Acme"],
    ...                       "debt": [-1.0, 2.0, 3.0, 4.0]})
    >>> neutralise_formulas(frame).rows()  # doctest: +NORMALIZE_WHITESPACE
    [('\\'=HYPERLINK("http://x")', -1.0), ("'-2+3", 2.0), ('-1.5', 3.0), ('Acme', 4.0)]
    """
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not text:
        return frame
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA) & ~pl.col(c).str.contains(_PLAIN_NUMBER))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def mask_frame(frame: pl.DataFrame, masked: Iterable[str]) -> pl.DataFrame:
    """``frame`` with the values of the ``masked`` columns hidden.

    A masked text column holds :data:`MASK` where it had a value; a masked column of another type
    holds null (its type is kept, so result schemas hold). In a long table that names a column per
    row (the quarantine: ``column`` and ``value``), the ``value`` of a masked column's rows is
    masked too.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"company_id": ["C1"], "name": ["Secret Co"], "debt": [5.0]})
    >>> mask_frame(frame, ["name", "debt"]).rows()
    [('C1', '***', None)]
    """
    masked = list(dict.fromkeys(masked))
    hide = [
        (
            pl.when(pl.col(c).is_not_null()).then(pl.lit(MASK)).otherwise(None)
            if frame.schema[c] == pl.String
            else pl.lit(None, dtype=frame.schema[c])
        ).alias(c)
        for c in masked
        if c in frame.columns
    ]
    if {"column", "value"} <= set(frame.columns) and masked:
        value = pl.col("value")
        hide.append(
            pl.when(pl.col("column").is_in(masked) & value.is_not_null())
            .then(pl.lit(MASK) if frame.schema["value"] == pl.String else None)
            .otherwise(value)
            .alias("value")
        )
    return frame.with_columns(hide) if hide else frame


def shared_path(path: str | os.PathLike[str], *, relative_to: str | Path | None = None) -> str:
    """A path as a shared report shows it: never an absolute path of the machine that ran it.

    Relative to ``relative_to`` (the folder of the parameters file that named it) when inside it;
    else relative to the project (the folder holding the ``wfo_kit`` package) when inside that;
    else only its file name after ``.../``. A relative path is returned as it is. The manifest
    keeps the absolute paths.

    Examples
    --------
    >>> shared_path("/srv/team/data/companies.csv", relative_to="/srv/team")
    'data/companies.csv'
    >>> shared_path("/somewhere/else/peers.csv", relative_to="/srv/team")
    '.../peers.csv'
    """
    target = Path(path)
    if not target.is_absolute():
        return str(path)
    bases = [Path(relative_to)] if relative_to else []
    bases.append(PROJECT)
    for base in bases:
        if target.is_relative_to(base):
            return str(target.relative_to(base)) or "."
    return f".../{target.name}"


#: The folder that holds the ``wfo_kit`` package (the repository in a development checkout).
PROJECT = Path(__file__).resolve().parent.parent
