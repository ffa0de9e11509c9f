"""What a parameters file may reach: paths relative to it, and confinement to one folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SAMPLE
from wfo_kit.cli import main
from wfo_kit.config import load_config, resolve_config
from wfo_kit.errors import ConfigurationError

TABLES = ("companies", "financials", "peers", "balance_sheet")


@pytest.fixture
def jail(tmp_path: Path) -> Path:
    """A confinement folder holding the sample tables and a parameters file that names them."""
    folder = tmp_path / "jail"
    (folder / "data").mkdir(parents=True)
    for table in TABLES:
        shutil.copy(SAMPLE / f"{table}.csv", folder / "data" / f"{table}.csv")
    (folder / "base.yaml").write_text(
        "data:\n" + "".join(f"  {t}: data/{t}.csv\n" for t in TABLES), encoding="utf-8"
    )
    return folder


def write(folder: Path, text: str, name: str = "p.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    return lines[0]


def test_output_root_is_relative_to_its_parameters_file(tmp_path: Path, jail: Path) -> None:
    params = write(jail, "extends: base.yaml\noutput:\n  root: runs\n")
    assert load_config(params).output.root == str(jail / "runs")
    assert load_config(params, sets=["output.root=elsewhere"]).output.root == "elsewhere"


def test_cache_dir_is_relative_to_its_parameters_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    params = write(tmp_path / "sub", "cache:\n  dir: steps\n", "p.yaml")
    assert load_config(params).cache.dir == str(tmp_path / "sub" / "steps")


def test_inside_the_folder_everything_works(
    jail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write(jail, "extends: base.yaml\noutput:\n  root: runs\n")
    quarantine = jail / "runs" / "q.csv"
    code = main(["validate", str(params), "--confine", str(jail), "--quarantine", str(quarantine)])
    assert code == 0
    capsys.readouterr()
    config = load_config(params, confine=jail)
    assert config.security.confine == str(jail.resolve())
    assert config.data.companies.path == str(jail / "data" / "companies.csv")
    # With no output.root set, a confined run writes inside the folder.
    plain = write(jail, "extends: base.yaml\n", "plain.yaml")
    assert load_config(plain, confine=jail).output.root == str(jail / "outputs")


LEAVING = {
    "data-absolute": (
        "data:\n  companies: /etc/hostname\n",
        "data.companies: '/etc/hostname' is an absolute path",
    ),
    "data-dotdot": (
        "data:\n  companies: ../outside.csv\n",
        "data.companies: '../outside.csv' is a path through `..`",
    ),
    "data-inner-dotdot": (
        "data:\n  companies: data/../../outside.csv\n",
        "data.companies: 'data/../../outside.csv' is a path through `..`",
    ),
    "sqlite-absolute": (
        "data:\n  peers: {url: 'sqlite:////etc/x.db', table: p}\n",
        "data.peers: '/etc/x.db' is an absolute path",
    ),
    "duckdb-dotdot": (
        "data:\n  peers: {url: 'duckdb:///../x.duckdb', table: p}\n",
        "data.peers: '../x.duckdb' is a path through `..`",
    ),
    "fallback-absolute": (
        "data:\n  peers: {path: data/peers.csv, fallback: /etc/passwd}\n",
        "data.peers.fallback: '/etc/passwd' is an absolute path",
    ),
    "extends-absolute": (
        "extends: /etc/wfo.yaml\n",
        "extends in p.yaml: '/etc/wfo.yaml' is an absolute path",
    ),
    "extends-dotdot": (
        "extends: ../base.yaml\n",
        "extends in p.yaml: '../base.yaml' is a path through `..`",
    ),
    "notebook-absolute": (
        "report:\n  notebook: /tmp/evil.ipynb\n",
        "report.notebook: '/tmp/evil.ipynb' is an absolute path",
    ),
    "output-root": ("output:\n  root: /\n", "output.root: '/' is an absolute path"),
    "output-dotdot": ("output:\n  root: ../out\n", "output.root: '../out' is a path through `..`"),
    "cache-absolute": ("cache:\n  dir: /etc/wfo\n", "cache.dir: '/etc/wfo' is an absolute path"),
    "cache-dotdot": ("cache:\n  dir: ../cache\n", "cache.dir: '../cache' is a path through `..`"),
}


@pytest.mark.parametrize(("text", "expected"), LEAVING.values(), ids=LEAVING.keys())
def test_paths_that_leave_the_folder_are_refused(
    jail: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write(jail, "extends: base.yaml\n" + text if "extends" not in text else text)
    with pytest.raises(ConfigurationError, match="confinement"):
        resolve_config(params, confine=jail)
    assert main(["validate", str(params), "--confine", str(jail)]) == 2
    line = one_error(capsys)
    assert line.startswith(f"wfo: error: {expected}"), line
    assert f"refused in confinement to {jail.resolve()}" in line


@pytest.mark.parametrize("what", ["data", "extends", "notebook"])
def test_links_that_leave_the_folder_are_refused(
    jail: Path, tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("company_id\nX\n")
    (outside / "base.yaml").write_text("valuation:\n  terminal_growth: 0.01\n")
    (outside / "evil.ipynb").write_text("{}")
    target = {"data": "secret.csv", "extends": "base.yaml", "notebook": "evil.ipynb"}[what]
    (jail / "link").symlink_to(outside / target)
    text = {
        "data": "extends: base.yaml\ndata:\n  companies: link\n",
        "extends": "extends: link\n",
        "notebook": "extends: base.yaml\nreport:\n  notebook: link.ipynb\n",
    }[what]
    if what == "notebook":
        (jail / "link").rename(jail / "link.ipynb")
    params = write(jail, text)
    assert main(["validate", str(params), "--confine", str(jail)]) == 2
    line = one_error(capsys)
    assert f"is outside the confinement folder {jail.resolve()}" in line, line
    assert str(outside) in line


def test_the_parameters_file_itself_must_be_inside(
    jail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write(tmp_path, f"extends: {jail / 'base.yaml'}\n")
    assert main(["validate", str(params), "--confine", str(jail)]) == 2
    assert "parameters file: " in one_error(capsys)


def test_a_parameters_file_cannot_set_or_lift_confinement(
    jail: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write(jail, "extends: base.yaml\nsecurity:\n  confine: null\n")
    assert main(["validate", str(params)]) == 2
    assert "sets `security`, which only whoever runs wfo may set" in one_error(capsys)
    # The environment confines as --confine does.
    escaping = write(jail, "extends: base.yaml\ndata:\n  companies: /etc/hostname\n", "e.yaml")
    monkeypatch.setenv("WFO_SECURITY__CONFINE", str(jail))
    assert main(["validate", str(escaping)]) == 2
    assert "is an absolute path, refused in confinement" in one_error(capsys)


def test_a_report_notebook_must_be_a_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report.notebook: /etc/passwd` is refused without a byte of the file reaching any output."""
    params = write(
        tmp_path,
        f"extends: {Path('parameters/default.yaml').resolve()}\nreport:\n  notebook: /etc/passwd\n",
    )
    assert main(["run", str(params), "--output", str(tmp_path / "out")]) == 2
    line = one_error(capsys)
    assert "report.notebook" in line
    assert "root:" not in line
    assert not (tmp_path / "out").exists()


def test_a_file_posing_as_a_notebook_never_reaches_an_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.ipynb").write_text("root:x:0:0:SECRET-LINE\n")
    params = write(
        tmp_path,
        f"extends: {Path('parameters/default.yaml').resolve()}\nreport:\n  notebook: x.ipynb\n",
    )
    assert main(["run", str(params), "--output", str(tmp_path / "out")]) == 2
    line = one_error(capsys)
    assert line == (
        f"wfo: error: report.notebook {tmp_path / 'x.ipynb'} is not a Jupyter notebook "
        "(NotJSONError)"
    )
    assert not (tmp_path / "out").exists()
