"""End to end: `wfo run` on the sample through a real Papermill kernel; the report in Chromium."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.e2e

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil
    import sys

    out = tmp_path_factory.mktemp("outputs")
    wfo = (
        str(Path(sys.executable).parent / "wfo")
        if (Path(sys.executable).parent / "wfo").exists()
        else shutil.which("wfo")
    )
    result = subprocess.run(
        [wfo, "run", "parameters/default.yaml", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip().splitlines()[-1])
    assert report.name == "report.html"
    assert report.parent.parent == out
    return report.parent


def test_run_writes_report_results_and_manifest(sample_run: Path) -> None:
    names = {p.name for p in sample_run.iterdir()}
    assert {"report.html", "valuation.ipynb", "manifest.json", "results"} <= names
    assert not list(sample_run.parent.glob(".*.partial"))
    valuations = pl.read_parquet(sample_run / "results" / "valuations.parquet")
    # every company of the input universe, once per method: valued or excluded with a reason
    assert valuations.height == 40 * 3
    dcf = valuations.filter(pl.col("method") == "dcf")
    valued = dcf.filter(pl.col("status") == "valued")
    assert valued.height == 36
    assert (valued["value_per_share"] > 0).all()
    excluded = dict(
        dcf.filter(pl.col("status") == "excluded").select("company_id", "reason").rows()
    )
    assert set(excluded) == {"C012", "C027", "C033", "C038"}
    assert "not contiguous" in excluded["C038"]
    manifest = json.loads((sample_run / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    assert set(manifest["inputs_sha256"]) == {"companies", "financials", "peers", "balance_sheet"}
    assert [s["step"] for s in manifest["steps"]] == ["load", "validate", "value"]
    report = (sample_run / "report.html").read_text()
    assert report.count("Plotly.newPlot") == 2
    assert report.count('id="wfo-plotlyjs"') == 1  # plotly.js embedded exactly once
    # No script or stylesheet is fetched from anywhere (plotly.js' own source mentions CDN URLs for
    # map tiles it never loads here, so look at tags, not at strings).
    assert re.findall(r"<(?:script|link)[^>]+(?:src|href)=[\"']?https?:", report) == []


def test_report_opens_offline_in_chromium(sample_run: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((sample_run / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2")
        drawn = page.eval_on_selector_all(
            ".js-plotly-plot", "els => els.map(e => e.querySelectorAll('g.trace path').length)"
        )
        code_cells = page.eval_on_selector_all(".jp-CodeCell .jp-InputArea", "els => els.length")
        browser.close()
    assert [u for u in requests if not u.startswith("file://")] == []
    assert errors == []
    assert len(drawn) == 2
    assert all(n > 0 for n in drawn)
    assert code_cells == 0


def test_failed_run_keeps_notebook_and_marks_report(
    tmp_path: Path, wfo_bin: str, chromium: str
) -> None:
    params = tmp_path / "bad.yaml"
    params.write_text("data:\n  companies: missing.csv\n", encoding="utf-8")
    out = tmp_path / "out"
    result = subprocess.run(
        [wfo_bin, "run", str(params), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2  # bad input, even though it surfaced inside the kernel
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("wfo: error:")]
    assert len(lines) == 1
    assert "DataFormatError: companies: file not found:" in lines[0]
    assert "Traceback" not in result.stderr
    (run_dir,) = out.iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"]["details"]["ename"] == "DataFormatError"
    nb = json.loads((run_dir / "valuation.ipynb").read_text())
    failing = [
        c for c in nb["cells"] if c.get("metadata", {}).get("papermill", {}).get("exception")
    ]
    assert len(failing) == 1
    assert 'wfo.run_step(ctx, "load")' in "".join(failing[0]["source"])

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto((run_dir / "report.html").as_uri())
        banner = page.inner_text("#wfo-run-failed")
        shown_code = page.inner_text(".wfo-failed-cell")
        browser.close()
    assert "This run FAILED" in banner
    assert "DataFormatError" in banner
    assert 'run_step(ctx, "load")' in shown_code
