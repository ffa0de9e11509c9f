"""Outputs people use: the xlsx workbook (output.formats) and the PDF report (report.pdf).

Both come from a real run (tests/conftest.py ``two_runs``: run B writes ``[parquet, xlsx]`` and
prints report.pdf with headless Chromium); the workbook is read back with openpyxl and the PDF
with pypdf.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import openpyxl
import pytest
from pypdf import PdfReader

from wfo_kit.cli import main

PERCENT, MONEY, PER_SHARE, MULTIPLE = "0.00%", "#,##0.0", "#,##0.00", '0.00"x"'


def _column(sheet: openpyxl.worksheet.worksheet.Worksheet, name: str) -> int:
    header = [c.value for c in sheet[1]]
    return header.index(name) + 1


def test_xlsx_workbook_has_a_formatted_sheet_per_result_table(
    two_runs: tuple[Path, str, str],
) -> None:
    out, _, b = two_runs
    results = out / b / "results"
    workbook = openpyxl.load_workbook(results / "results.xlsx")
    tables = sorted(p.stem for p in results.glob("*.parquet"))
    assert sorted(workbook.sheetnames) == tables
    for sheet in workbook.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title  # the header row stays in view
        filters = [t.autoFilter.ref for t in sheet.tables.values() if t.autoFilter is not None]
        assert filters == [sheet.dimensions], sheet.title  # autofilter over the whole table

    valuations = workbook["valuations"]
    row = 2
    expected = {"value_per_share": PER_SHARE, "low": PER_SHARE, "enterprise_value": MONEY,
                "equity_value": MONEY}  # fmt: skip
    for name, number_format in expected.items():
        assert valuations.cell(row, _column(valuations, name)).number_format == number_format
    detail = workbook["dcf_detail"]
    assert detail.cell(2, _column(detail, "discount_rate")).number_format == PERCENT
    assert detail.cell(2, _column(detail, "tax_rate")).number_format == PERCENT
    comparables = workbook["comparables_detail"]
    assert comparables.cell(2, _column(comparables, "base")).number_format == MULTIPLE
    blend = workbook["blend"]
    assert blend.cell(2, _column(blend, "base")).number_format == PER_SHARE
    # numbers are numbers, not text
    assert isinstance(valuations.cell(2, _column(valuations, "enterprise_value")).value, float)


def test_xlsx_never_runs_an_untrusted_formula(two_runs: tuple[Path, str, str]) -> None:
    out, _, b = two_runs
    workbook = openpyxl.load_workbook(out / b / "results" / "results.xlsx")
    detail = workbook["dcf_detail"]
    names = [c.value for c in detail[get_letter(_column(detail, "name"))]]
    evil = next(n for n in names if n and "HYPERLINK" in n)
    assert evil == '\'=HYPERLINK("http://example.invalid","click")'
    for sheet in workbook.worksheets:
        for cells in sheet.iter_rows():
            for cell in cells:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)


def get_letter(index: int) -> str:
    return openpyxl.utils.get_column_letter(index)


def test_report_pdf_is_printed_with_the_charts(
    two_runs: tuple[Path, str, str], chromium: str
) -> None:
    out, _, b = two_runs
    pdf = out / b / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    reader = PdfReader(pdf)
    assert len(reader.pages) > 1
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "PDF <b>test</b> portfolio" in text  # the title, escaped in HTML, printed as text
    assert "C001" in text
    # Every chart was drawn before printing: each chart's title and axis titles (read from the
    # figures in report.html) are text in the PDF, which only a drawn chart puts there.
    html = (out / b / "report.html").read_text(encoding="utf-8")
    pattern = r'"title":\{"text":"((?:[^"\\]|\\.)*)"'
    titles = {json.loads(f'"{t}"') for t in re.findall(pattern, html)}
    titles = {" ".join(t.split()) for t in titles if not set(t) & set("&<>")}
    assert len(titles) >= 5
    flat = " ".join(text.split())
    assert sorted(t for t in titles if t not in flat) == []


@pytest.mark.parametrize("how", ["WFO_CHROMIUM", "PATH"])
def test_pdf_without_chromium_is_one_line_before_the_run(
    how: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    if how == "WFO_CHROMIUM":
        monkeypatch.setenv("WFO_CHROMIUM", str(empty / "chromium"))
        expected = f"wfo: error: WFO_CHROMIUM={str(empty / 'chromium')!r} is not an executable"
    else:
        monkeypatch.delenv("WFO_CHROMIUM", raising=False)
        monkeypatch.setenv("PATH", str(empty))
        expected = "wfo: error: no Chromium found to print report.pdf"
    params = tmp_path / "p.yaml"
    params.write_text(f"output:\n  root: {tmp_path / 'out'}\n")
    code = main(["run", str(params), "--pdf", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1
    assert err[0].startswith(expected)
    assert "Traceback" not in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("2*"))
