"""Report tables: escaped, formatted, masked."""

from __future__ import annotations

import polars as pl

from wfo_kit.config import ReportConfig
from wfo_kit.display import html_table


def test_cells_are_escaped_and_numbers_formatted() -> None:
    frame = pl.DataFrame(
        {
            "name": ["<img src=x onerror=alert(1)>"],
            "discount_rate": [0.0974],
            "equity_value": [1234567.891],
            "year": [2026],
            "asset_per_share": [4.41],
            "terminal_share": [0.7405],
        }
    )
    html = html_table(frame)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "9.74%" in html
    assert "1,234,567.89" in html
    assert ">2026<" in html
    assert ">4.41<" in html  # money per share, not a percentage
    assert "74.05%" in html


def test_masked_columns_show_stars_only() -> None:
    frame = pl.DataFrame({"company_id": ["C1"], "name": ["Secret Holdings"]})
    report = ReportConfig(masked_columns=["name"])
    html = html_table(frame, masked=report.masked_columns)
    assert "Secret Holdings" not in html
    assert "***" in html
