from __future__ import annotations

import os
import shutil
from pathlib import Path

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


@pytest.fixture(scope="session")
def sample_ctx() -> object:
    """The bundled sample loaded, validated and valued once per session (read-only: tests that
    change frames make their own)."""
    from wfo_kit.config import load_config
    from wfo_kit.pipeline import RunContext, run_pipeline

    return run_pipeline(RunContext(load_config()), ["load", "validate", "value"])
