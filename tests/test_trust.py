"""The trust boundary for data: untrusted strings reach the report and the files as inert text.

Masked columns appear in no file of a run folder; names holding markup are plain text in every
chart (headless Chromium); CSV cells that a spreadsheet would run are neutralised; a shared
report shows no absolute path of the machine that ran it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest

from tests.test_e2e import BROWSER_ARGS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "wfo_kit" / "sample_data"
LINK = '<a href="https://example.invalid">x</a>'
HOSTILE_NAMES = {
    "C001": LINK,
    "C002": "<b>bold</b>",
    "C003": "<img src=x onerror=alert(1)>",
    "C004": '=HYPERLINK("http://example.invalid","click")',
    "C005": "</script><script>alert(2)</script>",
}


def _wfo(*args: str) -> subprocess.CompletedProcess[str]:
    wfo = str(Path(sys.executable).parent / "wfo")
    return subprocess.run([wfo, *args], capture_output=True, text=True, timeout=600, check=False)


def _run(root: Path, params: str) -> Path:
    """`wfo run` of a parameters file written under ``root``; the run folder."""
    path = root / "params.yaml"
    path.write_text(params, encoding="utf-8")
    result = _wfo("run", str(path), "--output", str(root / "outputs"))
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1]).parent


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample, every output format, ``report.masked_columns: [name]``."""
    root = tmp_path_factory.mktemp("masked")
    return _run(
        root,
        f"extends: {ROOT / 'parameters' / 'default.yaml'}\n"
        "report:\n  masked_columns: [name]\n"
        "output:\n  formats: [parquet, csv, json, xlsx]\n",
    )


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample with markup and formulas as company names, data beside the parameters file."""
    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.py", "*.md", "__pycache__"))
    companies = pl.read_csv(data / "companies.csv", infer_schema=False)
    companies = companies.with_columns(
        pl.col("company_id").replace_strict(HOSTILE_NAMES, default=pl.col("name")).alias("name")
    )
    companies.write_csv(data / "companies.csv")
    tables = ("companies", "financials", "peers", "balance_sheet")
    return _run(
        root,
        f"extends: {ROOT / 'parameters' / 'default.yaml'}\n"
        "data:\n"
        + "".join(f"  {t}: data/{t}.csv\n" for t in tables)
        + "report:\n  companies: [C001, C002, C003, C004, C005]\n"
        "output:\n  formats: [parquet, csv, json]\n",
    )


# ------------------------------------------------------------------------------------------
# 5. Masked columns


@pytest.mark.e2e
def test_masked_values_appear_in_no_file_of_the_run_folder(masked_run: Path) -> None:
    names = pl.read_csv(SAMPLE / "companies.csv", infer_schema=False)["name"]
    secrets = sorted({n.strip() for n in names.drop_nulls().to_list() if n.strip()})
    assert len(secrets) >= 38
    files = [p for p in masked_run.rglob("*") if p.is_file()]
    assert {"report.html", "valuation.ipynb", "log.jsonl", "manifest.json", "metrics.json"} <= {
        p.name for p in files
    }
    assert {p.suffix for p in files} >= {".parquet", ".csv", ".json"}
    for path in files:
        text = path.read_bytes()
        leaked = [s for s in secrets if s.encode() in text]
        assert leaked == [], f"{path.relative_to(masked_run)}: {leaked[:3]}"
    # Parquet is compressed, so read it too: no cell of any result table holds a masked value.
    for path in (masked_run / "results").glob("*.parquet"):
        frame = pl.read_parquet(path)
        for column, dtype in frame.schema.items():
            if dtype == pl.String:
                assert not frame[column].is_in(secrets).any(), (path.name, column)
    # So is the xlsx workbook (a zip): every text cell of every sheet.
    import openpyxl

    workbook = openpyxl.load_workbook(masked_run / "results" / "results.xlsx", read_only=True)
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows(values_only=True):
            assert not set(row) & set(secrets), sheet.title
    dcf = pl.read_parquet(masked_run / "results" / "dcf_detail.parquet")
    assert set(dcf["name"].drop_nulls()) == {"***"}
    assert (dcf["value_per_share"].drop_nulls() > 0).all()  # only the masked column changes
    report = (masked_run / "report.html").read_text(encoding="utf-8")
    assert "***" in report


def test_masked_value_of_a_long_table_row_is_masked() -> None:
    from wfo_kit.trust import mask_frame

    quarantine = pl.DataFrame(
        {
            "company_id": ["C1", "C2"],
            "column": ["name", "beta"],
            "value": ["Secret Co", "-9"],
            "reason": ["blank", "beta below 0"],
        }
    )
    assert mask_frame(quarantine, ["name"])["value"].to_list() == ["***", "-9"]


def test_masking_the_company_id_is_refused() -> None:
    from wfo_kit.config import ReportConfig
    from wfo_kit.errors import ConfigurationError

    with pytest.raises((ConfigurationError, ValueError), match="company_id"):
        ReportConfig(masked_columns=["company_id"])


# ------------------------------------------------------------------------------------------
# 6. Plotly is not an HTML escaper


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list | tuple):
        return [s for v in node for s in _strings(v)]
    return []


def test_every_chart_escapes_untrusted_strings() -> None:
    """Every string a chart takes from data reaches the figure escaped (one helper)."""
    import wfo_kit as wfo
    from wfo_kit import charts

    bad = "<b>x</b>"
    config = wfo.load_config(ROOT / "parameters" / "default.yaml")
    ctx = wfo.run_pipeline(wfo.RunContext(config), ["load", "validate", "value"])
    ids = ["C001", "C002"]
    hostile = {c: f"{c}{bad}" for c in ctx["input_companies"]["company_id"]}

    def hostile_ids(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col("company_id").replace(hostile))

    names = hostile_ids(
        ctx["input_companies"].select(
            "company_id",
            pl.lit(LINK).alias("name"),
            pl.lit(bad).alias("sector"),
            pl.lit(bad).alias("currency"),
        )
    )
    picked = [hostile[c] for c in ids]
    scenarios = ctx["scenarios"].with_columns(pl.lit(bad).alias("scenario"))
    liquidation = ctx["liquidation_waterfall"].with_columns(pl.lit(bad).alias("item"))
    bridge = ctx["equity_bridge"].with_columns(pl.lit(bad).alias("item"))
    valuations = ctx["valuations"].with_columns(
        pl.when(pl.col("method") == "asset").then(pl.lit(bad)).otherwise("method").alias("method")
    )
    figures = [
        go.Figure(charts.value_per_share_bars(hostile_ids(valuations), names)),
        go.Figure(
            charts.football_field(hostile_ids(valuations), hostile_ids(ctx["blend"]), names, picked)
        ),
        go.Figure(charts.bridge_waterfall(hostile_ids(bridge), names, picked)),
        go.Figure(charts.sensitivity_heatmap(hostile_ids(ctx["sensitivity"]), names, picked)),
        go.Figure(
            charts.scenario_bars(
                hostile_ids(scenarios), hostile_ids(ctx["scenario_summary"]), names, picked
            )
        ),
        go.Figure(
            charts.simulation_histogram(
                hostile_ids(ctx["simulation_draws"]), hostile_ids(ctx["simulation"]), names, picked
            )
        ),
        go.Figure(charts.liquidation_waterfall(hostile_ids(liquidation), names, picked)),
        go.Figure(
            charts.upside_ranking(
                wfo.price_against_value(
                    hostile_ids(ctx["blend"]),
                    names.with_columns(pl.lit(10.0).alias("share_price")),
                )
            )
        ),
    ]
    for fig in figures:
        strings = _strings(fig.to_plotly_json())
        assert not [s for s in strings if bad in s or "<a " in s], fig.layout.title.text
        assert any("&lt;b&gt;x&lt;/b&gt;" in s for s in strings), fig.layout.title.text


@pytest.mark.e2e
@pytest.mark.browser
def test_markup_in_names_is_text_in_every_chart(hostile_run: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page()
        requests, errors, dialogs = [], [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((hostile_run / "report.html").as_uri())
        page.wait_for_load_state("load")
        charts = page.eval_on_selector_all(".js-plotly-plot", "els => els.length")
        # hover the first bar of every chart that has bars: hover text is drawn on demand
        page.evaluate(
            """() => document.querySelectorAll('.js-plotly-plot').forEach(gd => {
                 try { Plotly.Fx.hover(gd, [{curveNumber: 0, pointNumber: 0}]); } catch (e) {}
               })"""
        )
        hover = page.eval_on_selector_all(".hoverlayer", "els => els.map(e => e.textContent)")
        links, bold, buttons = [], [], []
        # open each dropdown in turn: every company's label is drawn as a button
        for menu in page.query_selector_all(".updatemenu-header"):
            menu.click()
            links += page.eval_on_selector_all(
                ".js-plotly-plot a",
                "els => els.map(a => [a.className.baseVal ?? a.className,"
                " a.getAttribute('href') || a.getAttribute('xlink:href')])",
            )
            bold += page.eval_on_selector_all(
                ".js-plotly-plot tspan[style*='bold']", "els => els.map(e => e.textContent)"
            )
            buttons += page.eval_on_selector_all(
                ".updatemenu-dropdown-button", "els => els.map(e => e.textContent)"
            )
        # the report's shared company picker (the charts' own dropdowns are left out of the
        # HTML): each company's label is an <option>'s text
        buttons += page.eval_on_selector_all(
            "#wfo-company-picker option", "els => els.map(e => e.textContent)"
        )
        picker_markup = page.eval_on_selector_all(
            "#wfo-company-picker *:not(option)", "els => els.length"
        )
        images = page.eval_on_selector_all("img", "els => els.length")
        scripts = page.eval_on_selector_all("script", "els => els.map(s => s.textContent)")
        browser.close()
    assert charts >= 8
    assert [u for u in requests if not u.startswith("file://")] == []
    assert errors == []
    assert dialogs == []
    # Plotly's own modebar buttons are <a class="modebar-btn"> without an href; nothing else.
    assert [link for link in links if "modebar-btn" not in str(link[0]) or link[1]] == []
    assert bold == []
    assert images == 0
    assert len(buttons) >= 5  # the picker offers the five companies
    assert picker_markup == 0  # no element inside an option: the names stayed text
    for company_id, name in HOSTILE_NAMES.items():
        assert f"{company_id} {name}" in buttons, name  # the label, as text
    assert f"C001 {LINK}" in "".join(hover)  # hover text of the first bar, as text
    assert "alert(2)" not in [s.strip() for s in scripts]  # no </script> broke out


# ------------------------------------------------------------------------------------------
# 7. Formula injection in exported tables


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path: Path) -> None:
    from wfo_kit.io import write_frame

    frame = pl.DataFrame(
        {
            "name": [
                '=HYPERLINK("http://example.invalid","x")',
                "=cmd|' /C calc'!A0",
                "+1+1",
                "-2+3+cmd|' /C calc'!A0",
                "@SUM(A1:A2)",
                "\t=1+1",
                "\r=1+1",
                "-1.5",
                "Acme & Co",
                None,
            ],
            "debt": [-1.5, -2.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -6.0, None],
            "year": [-1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        }
    )
    csv = pl.read_csv(write_frame(frame, tmp_path / "t.csv"), infer_schema=False)
    assert csv["name"].to_list() == [
        '\'=HYPERLINK("http://example.invalid","x")',
        "'=cmd|' /C calc'!A0",
        "'+1+1",
        "'-2+3+cmd|' /C calc'!A0",
        "'@SUM(A1:A2)",
        "'\t=1+1",
        "'\r=1+1",
        "-1.5",  # a plain number is not a formula
        "Acme & Co",
        None,
    ]
    assert csv["debt"][0] == "-1.5"  # numbers are not text: negative numbers stay numbers
    assert csv["year"][0] == "-1"
    # Parquet and JSON keep the raw value
    assert pl.read_parquet(write_frame(frame, tmp_path / "t.parquet")).equals(frame)
    assert pl.read_json(write_frame(frame, tmp_path / "t.json")).equals(frame)


@pytest.mark.e2e
def test_result_csv_of_a_run_holds_no_formula(hostile_run: Path) -> None:
    csv = pl.read_csv(hostile_run / "results" / "dcf_detail.csv", infer_schema=False)
    name = dict(zip(csv["company_id"], csv["name"], strict=True))["C004"]
    assert name == "'" + HOSTILE_NAMES["C004"]
    parquet = pl.read_parquet(hostile_run / "results" / "dcf_detail.parquet")
    assert HOSTILE_NAMES["C004"] in parquet["name"].to_list()


@pytest.mark.e2e
def test_validate_quarantine_csv_holds_no_formula(sample_copy: Path, tmp_path: Path) -> None:
    companies = pl.read_csv(sample_copy / "companies.csv", infer_schema=False)
    hostile_id = "=cmd|' /C calc'!A0"
    companies = companies.with_columns(
        pl.when(pl.col("company_id") == "C001")
        .then(pl.lit(hostile_id))
        .otherwise(pl.col("company_id"))
        .alias("company_id"),
        pl.when(pl.col("company_id") == "C001")
        .then(pl.lit("-5"))
        .otherwise(pl.col("shares_diluted"))
        .alias("shares_diluted"),
    )
    companies.write_csv(sample_copy / "companies.csv")
    params = tmp_path / "p.yaml"
    params.write_text(
        "data:\n"
        + "".join(
            f"  {t}: {sample_copy / t}.csv\n"
            for t in ("companies", "financials", "peers", "balance_sheet")
        ),
        encoding="utf-8",
    )
    target = tmp_path / "q.csv"
    result = _wfo("validate", str(params), "--quarantine", str(target))
    assert target.exists(), result.stderr
    quarantine = pl.read_csv(target, infer_schema=False)
    mine = quarantine.filter(pl.col("company_id").str.contains("calc"))
    assert mine.height >= 1
    assert set(mine["company_id"]) == {"'" + hostile_id}
    assert not quarantine["company_id"].drop_nulls().str.starts_with("=").any()


# ------------------------------------------------------------------------------------------
# 8. Machine paths in shared reports


def _machine_paths(run: Path) -> list[str]:
    return sorted(
        {
            str(run.parent.parent),  # the temporary folder holding parameters and data
            str(Path(run.anchor, *run.parts[1:2])),  # /tmp
            str(ROOT),
            str(Path.home()),
            str(Path.cwd()),
            "/work/",
            "/root/",
        }
        - {"/"}
    )


@pytest.mark.e2e
@pytest.mark.parametrize("which", ["masked_run", "hostile_run"])
def test_report_shows_no_absolute_path_of_the_machine(
    which: str, request: pytest.FixtureRequest
) -> None:
    run: Path = request.getfixturevalue(which)
    report = (run / "report.html").read_text(encoding="utf-8")
    found = {p: report.count(p) for p in _machine_paths(run) if p in report}
    assert found == {}
    # ... yet the metadata still says where inputs and parameters came from, relatively
    assert "params.yaml" in report
    assert "parameters/default.yaml" in report
    expected = (
        "wfo_kit/sample_data/companies.csv" if which == "masked_run" else "data/companies.csv"
    )
    assert expected in report
    manifest = json.loads((run / "manifest.json").read_text())
    assert Path(manifest["config"]["data"]["companies"]["path"]).is_absolute()


def test_shared_path_is_relative_or_a_bare_name(tmp_path: Path) -> None:
    from wfo_kit.trust import shared_path

    assert shared_path(tmp_path / "data" / "c.csv", relative_to=tmp_path) == "data/c.csv"
    assert shared_path(ROOT / "parameters" / "x.yaml") == "parameters/x.yaml"
    assert shared_path("/elsewhere/deep/c.csv", relative_to=tmp_path) == ".../c.csv"
    assert shared_path("data/c.csv") == "data/c.csv"
