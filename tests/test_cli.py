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


def test_a_closed_pipe_ends_a_command_quietly(tmp_path: Path, wfo_bin: str) -> None:
    # `wfo config show ... | head -1` where head has gone before wfo writes: the reader's end of
    # the pipe is closed before the command prints anything.
    proc = subprocess.Popen(
        [wfo_bin, "config", "show", "parameters/default.yaml", "--sources"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=120)
    assert stderr == ""
    assert proc.returncode == 141  # as a Unix tool stopped by SIGPIPE


def test_every_command_is_audited_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    out = tmp_path / "out"
    assert main(["runs", "--output", str(out)]) == 0
    assert main(["diff", "a", "b", "--output", str(out)]) == 2
    quarantine = str(tmp_path / "q.csv")
    validate = ["validate", "parameters/default.yaml", "--quarantine", quarantine]
    assert main([*validate, "--set", f"output.root={out}"]) == 0
    show = ["config", "show", "parameters/default.yaml", "--set", f"output.root={out}"]
    secret_url = [
        "--set",
        "data.peers.url=postgres://me:hunter2@db/x",
        "--set",
        "data.peers.table=p",
    ]
    assert main([*show, *secret_url]) == 0
    capsys.readouterr()
    lines = [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines()]
    assert [(x["command"], x["outcome"], x["exit_code"]) for x in lines] == [
        ("runs", "succeeded", 0),
        ("diff", "failed", 2),
        ("validate", "succeeded", 0),
        ("config", "succeeded", 0),
    ]
    assert lines[1]["error"].startswith("wfo: error: no run 'a'")
    assert all(x["seconds"] >= 0 and x["user"] and x["host"] for x in lines)
    text = (out / "audit.jsonl").read_text()
    assert "hunter2" not in text
    assert "postgres://me:***@db/x" in text


def test_secret_looking_keys_are_masked_in_audited_arguments() -> None:
    from wfo_kit.cli import mask_arguments

    assert mask_arguments(["--set", "report.api_token=abc", "--set", "a.password=x", "run"]) == [
        "--set",
        "report.api_token=***",
        "--set",
        "a.password=***",
        "run",
    ]


@pytest.mark.parametrize("run_id", ["../x", "..", "a/../../b", "/etc"])
def test_run_ids_cannot_name_a_path(
    tmp_path: Path, run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "manifest.json").write_text('{"run_id": "x", "status": "succeeded"}')
    root = tmp_path / "outputs"
    root.mkdir()
    assert main(["runs", "show", run_id, "--output", str(root)]) == 2
    assert main(["diff", run_id, run_id, "--output", str(root)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert all(line.startswith(f"wfo: error: no run {run_id!r} under") for line in err)


def test_importing_the_io_module_leaves_the_umask_alone() -> None:
    import sys

    code = (
        "import os\n"
        "calls = []\n"
        "real = os.umask\n"
        "os.umask = lambda m: calls.append(m) or real(m)\n"
        "import wfo_kit.io, wfo_kit.pipeline, wfo_kit.runs\n"
        "assert calls == [], calls\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.e2e
def test_wfo_run_starts_its_kernel_early_and_once(wfo_bin: str, tmp_path: Path) -> None:
    """`wfo run` starts the kernel before it imports Papermill: still one kernel start, no reuse,
    execution counts from 1 (the early imports are silent), and no kernel left after it exits."""
    import json
    import os

    root = Path(__file__).resolve().parent.parent
    temp = tmp_path / "tmp"
    temp.mkdir()
    params, out = root / "parameters" / "default.yaml", tmp_path / "out"
    result = subprocess.run(
        [wfo_bin, "run", str(params), "--env", "quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip()).parent
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["resources"]["kernel_starts"] == 1
    assert manifest["resources"]["kernel_reuses"] == 0
    notebook = json.loads((run_dir / "valuation.ipynb").read_text())
    counts = [c["execution_count"] for c in notebook["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert not list(temp.glob("wfo-kernel-*")), "the early kernel outlived wfo run"


def test_wfo_processes_skip_the_iri_format_check_and_still_validate_notebooks() -> None:
    """The ``wfo`` command and batch workers keep jsonschema from importing rfc3987-syntax (1.3 s
    of grammar building per process); nbformat still accepts a notebook and rejects a bad one."""
    import sys

    code = (
        "import sys\n"
        "from wfo_kit.kernels import skip_unused_imports\n"
        "skip_unused_imports()\n"
        "import nbformat, papermill, nbconvert\n"
        "assert sys.modules['rfc3987_syntax'] is None\n"
        "nbformat.validate(nbformat.v4.new_notebook())\n"
        "bad = nbformat.v4.new_notebook(); bad.cells = [{'cell_type': 'code'}]\n"
        "try:\n"
        "    nbformat.validate(bad)\n"
        "except nbformat.ValidationError:\n"
        "    print('rejected')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rejected"
    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
    assert scripts["wfo"] == "wfo_kit.cli:console"  # the command skips it, main() alone does not
