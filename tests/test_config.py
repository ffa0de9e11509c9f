"""Layered configuration: precedence, provenance, unknown keys, unsafe YAML."""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from wfo_kit.config import Config, resolve_config
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
        "(hint: known names: dcf, comparables, asset, ddm, fcfe, dated)"
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


# --------------------------------------------------------------------------------------------
# Hostile parameters files (issue 17 items 2, 3, 7): one ConfigurationError line, never a crash


SAMPLE_TABLES = Path(__file__).resolve().parent.parent / "wfo_kit" / "sample_data"


def _refused(path: Path, pattern: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError, match=pattern) as exc:
        resolve_config(path, environ={})
    assert "\n" not in exc.value.one_line()
    return exc.value


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        (
            "garbage.yaml",
            bytes(range(256)) * 4,
            r"is not UTF-8 text \(undecodable byte at line 2\)",
        ),
        ("utf16.yaml", "report:\n  title: x\n".encode("utf-16"), r"is UTF-16 text"),
        ("utf16be.json", '{"report": {}}'.encode("utf-16-be"), r"is UTF-16 text"),
        ("nul.yaml", b"report:\n  title: a\x00b\n", r"holds NUL bytes"),
        ("latin1.yaml", "report:\n  title: Caf\xe9\n".encode("latin-1"), r"line 2"),
    ],
)
def test_binary_or_non_utf8_parameters_files_are_refused(
    tmp_path: Path, name: str, content: bytes, pattern: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    error = _refused(path, "parameters file .*" + pattern)
    assert error.hint


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("report:\n  title: bom\n".encode("utf-8-sig"))
    assert resolve_config(path, environ={}).config.report.title == "bom"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep-flow.yaml", "report:\n  title: " + "[" * 5000 + "]" * 5000 + "\n"),
        ("deep-block.yaml", "".join("  " * i + "- \n" for i in range(200))),
        ("deep-map.yaml", "".join("  " * i + f"k{i}:\n" for i in range(200))),
        ("deep.json", '{"report": {"title": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
        ("deep-map.json", '{"a": ' * 100_000 + "1" + "}" * 100_000),
    ],
)
def test_deep_nesting_is_refused_with_the_limit(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path / name, text)
    _refused(path, r"nested more than 50 levels deep")


def test_nesting_at_the_limit_is_still_read(tmp_path: Path) -> None:
    # 50 levels in all: the top mapping, `report`, then 48 nested lists
    path = write(tmp_path / "p.yaml", "report:\n  masked_columns: " + "[" * 48 + "]" * 48 + "\n")
    with pytest.raises(ConfigurationError, match=r"report\.masked_columns\.0: Input should be"):
        resolve_config(path, environ={})  # parsed, then refused by the model, not by depth


def test_an_oversized_parameters_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "big.yaml", "# " + "x" * (1 << 20) + "\n")
    _refused(path, r"is larger than 1 MiB")


def test_a_long_extends_chain_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    for i in range(1500):
        write(tmp_path / f"p{i}.yaml", f"extends: p{i + 1}.yaml\n" if i < 1499 else "")
    error = _refused(tmp_path / "p0.yaml", r"`extends:` chain longer than 20 files")
    assert len(error.one_line()) < 400


def test_an_extends_chain_at_the_limit_is_read(tmp_path: Path) -> None:
    for i in range(20):
        text = f"extends: p{i + 1}.yaml\n" if i < 19 else "report:\n  title: root\n"
        write(tmp_path / f"p{i}.yaml", text)
    assert resolve_config(tmp_path / "p0.yaml", environ={}).config.report.title == "root"


@pytest.mark.parametrize("key", ["data_path", "sql_url", "notebook", "extends", "params"])
def test_symlink_loops_are_refused(tmp_path: Path, key: str) -> None:
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    text = {
        "data_path": "data:\n  peers: loop.csv\n",
        "sql_url": "data:\n  peers: {url: 'sqlite:///loop.csv', table: p}\n",
        "notebook": "report:\n  notebook: loop.csv\n",
        "extends": "extends: loop.csv\n",
    }.get(key, "")
    params = loop if key == "params" else write(tmp_path / "p.yaml", text)
    _refused(params, r"symbolic link(s)? loop|too many levels of symbolic links")


def test_a_yaml_alias_bomb_is_refused_within_a_second(tmp_path: Path) -> None:
    import time

    bomb = "a: &a {" + ", ".join(f"k{j}: lol" for j in range(9)) + "}\n"
    for name, prev in zip("bcdefghi", "abcdefgh", strict=True):
        bomb += f"{name}: &{name} {{" + ", ".join(f"k{j}: *{prev}" for j in range(9)) + "}\n"
    path = write(tmp_path / "bomb.yaml", bomb + "report: *i\n")
    assert len(bomb) < 1000
    start = time.perf_counter()
    _refused(path, r"expands to more than 10000 values")
    assert time.perf_counter() - start < 1.0


def test_a_list_alias_bomb_and_a_recursive_alias_are_refused(tmp_path: Path) -> None:
    bomb = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for name, prev in zip("bcdefghi", "abcdefgh", strict=True):
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    _refused(write(tmp_path / "list.yaml", bomb), r"expands to more than 10000 values")
    _refused(write(tmp_path / "self.yaml", "report: &r\n  title: *r\n"), r"refers to itself")


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.yaml",
        "x-shift: &shift {dist: norm, params: {loc: 0.0, scale: 0.02}}\n"
        "valuation:\n  monte_carlo:\n    discount_rate_shift: *shift\n"
        "    cash_flow_scale:\n      <<: *shift\n      params: {loc: 1.0, scale: 0.1}\n",
    )
    with pytest.raises(ConfigurationError, match="unknown configuration key 'x-shift'"):
        resolve_config(path, environ={})  # the anchor holder is an unknown key, as any other
    path.write_text(path.read_text().replace("x-shift: &shift", "report:\n  title: &shift"))
    with pytest.raises(ConfigurationError, match=r"report\.title: Input should be a valid string"):
        resolve_config(path, environ={})
    path = write(
        tmp_path / "q.yaml",
        "valuation:\n  monte_carlo:\n"
        "    discount_rate_shift: &shift {dist: norm, params: {loc: 0.0, scale: 0.02}}\n"
        "    cash_flow_scale:\n      <<: *shift\n      params: {loc: 1.0, scale: 0.1}\n",
    )
    mc = resolve_config(path, environ={}).config.valuation.monte_carlo
    assert mc.cash_flow_scale is not None
    assert mc.cash_flow_scale.dist == "norm"
    assert mc.cash_flow_scale.params == {"loc": 1.0, "scale": 0.1}


def test_alias_bombs_in_set_values_are_refused() -> None:
    value = "{a: &a [" + ", ".join(["x"] * 10) + "]"
    for name, prev in (("b", "a"), ("c", "b"), ("d", "c")):
        value += f", {name}: &{name} [" + ", ".join([f"*{prev}"] * 11) + "]"
    value += "}"
    with pytest.raises(ConfigurationError, match="expands to more than 10000 values"):
        resolve_config(None, sets=[f"pipeline.fallbacks={value}"], environ={})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "top.yaml",
            "report:\n  title: a\nvaluation: {}\nreport:\n  title: b\n",
            "duplicate key 'report' (lines 1 and 4)",
        ),
        (
            "nested.yaml",
            "valuation:\n  discount_rate: 0.08\n  timing: mid_year\n  discount_rate: 0.12\n",
            "duplicate key 'discount_rate' (lines 2 and 4)",
        ),
        ("flow.yaml", "report: {title: a, title: b}\n", "duplicate key 'title' (lines 1 and 1)"),
        (
            "nested.json",
            '{\n  "report": {\n    "title": "a",\n    "title": "b"\n  }\n}\n',
            "duplicate key 'title' (lines 3 and 4)",
        ),
        (
            "top.json",
            '{"report": {"title": "a"},\n "output": {},\n "report": {"title": "b"}}',
            "duplicate key 'report' (lines 1 and 3)",
        ),
    ],
)
def test_duplicate_keys_are_refused_with_their_lines(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = write(tmp_path / name, text)
    _refused(path, re.escape(f"{path.resolve()}: {message}"))


def test_the_same_key_in_different_mappings_is_not_a_duplicate(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.json",
        '{"report": {"title": "t"}, "output": {"root": "o"},'
        ' "valuation": {"wacc": {"weights": "market"}, "comparables": {"basis": "ltm"},'
        ' "asset": {"basis": "liquidation"}}}',
    )
    cfg = resolve_config(path, environ={}).config
    assert (cfg.valuation.comparables.basis, cfg.valuation.asset.basis) == ("ltm", "liquidation")


# --------------------------------------------------------------------------------------------
# Values (issue 17 items 5, 6): non-finite and out-of-range numbers are refused, naming the field


def _float_paths(
    model: type[BaseModel], default: Any, prefix: str = "", seen: tuple[type, ...] = ()
) -> list[str]:
    """Dotted paths of every float the model holds (dict values and list items included)."""
    if model in seen:
        return []  # a recursive model (a table source's fallback)
    seen = (*seen, model)
    paths = []
    for name, field in model.model_fields.items():
        here = f"{prefix}{name}"
        value = getattr(default, name, None)
        args = [_plain(a) for a in (field.annotation, *typing.get_args(field.annotation))]
        containers = [a for a in args if typing.get_origin(a) in (list, dict)]
        item = _plain(typing.get_args(containers[0])[-1]) if containers else None
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        is_dict = bool(containers) and typing.get_origin(containers[0]) is dict
        key = (next(iter(value)) if value else "x") if is_dict else 0
        first = (value[key] if is_dict else value[0]) if containers and value else None
        if item is float:
            paths.append(f"{here}.{key}")
        elif isinstance(item, type) and issubclass(item, BaseModel):
            paths += _float_paths(item, first, f"{here}.{key}.", seen)
        elif nested:
            paths += _float_paths(nested[0], value, here + ".", seen)
        elif float in args:
            paths.append(here)
    return paths


def _plain(annotation: Any) -> Any:
    """float for Annotated[float, ...]."""
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _with_value(path: str, value: Any) -> dict[str, Any]:
    tree = Config().model_dump(mode="json")
    tree["data"] = {}
    node: Any = tree
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return tree


FLOAT_PATHS = _float_paths(Config, Config())


def test_every_float_setting_is_found() -> None:
    assert len(FLOAT_PATHS) >= 30
    for path in (
        "valuation.blend.dcf",
        "valuation.scenarios.0.cash_flow_scale",
        "valuation.exit_multiple",
        "valuation.wacc.risk_free",
        "valuation.monte_carlo.discount_rate_shift.params.loc",
        "valuation.asset.recovery_rates.cash",
        "valuation.sensitivity.exit_multiples.0",
        "pipeline.retry.backoff_seconds",
    ):
        assert path in FLOAT_PATHS


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), ".nan", "inf"])
@pytest.mark.parametrize("path", FLOAT_PATHS)
def test_non_finite_floats_are_refused_everywhere(path: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as exc:
        resolve_config(None, environ={}, overrides=_with_value(path, value))
    assert exc.value.column == path
    assert f"invalid configuration value at {path}: " in exc.value.one_line()


def test_nan_and_inf_written_in_yaml_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "valuation:\n  blend: {dcf: .nan, comparables: 0.5}\n")
    _refused(path, r"valuation.blend.dcf: Input should be a finite number")
    path = write(tmp_path / "q.yaml", "valuation:\n  exit_multiple: .inf\n")
    _refused(path, r"valuation.exit_multiple: Input should be a finite number")


@pytest.mark.parametrize(
    ("setting", "field", "words"),
    [
        ("valuation.wacc.risk_free=0.9", "valuation.wacc.risk_free", "less than or equal to 0.5"),
        ("valuation.wacc.equity_risk_premium=-0.01", "valuation.wacc.equity_risk_premium", ">= 0"),
        ("valuation.wacc.cost_of_debt=1.5", "valuation.wacc.cost_of_debt", "less than"),
        ("valuation.exit_multiple=0", "valuation.exit_multiple", "greater than 0"),
        ("valuation.exit_multiple=5000", "valuation.exit_multiple", "less than or equal to 1000"),
        ("valuation.drivers.revenue_growth=-1", "valuation.drivers.revenue_growth", "greater"),
        ("valuation.drivers.target_margin=1.5", "valuation.drivers.target_margin", "less than"),
        (
            "valuation.sensitivity.exit_multiples=[8, -1]",
            "valuation.sensitivity.exit_multiples.1",
            "greater than 0",
        ),
        (
            "valuation.sensitivity.rate_deltas=[0.01, 2]",
            "valuation.sensitivity.rate_deltas.1",
            "less than 1",
        ),
        (
            "valuation.asset.recovery_rates={cash: 1.5}",
            "valuation.asset.recovery_rates.cash",
            "less than or equal to 1",
        ),
        (
            "valuation.blend={dcf: 1.5, comparables: -0.5}",
            "valuation.blend.dcf",
            "less than or equal to 1",
        ),
        (
            "valuation.monte_carlo.seed=-1",
            "valuation.monte_carlo.seed",
            "greater than or equal to 0",
        ),
        ("valuation.range.rate_delta=1", "valuation.range.rate_delta", "less than"),
        ("validation.spread_warning=2", "validation.spread_warning", "less than"),
        ("pipeline.retry.backoff_seconds=1e9", "pipeline.retry.backoff_seconds", "less than"),
    ],
)
def test_out_of_range_values_are_refused(setting: str, field: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        resolve_config(None, sets=[setting], environ={})
    assert exc.value.column == field, exc.value.one_line()
    assert words.replace(">= 0", "greater than or equal to 0") in exc.value.one_line()


@pytest.mark.parametrize(
    ("distribution", "words"),
    [
        ("{dist: norm, params: {loc: 0, scale: -0.01}}", "scale must be > 0, got -0.01"),
        ("{dist: norm, params: {loc: 0, scale: 0}}", "scale must be > 0, got 0"),
        ("{dist: triang, params: {c: 2, loc: 0, scale: 0.01}}", "not valid for triang"),
        ("{dist: lognorm, params: {s: -1}}", "not valid for lognorm"),
        ("{dist: triang, params: {}}", "bad parameters for triang"),
        ("{dist: norm, params: {mu: 1}}", "bad parameters for norm"),
        ("{dist: norm, params: {loc: 1e308, scale: 1e308}}", "not finite"),
    ],
)
def test_distribution_parameters_must_give_finite_draws(distribution: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        resolve_config(
            None, sets=[f"valuation.monte_carlo.discount_rate_shift={distribution}"], environ={}
        )
    assert exc.value.column == "valuation.monte_carlo.discount_rate_shift"
    assert words in exc.value.one_line()


def test_shipped_distributions_are_the_defaults_and_pass_scipy() -> None:
    # Distributions equal to the shipped defaults skip the scipy check (1.6 s of import): each
    # must be a default and pass that check, and a changed parameter is checked again.
    from wfo_kit.config import SHIPPED_DISTRIBUTIONS, Distribution, MonteCarloConfig

    defaults = MonteCarloConfig()
    shipped = {
        (d.dist, tuple(sorted(d.params.items())))
        for d in (
            defaults.discount_rate_shift,
            defaults.terminal_growth_shift,
            defaults.cash_flow_scale,
        )
        if d is not None
    }
    assert shipped == SHIPPED_DISTRIBUTIONS
    for name, params in SHIPPED_DISTRIBUTIONS:
        Distribution(dist=name, params=dict(params)).checked()
    with pytest.raises(ValueError, match="scale must be > 0"):
        Distribution(dist="norm", params={"loc": 0.0, "scale": -0.01})


def test_the_field_descriptions_state_the_bounds() -> None:
    from wfo_kit.config import WaccConfig

    assert "0.5" in (WaccConfig.model_fields["risk_free"].description or "")
    assert "finite" in (Config.__doc__ or "") + (sys.modules["wfo_kit.config"].__doc__ or "")


@pytest.mark.parametrize("day", ["02-30", "02-31", "04-31", "13-01", "00-10", "12-00", "12-32"])
def test_fiscal_year_end_must_be_a_real_day(day: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        resolve_config(None, sets=[f"valuation.fiscal_year_end={day}"], environ={})
    assert exc.value.column == "valuation.fiscal_year_end"
    assert "not a day of the year" in exc.value.one_line()


def test_fiscal_year_end_february_29_is_refused_with_a_hint() -> None:
    with pytest.raises(
        ConfigurationError, match=r"02-29 .*does not exist in three years of four.* 02-28"
    ):
        resolve_config(None, sets=["valuation.fiscal_year_end=02-29"], environ={})


@pytest.mark.parametrize("day", ["12-31", "02-28", "06-30", "03-31", "09-30"])
def test_fiscal_year_end_real_days_are_accepted(day: str) -> None:
    cfg = resolve_config(None, sets=[f"valuation.fiscal_year_end={day}"], environ={}).config
    assert cfg.valuation.fiscal_year_end == day


# --------------------------------------------------------------------------------------------
# Tables (issue 10 item 1): the sample only where named; a table not given is absent


def _own_tables(tmp_path: Path, *names: str, extra: str = "") -> Path:
    lines = "".join(f"  {name}: {SAMPLE_TABLES / name}.csv\n" for name in names)
    return write(tmp_path / "mine.yaml", "data:\n" + lines + extra)


def test_a_table_left_out_of_a_parameters_file_is_absent_not_the_sample(tmp_path: Path) -> None:
    resolved = resolve_config(_own_tables(tmp_path, "companies", "financials"), environ={})
    data = resolved.config.data
    assert data.companies is not None
    assert data.companies.path == str(SAMPLE_TABLES / "companies.csv")
    assert (data.peers, data.balance_sheet) == (None, None)
    assert resolved.sources["data.peers"] == "default"


def test_no_parameters_file_means_the_bundled_sample() -> None:
    resolved = resolve_config(None, environ={})
    for name in ("companies", "financials", "peers", "balance_sheet"):
        source = getattr(resolved.config.data, name)
        assert source.path == str(SAMPLE_TABLES / f"{name}.csv")
        assert resolved.sources[f"data.{name}.path"] == "sample"
    assert Config().data.peers is None  # the model's default is no table at all


def test_the_default_parameters_file_names_the_four_sample_tables() -> None:
    default = Path(__file__).resolve().parent.parent / "parameters" / "default.yaml"
    resolved = resolve_config(default, environ={})
    for name in ("companies", "financials", "peers", "balance_sheet"):
        assert getattr(resolved.config.data, name).path == str(SAMPLE_TABLES / f"{name}.csv")
        assert resolved.sources[f"data.{name}.path"] == f"file:{default}"


def test_a_table_not_given_excludes_every_company_from_its_method_with_the_reason(
    tmp_path: Path,
) -> None:
    import polars as pl

    from wfo_kit.config import load_config
    from wfo_kit.pipeline import RunContext, run_pipeline

    params = _own_tables(
        tmp_path,
        "companies",
        "financials",
        extra="valuation:\n  monte_carlo: {enabled: false}\n  sensitivity: {enabled: false}\n",
    )
    ctx = run_pipeline(RunContext(load_config(params)), ["load", "validate", "value"])
    assert "input_peers" not in ctx.frames
    assert "input_balance_sheet" not in ctx.frames
    assert sorted(ctx["quality"]["table"].to_list()) == ["companies", "financials"]
    valuations = ctx["valuations"]
    companies = ctx["input_companies"]["company_id"].n_unique()
    for method, reason in (
        ("comparables", "no peers table given (data.peers)"),
        ("asset", "no balance_sheet table given (data.balance_sheet)"),
    ):
        rows = valuations.filter(pl.col("method") == method)
        assert rows.height == companies
        assert rows["status"].unique().to_list() == ["excluded"]
        quarantined = rows.filter(pl.col("reason").str.starts_with("company row quarantined"))
        assert rows.filter(pl.col("reason") == reason).height == companies - quarantined.height
    assert valuations.filter(pl.col("method") == "dcf", pl.col("status") == "valued").height > 0


@pytest.mark.parametrize("missing", ["companies", "financials"])
def test_companies_and_financials_must_be_given(tmp_path: Path, missing: str) -> None:
    from wfo_kit.config import load_config
    from wfo_kit.io import load_tables

    given = [t for t in ("companies", "financials") if t != missing]
    config = load_config(_own_tables(tmp_path, *given, "peers"))
    with pytest.raises(ConfigurationError) as exc:
        load_tables(config.data)
    assert exc.value.one_line().startswith(f"no {missing} table given (data.{missing})")


def test_given_tables_say_where_each_table_comes_from(tmp_path: Path) -> None:
    from wfo_kit.config import given_tables, load_config

    params = _own_tables(
        tmp_path,
        "companies",
        "financials",
        extra="  peers: {url: 'postgresql://bob:hunter2@db/x', table: peers}\n",
    )
    assert given_tables(load_config(params).data) == [
        ("companies", str(SAMPLE_TABLES / "companies.csv")),
        ("financials", str(SAMPLE_TABLES / "financials.csv")),
        ("peers", "postgresql://bob:***@db/x (table peers)"),
        ("balance_sheet", "not given"),
        ("dated_flows", "not given"),
    ]


def test_wfo_validate_prints_the_tables_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wfo_kit.cli import main

    params = _own_tables(tmp_path, "companies", "financials")
    code = main(["validate", str(params), "--quarantine", str(tmp_path / "q.csv")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"companies      {SAMPLE_TABLES / 'companies.csv'}" in out.splitlines()
    assert "peers          not given" in out.splitlines()
    assert "balance_sheet  not given" in out.splitlines()


def test_the_report_notebook_shows_the_tables_given() -> None:
    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "valuation.ipynb"
    assert "wfo.given_tables(config.data)" in notebook.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Output folder (issue 17 item 4)


def test_output_root_naming_a_file_is_exit_3_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wfo_kit.cli import main

    (tmp_path / "afile").write_text("x")
    params = write(
        tmp_path / "p.yaml",
        f"extends: {Path(__file__).resolve().parent.parent / 'parameters' / 'default.yaml'}\n"
        f"output:\n  root: {tmp_path / 'afile'}\n",
    )
    code = main(["run", str(params), "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 3, err
    assert err.strip().splitlines() == [
        f"wfo: error: cannot create the run folder under {tmp_path / 'afile'}: is not a folder "
        "(hint: check the output folder and its permissions)"
    ]


def test_output_root_that_is_a_symlink_loop_is_exit_3_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wfo_kit.cli import main

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    params = write(
        tmp_path / "p.yaml",
        f"extends: {Path(__file__).resolve().parent.parent / 'parameters' / 'default.yaml'}\n"
        f"output:\n  root: {loop}\n",
    )
    # output.root is resolved relative to its parameters file, like every path there: a loop is
    # a bad setting (exit 2), as for data paths. `--output LOOP` is checked by the run (exit 3).
    code = main(["run", str(params), "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"wfo: error: output.root: cannot resolve {loop}: symbolic link loop")
    plain = write(tmp_path / "plain.yaml", params.read_text().split("output:")[0])
    code = main(["run", str(plain), "--no-progress", "--output", str(loop)])
    _, err = capsys.readouterr()
    assert code == 3, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"wfo: error: cannot use the output folder {loop}: ")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "CREATE SECRET s (TYPE s3, KEY_ID 'AKIA123', SECRET 'abc/def')",
            "CREATE SECRET s (TYPE s3, KEY_ID '***', SECRET '***')",
        ),
        ("SELECT * FROM t WHERE token = 'xyz'", "SELECT * FROM t WHERE token = '***'"),
        ("SELECT token, secret FROM t", "SELECT token, secret FROM t"),  # names, not values
        ("host=db password=hunter2 user=me", "host=db password=*** user=me"),
        ("https://x/y?api_key=K123&b=2", "https://x/y?api_key=***&b=2"),
        ("SELECT 1 -- password: ${DB_PASSWORD}", "SELECT 1 -- password: ${DB_PASSWORD}"),
    ],
)
def test_credentials_inside_strings_are_masked(text: str, masked: str) -> None:
    from wfo_kit.config import mask_secrets

    assert mask_secrets(text) == masked


def test_query_credentials_move_to_the_environment_and_back() -> None:
    from wfo_kit.config import externalize_secrets, literal_credentials, load_config
    from wfo_kit.io import _expand_stashed

    query = "SELECT * FROM peers WHERE code <> 'token=abc123'"
    config = load_config(
        overrides={"data": {"peers": {"url": "duckdb:///x.duckdb", "query": query}}}
    )
    assert literal_credentials(config) == [
        "data.peers.query holds a literal credential: set it in an environment variable and "
        "write ${VAR} in its place (it is masked in every output file meanwhile)"
    ]
    moved, env = externalize_secrets(config)
    assert env == {"WFO_SECRET_1": "abc123"}
    assert moved.data.peers.query == "SELECT * FROM peers WHERE code <> 'token=${WFO_SECRET_1}'"
    import os

    os.environ.update(env)
    try:
        assert _expand_stashed(moved.data.peers.query) == query
    finally:
        os.environ.pop("WFO_SECRET_1")
