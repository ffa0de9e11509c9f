"""`--env NAME` / WFO_ENV: `<params stem>.<NAME>.yaml` between the parameters file and WFO_ vars."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfo_kit.cli import main
from wfo_kit.config import resolve_config
from wfo_kit.errors import ConfigurationError


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(
        "report: {title: Base, detail_limit: 7}\noutput: {root: out}\n", encoding="utf-8"
    )
    (tmp_path / "p.prod.yaml").write_text(
        "report: {title: Production}\noutput: {root: prod-out}\n", encoding="utf-8"
    )
    return tmp_path / "p.yaml"


def test_environment_file_sits_between_the_file_and_environment_variables(files: Path) -> None:
    plain = resolve_config(files, environ={})
    assert plain.config.report.title == "Base"
    prod = resolve_config(files, environ={}, env_name="prod")
    assert prod.config.report.title == "Production"
    assert prod.config.report.detail_limit == 7  # still the parameters file's
    assert prod.config.output.root == str(files.parent / "prod-out")  # relative to its file
    assert prod.sources["report.title"] == f"env-file:{files.parent / 'p.prod.yaml'}"
    assert prod.sources["report.detail_limit"] == f"file:{files}"
    above = resolve_config(files, environ={"WFO_ENV": "prod", "WFO_REPORT__TITLE": "Env var"})
    assert above.config.report.title == "Env var"
    assert above.config.output.root == str(files.parent / "prod-out")  # WFO_ENV chose the file
    cli = resolve_config(files, environ={}, env_name="prod", sets=["report.title=Set"])
    assert cli.config.report.title == "Set"


def test_config_show_names_the_environment_file_as_a_source(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WFO_ENV", raising=False)
    assert main(["config", "show", str(files), "--env", "prod", "--sources"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("report.title"))
    assert line.split() == [
        "report.title",
        '"Production"',
        f"[env-file:{files.parent}/p.prod.yaml]",
    ]
    monkeypatch.setenv("WFO_ENV", "staging")
    assert main(["config", "show", str(files)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("wfo: error: no environment file ")
    assert "p.staging.yaml" in error
    assert len(error.strip().splitlines()) == 1


def test_an_environment_name_cannot_name_a_path(files: Path) -> None:
    with pytest.raises(ConfigurationError, match="must be letters, digits"):
        resolve_config(files, environ={}, env_name="../../etc/x")


def test_the_shipped_environment_file_of_the_readme() -> None:
    from tests.conftest import ROOT

    default = ROOT / "parameters" / "default.yaml"
    quick = resolve_config(default, environ={}, env_name="quick")
    assert not quick.config.valuation.monte_carlo.enabled
    source = quick.sources["valuation.monte_carlo.enabled"]
    assert source == f"env-file:{ROOT / 'parameters' / 'default.quick.yaml'}"
    assert resolve_config(default, environ={}).config.valuation.monte_carlo.enabled


def test_batch_layers_the_environment_file_of_each_parameters_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from tests.builders import notebook, params

    monkeypatch.delenv("WFO_ENV", raising=False)
    quick = notebook(tmp_path / "quick.ipynb", "print(report['title'])")
    first = params(tmp_path, "a", f"report:\n  notebook: {quick}\n  title: Base A\n")
    second = params(tmp_path, "b", f"report:\n  notebook: {quick}\n")
    (tmp_path / "a.prod.yaml").write_text("report: {title: Production A}\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(["batch", str(first), str(second), "--env", "prod", "--workers", "1",
                 "--output", str(out)])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert code == 1, stderr  # b has no b.prod.yaml: it fails before running, a still runs
    assert "batch: 1 succeeded, 0 skipped (already done), 1 failed" in stdout
    assert f"no environment file {tmp_path / 'b.prod.yaml'}" in stderr
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["report"]["title"] == "Production A"
    assert manifest["sources"]["report.title"] == f"env-file:{tmp_path / 'a.prod.yaml'}"
    assert "Production A" in (run / "valuation.ipynb").read_text(encoding="utf-8")
