"""Docs generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from wfo_kit.schemas import contract_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_data_contract_doc_is_current() -> None:
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert doc == contract_markdown() + "\n", "run `python -m wfo_kit.schemas` to regenerate"


def test_sample_generator_reproduces_the_bundled_files(tmp_path: Path) -> None:
    from wfo_kit.sample_data.generate import build, write

    write(build(), tmp_path)
    for name in ("companies", "financials", "peers", "balance_sheet"):
        bundled = ROOT / "wfo_kit" / "sample_data" / f"{name}.csv"
        assert (tmp_path / f"{name}.csv").read_bytes() == bundled.read_bytes(), name
