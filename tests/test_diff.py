"""`wfo diff`: summary first, --changed-only, blended values, and sequential attribution.

Attribution re-values with the library's validate and value functions while the differences
between two runs are applied one at a time; the parts must sum to the total change to the cent.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfo_kit.attribution import attribute, plan_steps, value_settings
from wfo_kit.cli import main
from wfo_kit.config import load_config
from wfo_kit.io import load_tables


@pytest.fixture(scope="module")
def sample() -> tuple[dict[str, pl.DataFrame], dict]:
    config = load_config(Path(__file__).parent.parent / "parameters" / "default.yaml")
    return load_tables(config.data), value_settings(config.model_dump(mode="json"))


def _cents(frame: pl.DataFrame, column: str) -> pl.Expr:
    return (pl.col(column) * 100).round().cast(pl.Int64)


def assert_parts_sum(parts: pl.DataFrame, values: pl.DataFrame) -> int:
    """Every company valued throughout: its parts sum to its change, to the cent (integers)."""
    sums = parts.group_by("company_id").agg(_cents(parts, "change").sum().alias("parts"))
    both = values.filter(pl.col("note").is_null()).join(sums, on="company_id", how="left")
    both = both.with_columns(_cents(both, "change").alias("total"))
    bad = both.filter(pl.col("parts").fill_null(0) != pl.col("total"))
    assert bad.height == 0, bad
    # and the total is run B's value minus run A's, to the cent
    check = both.with_columns((_cents(both, "base_b") - _cents(both, "base_a")).alias("ab"))
    assert (check["ab"] == check["total"]).all()
    return both.height


CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "discount_rate": st.floats(0.06, 0.14),
        "terminal_growth": st.floats(0.0, 0.03),
        "precedence": st.sampled_from(["config", "rows", ["discount_rate"]]),
        "timing": st.just("mid_year"),
        "blend": st.sampled_from(
            [{"dcf": 0.6, "comparables": 0.3, "asset": 0.1}, {"dcf": 1.0}, {"comparables": 1.0}]
        ),
        "statistic": st.sampled_from(["mean", "harmonic_mean"]),
        "revenue_scale": st.floats(0.8, 1.25),
    },
)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=CHANGES)
def test_attribution_parts_sum_to_the_total_for_random_changes(
    sample: tuple[dict[str, pl.DataFrame], dict], changes: dict
) -> None:
    tables_a, settings_a = sample
    settings_b = copy.deepcopy(settings_a)
    tables_b = dict(tables_a)
    valuation = settings_b["valuation"]
    for key in ("discount_rate", "terminal_growth", "precedence", "timing", "blend"):
        if key in changes:
            valuation[key] = changes[key]
    if "statistic" in changes:
        valuation["comparables"]["statistic"] = changes["statistic"]
    if "revenue_scale" in changes:
        scale = changes["revenue_scale"]
        tables_b["financials"] = tables_a["financials"].with_columns(
            pl.col("ebit", "ebitda", "revenue") * scale
        )
    parts, values = attribute(tables_a, tables_b, settings_a, settings_b)
    steps = plan_steps(tables_a, tables_b, settings_a, settings_b)
    # one part per cause and company, in the documented order: inputs, parameters, weights
    kinds = [s.kind for s in steps]
    assert kinds == sorted(kinds, key=["input", "parameter", "weights"].index)
    assert parts["cause"].n_unique() == len(steps)
    assert assert_parts_sum(parts, values) >= 30


def test_no_difference_attributes_nothing(sample: tuple[dict[str, pl.DataFrame], dict]) -> None:
    tables, settings = sample
    parts, values = attribute(tables, tables, settings, settings)
    assert parts.height == 0
    assert (values["change"].drop_nulls() == 0).all()


def test_a_parameter_invalid_alone_is_applied_with_the_next(
    sample: tuple[dict[str, pl.DataFrame], dict],
) -> None:
    tables, settings = sample
    other = copy.deepcopy(settings)
    # forecast: drivers with terminal: exit_multiple is refused, so switching from
    # (explicit, exit_multiple) to (drivers, gordon) cannot take `forecast` alone first.
    settings = copy.deepcopy(settings)
    settings["valuation"]["terminal"] = "exit_multiple"
    settings["valuation"]["exit_multiple"] = 9.0
    other["valuation"]["forecast"] = "drivers"
    other["valuation"]["exit_multiple"] = 9.0
    parts, values = attribute(tables, tables, settings, other)
    assert parts["cause"].unique().to_list() == ["valuation.forecast + valuation.terminal"]
    assert assert_parts_sum(parts, values) > 0


# --------------------------------------------------------------------------------------------
# Two real runs (real kernels, tests/conftest.py two_runs): wfo diff from their manifests


def test_wfo_diff_summary_attribution_and_html(
    two_runs: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], chromium: str
) -> None:
    out, a, b = two_runs
    page = out / "d.html"
    assert main(["diff", a, b, "--output", str(out), "--html", str(page)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith(f"diff {a} -> {b}: 38 companies have a blended value in both runs")
    assert lines[1] == "largest moves (blended value per share):"
    assert "why the values moved" in text
    for cause in ("input: financials", "valuation.discount_rate", "valuation.precedence",
                  "method weights"):  # fmt: skip
        assert cause in text

    from wfo_kit.history import diff_attribution

    attribution = diff_attribution(out, a, b)
    assert attribution.reason is None
    parts, values = attribution.parts, attribution.values
    assert parts is not None
    assert values is not None
    assert assert_parts_sum(parts, values) == 38
    # the total is the change between the blends the runs recorded
    recorded = [pl.read_parquet(out / r / "results" / "blend.parquet") for r in (a, b)]
    c001 = [f.filter(pl.col("company_id") == "C001")["base"][0] for f in recorded]
    row = values.filter(pl.col("company_id") == "C001").row(0, named=True)
    assert round(row["change"] * 100) == round(c001[1] * 100) - round(c001[0] * 100)
    # only C001's financials changed: that input moves C001 and nobody else
    inputs = parts.filter(pl.col("cause") == "input: financials")
    assert inputs.filter(pl.col("change") != 0)["company_id"].to_list() == ["C001"]

    html = page.read_text()
    assert 'id="wfo-waterfall"' in html
    assert "input: financials" in html
    # run B's report.title holds markup: the parameters table shows it as text
    assert "<b>test</b>" not in html
    assert "PDF &lt;b&gt;test&lt;/b&gt; portfolio" in html
    assert "http://" not in html.split('id="wfo-plotlyjs"')[0]
    # drawn offline in headless Chromium: the waterfall's SVG with its cause labels
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--virtual-time-budget=8000", "--dump-dom", page.as_uri()],
        check=True, capture_output=True, text=True, timeout=90,
    ).stdout  # fmt: skip
    drawn = dom.split('id="wfo-waterfall"')[1]
    assert 'class="main-svg"' in drawn
    assert ">input: financials<" in drawn
    assert ">method weights<" in drawn


def test_wfo_diff_changed_only(
    two_runs: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, a, _ = two_runs
    assert main(["diff", a, a, "--output", str(out), "--changed-only", "--html"]) == 0
    text = capsys.readouterr().out
    page = out / f"diff-{a}-{a}.html"  # the default file, beside the runs
    assert text.splitlines()[-1] == f"html: {page}"
    assert "0 changed by a cent or more" in page.read_text()
    assert "0 changed by a cent or more per share, 38 unchanged" in text
    assert "largest moves" not in text
    assert "C001" not in text  # nothing changed, so no company is listed


def test_wfo_diff_refuses_to_attribute_after_an_input_file_changed(
    two_runs: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, a, b = two_runs
    copy_root = tmp_path / "out"
    shutil.copytree(out, copy_root)
    manifest = json.loads((copy_root / a / "manifest.json").read_text())
    financials = Path(manifest["config"]["data"]["financials"]["path"])
    original = financials.read_bytes()
    try:
        financials.write_bytes(original + b"\n")
        assert main(["diff", a, b, "--output", str(copy_root)]) == 0
    finally:
        financials.write_bytes(original)
    text = capsys.readouterr().out
    assert (
        f"why the values moved: not attributed: the input files of run {a} changed since it ran "
        "(financials)" in text
    )
    # the recorded values are still compared
    assert "blended values per share" in text


def test_wfo_diff_says_when_a_run_cannot_be_reproduced(
    two_runs: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, a, b = two_runs
    copy_root = tmp_path / "out"
    shutil.copytree(out, copy_root)
    blend = copy_root / b / "results" / "blend.parquet"
    frame = pl.read_parquet(blend)
    frame.with_columns(
        pl.when(pl.col("company_id") == "C002").then(pl.col("base") + 1).otherwise("base")
    ).write_parquet(blend)
    assert main(["diff", a, b, "--output", str(copy_root)]) == 0
    text = capsys.readouterr().out
    assert "does not give its recorded blended values (C002:" in text
    assert np.isfinite(frame["base"].drop_nulls().to_numpy()).all()
