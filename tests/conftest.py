from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "wfo_kit" / "sample_data"


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled sample data."""
    target = tmp_path / "data"
    shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    return target


@pytest.fixture
def wfo_bin() -> str:
    """The installed console script of the environment running the tests."""
    import sys

    candidate = Path(sys.executable).parent / "wfo"
    return str(candidate) if candidate.exists() else shutil.which("wfo") or "wfo"


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("WFO_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (WFO_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


_FAST = "  monte_carlo: {enabled: false}\n  sensitivity: {enabled: false}\n"


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Two real runs of the sample through real kernels (output root, run A, run B).

    Run B reads a copy of the financials where C001 grew 20%, sets its own discount rate (and
    lets it win) and other blend weights (tests/test_diff.py); it also writes the xlsx workbook
    and prints report.pdf with headless Chromium when one is installed
    (tests/test_run_outputs.py). Risk analyses are off: they do not enter the blend.
    """
    from wfo_kit.config import resolve_config
    from wfo_kit.pdf import CANDIDATES
    from wfo_kit.runs import run_report

    has_browser = "true" if any(shutil.which(c) for c in CANDIDATES) else "false"
    base = tmp_path_factory.mktemp("diff")
    data = base / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    grown = pl.read_csv(data / "financials.csv").with_columns(
        pl.when(pl.col("company_id") == "C001")
        .then(pl.col("revenue", "ebit", "ebitda") * 1.2)
        .otherwise(pl.col("revenue", "ebit", "ebitda"))
    )
    grown.write_csv(data / "financials_v2.csv")
    # An untrusted name that a spreadsheet would run as a formula (the xlsx must not).
    companies = data / "companies.csv"
    evil = '"=HYPERLINK(""http://example.invalid"",""click"")"'
    companies.write_text(companies.read_text().replace("Harbor Foods", evil, 1))
    tables = "".join(
        f"  {t}: data/{t}.csv\n" for t in ("companies", "peers", "balance_sheet")
    )  # fmt: skip
    (base / "a.yaml").write_text(
        f"data:\n{tables}  financials: data/financials.csv\nvaluation:\n{_FAST}"
    )
    (base / "b.yaml").write_text(
        f"data:\n{tables}  financials: data/financials_v2.csv\nvaluation:\n{_FAST}"
        "  discount_rate: 0.09\n  precedence: [discount_rate]\n"
        "  blend: {dcf: 0.6, comparables: 0.3, asset: 0.1}\n"
        "output:\n  formats: [parquet, xlsx]\n"
        f"report:\n  title: PDF <b>test</b> portfolio\n  pdf: {has_browser}\n"
    )
    out = base / "out"
    ids = []
    for name in ("a", "b"):
        result = run_report(
            resolve_config(base / f"{name}.yaml"), output_root=out, reuse_kernel=True
        )
        assert result.status == "succeeded", result.error
        ids.append(result.run_id)
    return out, ids[0], ids[1]


@pytest.fixture(scope="session")
def sample_ctx() -> object:
    """The bundled sample loaded, validated and valued once per session (read-only: tests that
    change frames make their own)."""
    from wfo_kit.config import load_config
    from wfo_kit.pipeline import RunContext, run_pipeline

    return run_pipeline(RunContext(load_config()), ["load", "validate", "value"])
