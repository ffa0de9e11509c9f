"""Settings that change nothing are said, not ignored (issue 10 item 7), and the precedence between
a row's own assumptions and the configured ones is a setting (``valuation.precedence``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.builders import balance_sheet, companies, fcff_rows, financials, params
from wfo_kit.cli import main
from wfo_kit.config import Config, resolve_config
from wfo_kit.effects import command_effects, effect_lines, setting_effects
from wfo_kit.history import run_diff
from wfo_kit.pipeline import RunContext, run_steps
from wfo_kit.schemas import Quarantine, SettingEffects, empty_frame
from wfo_kit.summary import run_metadata
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies

ROOT = Path(__file__).resolve().parent.parent


def effects(overrides: dict[str, Any], **data: Any) -> dict[str, dict[str, Any]]:
    """setting -> effect row, for a configuration set at runtime (source ``override``)."""
    resolved = resolve_config(None, overrides=overrides)
    frame = setting_effects(resolved.config, sources=resolved.sources, **data)
    return {row["setting"]: row for row in frame.iter_rows(named=True)}


def rows(n: int, **columns: list[Any]) -> pl.DataFrame:
    """n company rows, X0..X{n-1}, with the given column values."""
    return companies(
        *({"company_id": f"X{i}", **{k: v[i] for k, v in columns.items()}} for i in range(n))
    )


# --------------------------------------------------------------------------------------------
# Row values that shadow configured defaults (need the data)


def test_discount_rate_every_row_gives_its_own() -> None:
    found = effects({"valuation": {"discount_rate": 0.08}}, companies=rows(3))
    row = found["valuation.discount_rate"]
    assert (row["applies_to"], row["of"], row["source"], row["value"]) == (0, 3, "override", "0.08")
    assert row["note"].startswith("applies to 0 of 3 companies: every row gives its own")
    assert "valuation.precedence: config" in row["note"]


def test_discount_rate_some_rows_give_their_own() -> None:
    data = rows(3, discount_rate=[0.1, None, None])
    row = effects({"valuation": {"discount_rate": 0.08}}, companies=data)["valuation.discount_rate"]
    assert (row["applies_to"], row["of"]) == (2, 3)
    assert "1 rows give its own discount_rate" in row["note"]


def test_discount_rate_that_every_row_uses_is_not_noted() -> None:
    data = rows(2, discount_rate=[None, None])
    assert effects({"valuation": {"discount_rate": 0.08}}, companies=data) == {}


def test_terminal_growth_every_row_gives_its_own() -> None:
    row = effects({"valuation": {"terminal_growth": 0.03}}, companies=rows(2))[
        "valuation.terminal_growth"
    ]
    assert (row["applies_to"], row["of"]) == (0, 2)


def test_exit_multiple_under_exit_multiple_terminal_rows_win() -> None:
    config = {"valuation": {"terminal": "exit_multiple", "exit_multiple": 9.0}}
    row = effects(config, companies=rows(2, exit_multiple=[8.0, 7.0]))["valuation.exit_multiple"]
    assert (row["applies_to"], row["of"]) == (0, 2)


def test_driver_columns_shadow_configured_drivers() -> None:
    config = {"valuation": {"forecast": "drivers", "drivers": {"sales_to_capital": 2.0}}}
    data = rows(2, sales_to_capital=[1.2, 1.3])
    row = effects(config, companies=data)["valuation.drivers.sales_to_capital"]
    assert (row["applies_to"], row["of"]) == (0, 2)


def test_recovery_rates_shadowed_by_lines_and_unknown_class() -> None:
    lines = balance_sheet(
        [
            {"company_id": "X0", "item": "m", "side": "asset", "asset_class": "machinery",
             "book_value": 10.0, "recovery_rate": 0.6},
            {"company_id": "X0", "item": "d", "side": "liability", "book_value": 5.0,
             "priority": "senior"},
        ]
    )  # fmt: skip
    config = {"valuation": {"asset": {"recovery_rates": {"machinery": 0.5, "widgets": 0.3}}}}
    found = effects(config, companies=rows(1), balance_sheet=lines)
    assert found["valuation.asset.recovery_rates.machinery"]["applies_to"] == 0
    assert (
        "every machinery line gives its own"
        in found["valuation.asset.recovery_rates.machinery"]["note"]
    )
    assert "no balance-sheet asset line" in found["valuation.asset.recovery_rates.widgets"]["note"]


def test_report_companies_and_masked_columns_naming_what_does_not_exist() -> None:
    config = {
        "report": {"companies": ["X0", "X9"], "masked_columns": ["share_price", "sharePrice"]}
    }
    found = effects(config, company_ids=["X0", "X1"], columns=["company_id", "share_price"])
    assert found["report.companies"]["applies_to"] == 1
    assert "'X9'" in found["report.companies"]["note"]
    masked = found["report.masked_columns"]
    assert (masked["applies_to"], masked["of"]) == (1, 2)
    assert "did you mean 'share_price'" in masked["note"]


# --------------------------------------------------------------------------------------------
# What the configuration alone decides


@pytest.mark.parametrize(
    ("overrides", "setting", "reason"),
    [
        ({"valuation": {"rate_source": "wacc", "discount_rate": 0.08}},
         "valuation.discount_rate", "rate_source is wacc"),
        ({"valuation": {"wacc": {"risk_free": 0.03}}}, "valuation.wacc.risk_free",
         "rate_source is given"),
        ({"valuation": {"rate_source": "wacc", "wacc": {"target_ratio": 0.5}}},
         "valuation.wacc.target_ratio", "wacc.weights is market"),
        ({"valuation": {"drivers": {"revenue_growth": 0.1}}}, "valuation.drivers.revenue_growth",
         "forecast is explicit"),
        ({"valuation": {"forecast": "drivers", "drivers": {"years": 5, "high_growth_years": 7}}},
         "valuation.drivers.high_growth_years", "capped at drivers.years = 5"),
        ({"valuation": {"forecast": "drivers", "sensitivity": {"exit_multiples": [5.0]}}},
         "valuation.sensitivity.exit_multiples", "explicit forecasts only"),
        ({"valuation": {"exit_multiple": 8.0}}, "valuation.exit_multiple", "terminal is gordon"),
        ({"valuation": {"terminal": "exit_multiple", "exit_multiple": 8.0,
                        "range": {"growth_delta": 0.01}}},
         "valuation.range.growth_delta", "terminal growth enters no value"),
        ({"valuation": {"fiscal_year_end": "06-30"}}, "valuation.fiscal_year_end",
         "valuation_date is unset"),
        ({"valuation": {"methods": ["dcf"], "comparables": {"statistic": "mean"}}},
         "valuation.comparables.statistic", "comparables is not in valuation.methods"),
        ({"valuation": {"methods": ["dcf", "comparables"], "asset": {"basis": "liquidation"}}},
         "valuation.asset.basis", "asset is not in valuation.methods"),
        ({"valuation": {"methods": ["dcf", "comparables"],
                        "blend": {"dcf": 0.5, "comparables": 0.3, "asset": 0.2}}},
         "valuation.blend.asset", "renormalised away"),
        ({"valuation": {"methods": ["comparables"], "terminal_growth": 0.03}},
         "valuation.terminal_growth", "dcf is not in valuation.methods"),
        ({"valuation": {"monte_carlo": {"enabled": False, "draws": 500}}},
         "valuation.monte_carlo.draws", "monte_carlo.enabled is false"),
        ({"valuation": {"sensitivity": {"enabled": False, "rate_deltas": [0.0]}}},
         "valuation.sensitivity.rate_deltas", "sensitivity.enabled is false"),
        ({"valuation": {"monte_carlo": {"draws": 1000}}}, "valuation.monte_carlo.draws",
         "1024 drawn"),
        ({"valuation": {"comparables": {"trim": 0.2}}}, "valuation.comparables.trim",
         "trimmed_mean"),
        ({"valuation": {"precedence": ["stable_roc"]}}, "valuation.precedence",
         "forecast is explicit"),
        ({"output": {"formats": ["csv"]}, "pipeline": {"steps": ["load", "validate", "value"]}},
         "output.formats", "output step is not in pipeline.steps"),
        ({"pipeline": {"step_retry": {"output": {"attempts": 2}},
                       "steps": ["load", "validate", "value"]}},
         "pipeline.step_retry.output", "output is not in pipeline.steps"),
        ({"pipeline": {"fallbacks": {"output": "load"}, "steps": ["load"]}},
         "pipeline.fallbacks.output", "output is not in pipeline.steps"),
        ({"pipeline": {"steps": ["load"], "step_retry": {"load": {"attempts": 2}},
                       "retry": {"attempts": 5}}},
         "pipeline.retry.attempts", "every step has its own"),
        ({"data": {"peers": {"path": "p.csv", "fallback": "q.csv"}}},
         "data.peers.fallback.path", "load_fallback"),
        ({"report": {"companies": ["C001"], "detail_limit": 3}}, "report.detail_limit",
         "report.companies names"),
        ({"data": {"peers": {"path": "p.csv", "lock_timeout": 5}}},
         "data.peers.lock_timeout", "only a SQLite source waits for a lock"),
        ({"data": {"peers": {"url": "duckdb:///m.duckdb", "table": "p", "lock_timeout": 5}}},
         "data.peers.lock_timeout", "only a SQLite source waits for a lock"),
    ],
)  # fmt: skip
def test_configuration_alone_makes_a_setting_inert(
    overrides: dict[str, Any], setting: str, reason: str
) -> None:
    found = effects(overrides)
    assert setting in found, sorted(found)
    assert reason in found[setting]["note"]


def test_inert_valuation_settings_count_companies_when_known() -> None:
    row = effects({"valuation": {"exit_multiple": 8.0}}, companies=rows(4))[
        "valuation.exit_multiple"
    ]
    assert (row["applies_to"], row["of"]) == (0, 4)
    assert row["note"].startswith("applies to 0 of 4 companies: terminal is gordon")


def test_lock_timeout_of_a_sqlite_source_is_not_noted() -> None:
    config = Config(data={"peers": {"url": "sqlite:///m.db", "table": "p", "lock_timeout": 5}})
    assert setting_effects(config, sources={"data.peers.lock_timeout": "--set"}).height == 0


def test_a_fallback_that_load_fallback_reads_is_not_noted() -> None:
    found = effects(
        {
            "data": {"peers": {"path": "p.csv", "fallback": "q.csv"}},
            "pipeline": {"fallbacks": {"load": "load_fallback"}},
        }
    )
    assert not any(s.startswith("data.") for s in found)


def test_untouched_defaults_give_no_notes() -> None:
    resolved = resolve_config(None)
    assert setting_effects(resolved.config, sources=resolved.sources).height == 0
    assert setting_effects(Config()).height == 0  # no sources: compared with the defaults


def test_without_sources_a_value_that_differs_from_its_default_counts_as_set() -> None:
    frame = setting_effects(Config(valuation={"exit_multiple": 8.0}))
    assert frame.select("setting", "source").rows() == [("valuation.exit_multiple", "set")]


def test_command_effects_output_root_under_batch_and_run_output(tmp_path: Path) -> None:
    path = params(tmp_path, "p", "output:\n  root: elsewhere\n")
    resolved = resolve_config(path)
    batch = command_effects(resolved, command="batch", output_root=tmp_path / "out")
    assert batch["setting"].to_list() == ["output.root"]
    assert "has no effect under wfo batch: runs go under" in batch["note"][0]
    assert command_effects(resolved, command="run").height == 0  # no --output: root is used
    same = command_effects(resolved, command="run", output_root=tmp_path / "elsewhere")
    assert same.height == 0  # --output naming the same folder
    line = effect_lines(batch)[0]
    assert line.startswith(f"output.root = {tmp_path / 'elsewhere'} (set in file:{path}) has no")


# --------------------------------------------------------------------------------------------
# Precedence changes values


def _dcf_values(rate: float, precedence: object = "rows") -> list[float]:
    data = {
        "companies": companies({"company_id": "A"}, {"company_id": "B", "discount_rate": 0.09}),
        "financials": financials(
            fcff_rows("A", 2025, [100, 110, 120]) + fcff_rows("B", 2025, [50, 60, 70])
        ),
    }
    config = Config(
        valuation={"methods": ["dcf"], "discount_rate": rate, "precedence": precedence}
    ).valuation
    out = value_companies(
        data,
        valuation=config,
        universe=data["companies"]["company_id"],
        quarantine=empty_frame(Quarantine),
    )
    return out["valuations"]["value_per_share"].to_list()


def test_rows_win_by_default_so_the_configured_rate_changes_nothing() -> None:
    assert _dcf_values(0.08) == _dcf_values(0.12)


@pytest.mark.parametrize("precedence", ["config", ["discount_rate"]])
def test_precedence_config_lets_the_configured_rate_win(precedence: object) -> None:
    low, high = _dcf_values(0.08, precedence), _dcf_values(0.12, precedence)
    assert all(a > b for a, b in zip(low, high, strict=True))
    # A's row gives 0.10, B's 0.09: the configured rate replaces each row's own
    assert _dcf_values(0.10, precedence)[0] == _dcf_values(0.12)[0]
    assert _dcf_values(0.09, precedence)[1] == _dcf_values(0.12)[1]
    assert _dcf_values(0.10, precedence)[1] != _dcf_values(0.12)[1]


def test_precedence_reaches_recovery_rates() -> None:
    from wfo_kit.value import asset_method

    lines = balance_sheet(
        [{"company_id": "X", "item": "m", "side": "asset", "asset_class": "machinery",
          "book_value": 100.0, "recovery_rate": 0.9}]
    )  # fmt: skip
    valid = {"companies": companies(), "balance_sheet": lines}
    recovered = []
    for precedence in ("rows", ["recovery_rate"]):
        config = Config(
            valuation={"asset": {"recovery_rates": {"machinery": 0.5}}, "precedence": precedence}
        )
        recovered.append(
            asset_method(valid, config.valuation).tables["asset_lines"]["recovered"][0]
        )
    assert recovered == [90.0, 50.0]


def test_validation_warnings_check_the_rate_precedence_gives() -> None:
    valuation = Config(
        valuation={"discount_rate": 0.015, "precedence": ["discount_rate"]}
    ).valuation
    checked = validate_tables({"companies": companies()}, valuation=valuation)
    assert checked.warnings["check"].to_list() == ["rate_not_above_growth"]


def test_precedence_rows_is_the_default_and_names_are_checked() -> None:
    from wfo_kit.errors import ConfigurationError

    assert Config().valuation.precedence == "rows"
    with pytest.raises(ConfigurationError, match="did you mean 'discount_rate'"):
        resolve_config(None, sets=["valuation.precedence=[discount_rat]"])


# --------------------------------------------------------------------------------------------
# Where the effects are said: the value step, the run metadata, wfo validate, wfo diff


def test_value_step_writes_setting_effects_and_run_metadata_shows_them() -> None:
    resolved = resolve_config(
        ROOT / "parameters" / "default.yaml",
        sets=["valuation.discount_rate=0.08", "valuation.monte_carlo.enabled=false"],
    )
    ctx = RunContext(resolved.config, sources=dict(resolved.sources))
    run_steps(ctx, ["load", "validate", "value"])
    effects_frame = ctx["setting_effects"]
    row = effects_frame.filter(pl.col("setting") == "valuation.discount_rate").row(0, named=True)
    n = ctx["companies"].height
    assert (row["applies_to"], row["of"], row["source"]) == (0, n, "--set")
    meta = run_metadata(ctx, sources=dict(resolved.sources))
    shown = meta.filter(pl.col("key") == "effect.valuation.discount_rate")
    assert shown["value"][0].startswith(f"0.08: applies to 0 of {n} companies")
    assert shown["source"][0] == "--set"
    SettingEffects.validate(effects_frame, lazy=True)  # the output schema, on a frame with rows


def test_wfo_validate_says_which_settings_apply_to_no_company(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = params(tmp_path, "p", "valuation:\n  discount_rate: 0.08\n")
    code = main(["validate", str(path), "--quarantine", str(tmp_path / "q.csv")])
    err = capsys.readouterr().err
    assert code == 0
    note = next(line for line in err.splitlines() if "valuation.discount_rate" in line)
    assert note.startswith(f"wfo: note: valuation.discount_rate = 0.08 (set in file:{path})")
    assert "applies to 0 of 38 companies: every row gives its own discount_rate" in note


def _fake_run(root: Path, run_id: str, rate: float, effect: dict | None) -> None:
    folder = root / run_id
    (folder / "results").mkdir(parents=True)
    pl.DataFrame({"company_id": ["A"], "method": ["dcf"], "value_per_share": [10.0]}).write_parquet(
        folder / "results" / "valuations.parquet"
    )
    manifest = {
        "run_id": run_id,
        "status": "succeeded",
        "config": {"valuation": {"discount_rate": rate}},
        "setting_effects": [effect] if effect else None,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_wfo_diff_says_a_changed_setting_applied_to_no_company(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def effect(rate: float) -> dict:
        note = "applies to 0 of 38 companies: every row gives its own discount_rate; set ..."
        return {"setting": "valuation.discount_rate", "value": str(rate), "source": "--set",
                "applies_to": 0, "of": 38, "note": note}  # fmt: skip

    _fake_run(tmp_path, "a", 0.08, effect(0.08))
    _fake_run(tmp_path, "b", 0.12, effect(0.12))
    parameters = run_diff(tmp_path, "a", "b")["parameters"]
    assert parameters.row(0) == (
        "valuation.discount_rate", "0.08", "0.12", "applies to 0 of 38 companies (both runs)"
    )  # fmt: skip
    assert main(["diff", "a", "b", "--output", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert (
        "wfo: note: valuation.discount_rate differs (0.08 -> 0.12); applies to 0 of 38 companies "
        "(both runs): every row gives its own discount_rate" in err
    )


def test_wfo_diff_of_runs_without_effects_is_unchanged(tmp_path: Path) -> None:
    _fake_run(tmp_path, "a", 0.08, None)
    _fake_run(tmp_path, "b", 0.12, None)
    parts = run_diff(tmp_path, "a", "b")
    assert parts["parameters"]["effect"].to_list() == [None]
    assert parts["effects"].height == 0


# --------------------------------------------------------------------------------------------
# A batch through real kernels: the configured rate changes values only when it wins


@pytest.mark.e2e
def test_batch_rate_changes_values_only_with_precedence_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = "  monte_carlo: {enabled: false}\n  sensitivity: {enabled: false}\n"
    for rate in ("0.08", "0.12"):
        name = rate.replace("0.", "")
        params(tmp_path, f"rows{name}", f"valuation:\n  discount_rate: {rate}\n{fast}")
        params(
            tmp_path,
            f"config{name}",
            f"valuation:\n  discount_rate: {rate}\n  precedence: [discount_rate]\n{fast}",
        )
    out = tmp_path / "out"
    code = main(["batch", str(tmp_path / "*.yaml"), "--workers", "2", "--output", str(out)])
    _, err = capsys.readouterr()
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("wfo: note: ")]
    rows08 = f"rows08.yaml: valuation.discount_rate = 0.08 (set in file:{tmp_path / 'rows08.yaml'})"
    assert any(
        rows08 in line and "applies to 0 of 38 companies: every row gives its own" in line
        for line in notes
    ), notes
    assert any(
        line.startswith("wfo: note: config08.yaml: valuation.discount_rate = 0.08")
        and "applies to 38 of 38 companies: it replaces the row's own discount_rate" in line
        for line in notes
    ), notes
    assert any(
        "output.root = " in line and "has no effect under wfo batch: runs go under" in line
        for line in notes
    )

    def dcf(stem: str) -> pl.DataFrame:
        # run folders are <UTC time>-<file stem>-<hash>-<suffix> (README, Where outputs land)
        run = next(p for p in out.iterdir() if p.is_dir() and f"-{stem}-" in p.name)
        frame = pl.read_parquet(run / "results" / "valuations.parquet")
        return frame.filter(pl.col("method") == "dcf", pl.col("status") == "valued")

    assert dcf("rows08").equals(dcf("rows12"))  # the rows win: the rate changes nothing
    low, high = dcf("config08"), dcf("config12")
    assert low.height == high.height > 30
    assert (low["value_per_share"] > high["value_per_share"]).all()

    runs = {p.name.split("-")[1]: p.name for p in out.iterdir() if p.is_dir()}  # <time>-<stem>-...
    assert main(["diff", runs["rows08"], runs["rows12"], "--output", str(out)]) == 0
    assert (
        "valuation.discount_rate differs (0.08 -> 0.12); applies to 0 of 38 companies (both runs)"
        in capsys.readouterr().err
    )


def test_a_file_source_with_the_default_lock_timeout_is_not_noted() -> None:
    # A bare path credits every field of its source to the file, lock_timeout's default included.
    found = effects({"data": {"peers": "p.csv", "companies": {"path": "c.csv"}}})
    assert not any(s.endswith("lock_timeout") for s in found)


# --------------------------------------------------------------------------------------------
# Fade years with nothing to fade (issue 13)


def test_rate_fade_without_any_stable_rate_applies_to_no_company() -> None:
    row = effects({"valuation": {"rate_fade_from_year": 3}}, companies=rows(3))[
        "valuation.rate_fade_from_year"
    ]
    assert (row["applies_to"], row["of"], row["value"]) == (0, 3, "3")
    assert "no stable rate to fade to" in row["note"]


@pytest.mark.parametrize(
    ("overrides", "data"),
    [
        ({"stable_discount_rate": 0.07}, rows(3)),
        ({}, rows(3, stable_discount_rate=[None, 0.07, None])),
        (
            {"methods": ["fcfe"], "equity": {"stable_cost_of_equity": 0.08}},
            rows(3),
        ),
    ],
)
def test_rate_fade_with_a_stable_rate_is_not_noted(
    overrides: dict[str, Any], data: pl.DataFrame
) -> None:
    found = effects({"valuation": {"rate_fade_from_year": 3, **overrides}}, companies=data)
    assert "valuation.rate_fade_from_year" not in found


def test_tax_fade_without_effective_tax_rates_applies_to_no_company() -> None:
    setting = "valuation.taxes.fade_from_year"
    found = effects({"valuation": {"taxes": {"fade_from_year": 2}}}, companies=rows(2))
    assert (found[setting]["applies_to"], found[setting]["of"]) == (0, 2)
    assert "no row gives effective_tax_rate" in found[setting]["note"]
    some = rows(2, effective_tax_rate=[0.1, None])
    found = effects({"valuation": {"taxes": {"fade_from_year": 2}}}, companies=some)
    assert (found[setting]["applies_to"], found[setting]["of"]) == (1, 2)
    every = rows(2, effective_tax_rate=[0.1, 0.15])
    assert setting not in effects({"valuation": {"taxes": {"fade_from_year": 2}}}, companies=every)
