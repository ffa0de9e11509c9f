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


def test_traffic_lights_escape_every_string_and_name_each_light() -> None:
    from wfo_kit.display import lights_grid_html, lights_html

    hostile = "<img src=x onerror=alert(1)>"
    diagnostics = pl.DataFrame(
        {
            "company_id": [hostile, hostile, "B"],
            "check": ["spread", "terminal_share", "spread"],
            "value": [0.01, None, 0.05],
            "light": ["red", "grey", 'bogus" onmouseover="x'],
            "rule": [hostile, "r", "r"],
            "note": [None, hostile, None],
        }
    )
    names = pl.DataFrame({"company_id": [hostile, "B"], "name": [hostile, "Beta"]})
    for text in (lights_html(diagnostics, [hostile, "B"]), lights_grid_html(diagnostics, names)):
        assert "<img" not in text
        assert "onmouseover" not in text  # an unknown light reads grey, never a raw class
    picked = lights_html(diagnostics, [hostile])
    assert 'data-wfo-company="&amp;lt;img src=x onerror=alert(1)&amp;gt;"' in picked
    assert '<td class="wfo-light wfo-light-red"><span class="wfo-dot"></span>red</td>' in picked
    assert "1.00%" in picked  # the spread as a rate
    grid = lights_grid_html(diagnostics, names)
    assert grid.index(hostile.replace("<", "&lt;").replace(">", "&gt;")) < grid.index("Beta")
