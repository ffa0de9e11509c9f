"""The bad-input corpus: each case gives its exact error line or quarantine rows, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from wfo_kit.cli import main

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir())


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(
    case: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = json.loads((case / "expected.json").read_text())
    quarantine_csv = tmp_path / "q.csv"
    workdir = tmp_path / "cwd"  # a refused SQL statement names files relative to it
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    confine = ["--confine", str(case)] if expected.get("confine") else []
    args = ["validate", str(case / "params.yaml"), "--quarantine", str(quarantine_csv), *confine]
    code = main(args)
    out, err = capsys.readouterr()
    # nothing but the audit log (outputs/audit.jsonl, the default output root) lands there
    assert [p.name for p in workdir.iterdir() if p.name != "outputs"] == []
    assert "Traceback" not in out + err
    assert code == expected["exit"], err
    if "stderr" in expected:
        want = expected["stderr"].replace("{dir}", str(case.resolve()))
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        if want.startswith("PREFIX:"):
            assert lines[0].startswith(want.removeprefix("PREFIX:")), lines[0]
        else:
            assert lines[0] == want
    else:
        table = expected.get("table") or expected["quarantine"][0][0]
        got = pl.read_csv(quarantine_csv, infer_schema=False).filter(pl.col("table") == table)
        rows = sorted(got.select("table", pl.col("row").cast(pl.Int64), "check", "reason").rows())
        assert rows == sorted(tuple(r) for r in expected["quarantine"])
    if "valuations" in expected:
        assert sorted(_valuations(case, expected["valuations"])) == sorted(
            tuple(r) for r in expected["valuations"]
        )


def _valuations(case: Path, wanted: list[list]) -> list[tuple]:
    """(company, method, status, reason) of the companies named in ``wanted``, from a run."""
    from wfo_kit.config import load_config
    from wfo_kit.pipeline import RunContext, run_pipeline

    quick = {"sensitivity": {"enabled": False}, "monte_carlo": {"enabled": False}}
    config = load_config(case / "params.yaml", overrides={"valuation": quick})
    ctx = run_pipeline(RunContext(config), ["load", "validate", "value"])
    companies = {r[0] for r in wanted}
    return (
        ctx["valuations"]
        .filter(pl.col("company_id").is_in(companies))
        .select("company_id", "method", "status", "reason")
        .rows()
    )
