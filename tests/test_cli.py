"""The command line: help, one-line errors with exit code 2, no tracebacks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from wfo_kit.cli import main


def run(wfo_bin: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([wfo_bin, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_help_lists_the_commands(wfo_bin: str) -> None:
    result = run(wfo_bin, "--help")
    assert result.returncode == 0
    for command in ("run", "validate", "config"):
        assert command in result.stdout


def test_missing_parameters_file_is_one_line_and_exit_2(wfo_bin: str, tmp_path: Path) -> None:
    result = run(wfo_bin, "run", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("wfo: error: parameters file not found:")
    assert "Traceback" not in result.stderr


def test_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "the following arguments are required: params" in err[0]


def test_validate_prints_quality_and_writes_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "q.csv"
    assert main(["validate", "parameters/default.yaml", "--quarantine", str(target)]) == 0
    out = capsys.readouterr().out
    assert "companies" in out
    assert "quarantine: 4 failed check(s)" in out  # C033 (r <= g) is not a bad row
    assert target.read_text().count("\n") == 5


def test_validate_exits_2_below_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "validate",
            "parameters/default.yaml",
            "--quarantine",
            str(tmp_path / "q.csv"),
            "--set",
            "validation.fail_below=0.95",
        ]
    )
    assert code == 2
    assert "below validation.fail_below 0.95" in capsys.readouterr().err


def test_config_show_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "config",
                "show",
                "parameters/default.yaml",
                "--sources",
                "--set",
                "valuation.timing=mid_year",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert '"mid_year"  [--set]' in out
    assert "[default]" in out


def test_batch_rejects_zero_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", "parameters/default.yaml", "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "wfo: error: --workers must be at least 1"


def test_unknown_run_is_one_line_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "show", "nope", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"wfo: error: no run 'nope' under {tmp_path} (hint: `wfo runs` lists the runs)"]


def test_batch_with_no_matching_files_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", "no/such/*.yaml"]) == 2
    assert (
        capsys.readouterr().err.strip() == "wfo: error: no parameters file matches 'no/such/*.yaml'"
    )
