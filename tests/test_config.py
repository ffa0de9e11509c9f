"""Layered configuration: precedence, provenance, unknown keys, unsafe YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfo_kit.config import resolve_config
from wfo_kit.errors import ConfigurationError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_layer_overrides_the_one_below(tmp_path: Path) -> None:
    write(
        tmp_path / "base.yaml",
        "valuation:\n  terminal_growth: 0.01\n  discount_rate: 0.08\n"
        "report:\n  title: base\n  cell_timeout: 100\n",
    )
    child = write(
        tmp_path / "child.yaml", "extends: base.yaml\nvaluation:\n  terminal_growth: 0.015\n"
    )
    resolved = resolve_config(
        child,
        environ={"WFO_VALUATION__DISCOUNT_RATE": "0.085", "WFO_REPORT__TITLE": "env"},
        sets=["report.title=cli", "report.cell_timeout=50"],
        overrides={"report": {"cell_timeout": 20}},
    )
    cfg, src = resolved.config, resolved.sources
    assert cfg.valuation.terminal_growth == 0.015
    assert src["valuation.terminal_growth"] == f"file:{child.resolve()}"
    assert cfg.valuation.discount_rate == 0.085
    assert src["valuation.discount_rate"] == "env"
    assert cfg.report.title == "cli"
    assert src["report.title"] == "--set"
    assert cfg.report.cell_timeout == 20
    assert src["report.cell_timeout"] == "override"
    assert src["valuation.timing"] == "default"


def test_set_values_take_the_field_type(tmp_path: Path) -> None:
    cfg = resolve_config(
        None,
        sets=["report.title=1e3", "valuation.terminal_growth=1e-2", "output.formats=[csv, json]"],
        environ={},
    ).config
    assert cfg.report.title == "1e3"
    assert cfg.valuation.terminal_growth == 0.01
    assert cfg.output.formats == ["csv", "json"]


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    params = write(tmp_path / "p.yaml", "valuation:\n  terminal_growht: 0.02\n")
    with pytest.raises(
        ConfigurationError,
        match=r"unknown configuration key 'valuation.terminal_growht' "
        r"\(did you mean 'terminal_growth'\?\)",
    ):
        resolve_config(params, environ={})


def test_python_tags_in_yaml_are_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    params = write(
        tmp_path / "p.yaml",
        f"report:\n  title: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    with pytest.raises(ConfigurationError, match="cannot parse parameters file"):
        resolve_config(params, environ={})
    assert not marker.exists()


def test_data_paths_are_relative_to_the_parameters_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    params = write(sub / "p.yaml", "data:\n  companies: ../data/c.csv\n")
    cfg = resolve_config(params, environ={}).config
    assert cfg.data.companies.path == str((tmp_path / "data" / "c.csv").resolve())


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigurationError, match="cycle"):
        resolve_config(tmp_path / "a.yaml", environ={})


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"invalid configuration value at report.cell_timeout"
    ):
        resolve_config(None, sets=["report.cell_timeout=-5"], environ={})


def test_unknown_method_name_suggests_the_nearest() -> None:
    with pytest.raises(ConfigurationError) as exc:
        resolve_config(None, sets=["valuation.methods=[dcf, comparable]"], environ={})
    assert exc.value.one_line() == (
        "unknown name 'comparable' at valuation.methods.1 (did you mean 'comparables'?) "
        "(hint: known names: dcf, comparables, asset)"
    )


def test_a_table_source_in_a_higher_layer_replaces_the_lower_one(tmp_path: Path) -> None:
    cfg = resolve_config(
        None, environ={}, overrides={"data": {"peers": {"url": "sqlite:///x.db", "table": "peers"}}}
    ).config
    assert cfg.data.peers.path is None
    assert cfg.data.peers.url == "sqlite:///x.db"


def test_secrets_are_masked_and_moved_to_the_environment() -> None:
    from wfo_kit.config import externalize_secrets, mask_secrets

    cfg = resolve_config(
        None,
        environ={},
        overrides={"data": {"peers": {"url": "postgresql://bob:hunter2@db/x", "table": "p"}}},
    ).config
    masked = mask_secrets(cfg.model_dump(mode="json"))
    assert masked["data"]["peers"]["url"] == "postgresql://bob:***@db/x"
    moved, env = externalize_secrets(cfg)
    assert moved.data.peers.url == "postgresql://bob:${WFO_SECRET_1}@db/x"
    assert env == {"WFO_SECRET_1": "hunter2"}
    assert mask_secrets({"api_key": "k", "url": "x://u:${PW}@h"}) == {
        "api_key": "***",
        "url": "x://u:${PW}@h",
    }
