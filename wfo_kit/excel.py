"""``output.formats: [xlsx]``: the result tables as one Excel workbook, a sheet per table.

Written by Polars' ``write_excel`` on XlsxWriter (a maintained writer, not hand-built XML), to a
temporary name and renamed into place. Each sheet has its header row frozen and an autofilter;
numbers carry a number format chosen by what the column holds (:func:`column_format`): rates and
shares of a whole as percentages, money (millions, as in the inputs) with one decimal, values per
share with two, multiples with an ``x``. Text from the data is untrusted: a cell a spreadsheet
would run as a formula gets a leading quote (:func:`wfo_kit.trust.neutralise_formulas`, as in
CSV), and the workbook is told never to turn text into formulas or links.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from wfo_kit.io import atomic_path
from wfo_kit.trust import neutralise_formulas

#: Number formats (Excel codes) by kind of column.
FORMATS = {
    "percent": "0.00%",
    "money": "#,##0.0",
    "per_share": "#,##0.00",
    "multiple": '0.00"x"',
    "number": "#,##0.####",
}
# Words in a column name that make it a share of a whole (rates as decimals: 0.09 is 9%).
_PERCENT = ("rate", "growth", "margin", "probability", "score", "weight", "haircut", "pct",
            "spread", "tax", "beta_share")  # fmt: skip
_PER_SHARE = ("per_share", "share_price", "value_per_share")
_MONEY = ("value", "debt", "cash", "amount", "claim", "paid", "shortfall", "fcff", "ebitda",
          "ebit", "revenue", "capex", "bridge", "equity", "recovered", "nav", "interest",
          "assets", "income", "book", "adjusted", "metric")  # fmt: skip
#: Columns whose meaning depends on the table: low/base/high are per share in the blend and
#: valuations, but multiples in the comparables tables.
TABLE_FORMATS: dict[str, dict[str, str]] = {
    "valuations": {"low": "per_share", "high": "per_share"},
    "blend": {"low": "per_share", "base": "per_share", "high": "per_share"},
    "asset_values": {"low": "per_share", "high": "per_share"},
    "comparables_detail": {"low": "multiple", "base": "multiple", "high": "multiple"},
    "peer_multiples": {"value": "multiple"},
    "simulation": {c: "per_share" for c in ("mean", "std", "p5", "p25", "p50", "p75", "p95")},
}


def column_format(table: str, column: str, dtype: pl.DataType) -> str | None:
    """The Excel number format of one column, or None for text and whole numbers.

    Examples
    --------
    >>> column_format("valuations", "value_per_share", pl.Float64())
    '#,##0.00'
    >>> column_format("dcf_detail", "discount_rate", pl.Float64())
    '0.00%'
    >>> column_format("comparables_detail", "base", pl.Float64())
    '0.00"x"'
    """
    if not dtype.is_float():
        return None
    kind = TABLE_FORMATS.get(table, {}).get(column)
    name = column.lower()
    if kind is None:
        if any(w in name for w in _PER_SHARE) or name.startswith("per_share"):
            kind = "per_share"
        elif "shares" in name:
            kind = "number"
        elif any(w in name for w in _PERCENT) or name.endswith("_share"):
            kind = "percent"
        elif any(w in name for w in _MONEY):
            kind = "money"
        else:
            kind = "number"
    return FORMATS[kind]


def sheet_name(table: str, taken: set[str]) -> str:
    """A sheet name Excel accepts (31 characters, no ``[]:*?/\\``), unique in the workbook."""
    clean = "".join("_" if c in "[]:*?/\\" else c for c in table)[:31] or "table"
    name, n = clean, 1
    while name.lower() in taken:
        n += 1
        name = f"{clean[: 31 - len(str(n)) - 1]}_{n}"
    taken.add(name.lower())
    return name


def write_workbook(frames: Mapping[str, pl.DataFrame], target: Path) -> Path:
    """One workbook, a sheet per frame (in the order given), written atomically."""
    from xlsxwriter import Workbook

    target = Path(target)
    taken: set[str] = set()
    with atomic_path(target) as tmp:
        options = {"strings_to_formulas": False, "strings_to_urls": False,
                   "nan_inf_to_errors": True}  # fmt: skip
        with Workbook(str(tmp), options) as workbook:
            for table, frame in frames.items():
                safe = neutralise_formulas(frame)
                formats = {
                    c: f for c, t in safe.schema.items() if (f := column_format(table, c, t))
                }
                safe.write_excel(
                    workbook=workbook,
                    worksheet=sheet_name(table, taken),
                    column_formats=formats,  # type: ignore[arg-type]
                    dtype_formats={pl.Int64: "0", pl.Int32: "0", pl.UInt32: "0"},  # type: ignore[dict-item]
                    float_precision=6,
                    autofilter=True,
                    freeze_panes=(1, 0),
                    autofit=True,
                    include_header=True,
                    table_style=None,
                )
    return target
