"""Plug-in methods and steps: registered in code, or installed as entry points and run by wfo run.

The installed case puts a tiny distribution (a module and its ``.dist-info`` with
``entry_points.txt``) on PYTHONPATH, where importlib.metadata finds it, exactly as pip would
leave it in site-packages; `wfo run` (and its notebook kernel) then select it by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import polars as pl
import pytest

import wfo_kit as wfo
from tests.builders import companies, fcff_rows, financials, notebook
from wfo_kit.config import ValuationConfig, resolve_config
from wfo_kit.errors import ConfigurationError
from wfo_kit.plugins import _REGISTERED, METHOD_GROUP, STEP_GROUP
from wfo_kit.validate import validate_tables
from wfo_kit.value import MethodResult, value_companies

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''
import polars as pl
from wfo_kit.value import MethodResult


def cash_per_share(valid, valuation):
    """Equity = cash: a deliberately simple method."""
    c = valid["companies"]
    valued = c.select(
        "company_id",
        pl.lit(None, pl.Float64).alias("enterprise_value"),
        pl.col("cash").alias("equity_value"),
        (pl.col("cash") / pl.col("shares_diluted")).alias("value_per_share"),
    )
    none = pl.DataFrame(schema={"company_id": pl.String, "reason": pl.String})
    return MethodResult(valued=valued, excluded=none)


def stamp(ctx):
    return {"stamp": pl.DataFrame({"valuation_rows": [ctx["valuations"].height]})}
'''


def _cash_method(valid: dict[str, pl.DataFrame], valuation: ValuationConfig) -> MethodResult:
    c = valid["companies"]
    return MethodResult(
        valued=c.select(
            "company_id",
            pl.col("cash").alias("equity_value"),
            (pl.col("cash") / pl.col("shares_diluted")).alias("value_per_share"),
        ),
        excluded=pl.DataFrame(schema={"company_id": pl.String, "reason": pl.String}),
    )


@pytest.fixture
def registered() -> object:
    wfo.register_method("cash_now", _cash_method)
    yield
    _REGISTERED[METHOD_GROUP].pop("cash_now", None)
    _REGISTERED[STEP_GROUP].pop("count_rows", None)


def test_a_method_registered_in_code_is_selected_and_blended(registered: object) -> None:
    comp = companies({"cash": 500.0})
    valuation = ValuationConfig(
        methods=["dcf", "cash_now"],
        blend={"dcf": 0.5, "cash_now": 0.5},
        monte_carlo={"enabled": False},
        scenarios=[],
    )
    checked = validate_tables(
        {"companies": comp, "financials": financials(fcff_rows("X", 2026, [100.0]))},
        valuation=valuation,
    )
    out = value_companies(
        checked.valid,
        valuation=valuation,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )
    mine = out["valuations"].filter(pl.col("method") == "cash_now").row(0, named=True)
    assert mine["value_per_share"] == 5.0
    dcf = out["valuations"].filter(pl.col("method") == "dcf")["value_per_share"][0]
    assert out["blend"]["base"][0] == pytest.approx((dcf + 5.0) / 2)


def test_a_step_registered_in_code_runs_in_the_pipeline(registered: object) -> None:
    wfo.register_step(
        "count_rows", lambda ctx: {"counted": pl.DataFrame({"n": [ctx["valuations"].height]})}
    )
    config = wfo.load_config(
        ROOT / "parameters" / "default.yaml",
        overrides={
            "pipeline": {"steps": ["load", "validate", "value", "count_rows"]},
            "valuation": {"monte_carlo": {"enabled": False}, "scenarios": []},
        },
    )
    ctx = wfo.run_pipeline(wfo.RunContext(config))
    assert ctx["counted"]["n"][0] == ctx["valuations"].height


def test_unknown_names_list_the_known_ones_plugins_included(registered: object) -> None:
    with pytest.raises(ConfigurationError) as exc:
        resolve_config(None, sets=["valuation.methods=[dcf, cash_nwo]"], environ={})
    assert exc.value.one_line() == (
        "unknown name 'cash_nwo' at valuation.methods.1 (did you mean 'cash_now'?) "
        "(hint: known names: dcf, comparables, asset, ddm, fcfe, dated, cash_now)"
    )
    with pytest.raises(ValueError, match="built-in method"):
        wfo.register_method("dcf", _cash_method)
    with pytest.raises(ValueError, match="identifier"):
        wfo.register_step("no such", _cash_method)


def _install(where: Path) -> dict[str, str]:
    (where / "wfo_demo_plugin.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    info = where / "wfo_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wfo-demo-plugin\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[wfo_kit.methods]\ncash_per_share = wfo_demo_plugin:cash_per_share\n\n"
        "[wfo_kit.steps]\nstamp = wfo_demo_plugin:stamp\n",
        encoding="utf-8",
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(where), env.get("PYTHONPATH")]))
    return env


# A lean report notebook (report.notebook): the pipeline and nothing else, to keep the test fast;
# the plug-in is resolved by name both in `wfo run` (configuration) and in the notebook's kernel.
LEAN_REPORT = """
import wfo_kit as wfo
config = wfo.Config.model_validate({"data": data, "validation": validation,
    "valuation": valuation, "output": output, "report": report, "pipeline": pipeline})
ctx = wfo.start_run(config, run_dir=run_dir or None, run_id=run_id or None, interactive=False,
                    sources=sources or None)
wfo.run_steps(ctx)
wfo.finish_run(ctx)
"""


def test_an_installed_plugin_runs_through_wfo_run(tmp_path: Path, wfo_bin: str) -> None:
    env = _install(tmp_path)
    notebook(tmp_path / "lean.ipynb", LEAN_REPORT)
    params = tmp_path / "plugin.yaml"
    params.write_text(
        f"extends: {ROOT / 'parameters' / 'default.yaml'}\n"
        "report:\n  notebook: lean.ipynb\n"
        "valuation:\n  methods: [dcf, cash_per_share]\n"
        "  blend: {dcf: 0.5, cash_per_share: 0.5}\n"
        "  monte_carlo: {enabled: false}\n  scenarios: []\n"
        "pipeline:\n  steps: [load, validate, value, stamp, output]\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [wfo_bin, "run", str(params), "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = next(p for p in out.iterdir() if (p / "manifest.json").exists())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [s["step"] for s in manifest["steps"]] == [
        "load",
        "validate",
        "value",
        "stamp",
        "output",
    ]
    valuations = pl.read_parquet(run_dir / "results" / "valuations.parquet")
    rows = valuations.filter(pl.col("method") == "cash_per_share")
    mine = rows.filter(pl.col("status") == "valued")
    # the sample's 40 companies: 38 valued, the 2 whose company rows are quarantined excluded
    assert mine.height == 38
    assert (
        rows.filter(pl.col("status") == "excluded")["reason"]
        .str.starts_with("company row quarantined")
        .all()
    )
    sample = pl.read_csv(ROOT / "wfo_kit" / "sample_data" / "companies.csv")
    expected = sample.select("company_id", (pl.col("cash") / pl.col("shares_diluted")).alias("v"))
    joined = mine.join(expected, on="company_id")
    assert (joined["value_per_share"] - joined["v"]).abs().max() < 1e-12
    bad = subprocess.run(
        [wfo_bin, "run", str(params), "--set", "valuation.methods=[dcf, cash_per_shar]",
         "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "did you mean 'cash_per_share'?" in bad.stderr
    assert "cash_per_share" in bad.stderr.splitlines()[-1]
