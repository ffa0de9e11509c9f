"""r <= g (issue 10 item 4): it excludes the company from the Gordon DCF only, with the reason.

The rule is evaluated on the rate the DCF actually uses (the row's, the configured default, or
the WACC) and only under ``terminal: gordon``; the company is never quarantined for it, so the
comparables and asset methods still value it. The sample's C033 has r 0.09 and g 0.12.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tests.builders import companies, fcff_rows, financials
from wfo_kit.config import load_config
from wfo_kit.pipeline import RunContext, run_pipeline
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies

QUICK = {"sensitivity": {"enabled": False}, "monte_carlo": {"enabled": False}, "scenarios": []}


def sample_run(**valuation: Any) -> RunContext:
    config = load_config(overrides={"valuation": {**QUICK, **valuation}})
    ctx = run_pipeline(RunContext(config), ["load", "validate", "value"])
    assert ctx["quarantine"].filter(pl.col("company_id") == "C033").height == 0
    return ctx


def sample_valuations(**valuation: Any) -> pl.DataFrame:
    return sample_run(**valuation)["valuations"].filter(pl.col("company_id") == "C033")


def statuses(valuations: pl.DataFrame) -> dict[str, tuple[str, str | None]]:
    return {m: (s, r) for m, s, r in valuations.select("method", "status", "reason").rows()}


def test_r_at_or_below_g_is_not_a_bad_row() -> None:
    config = load_config()
    from wfo_kit.io import load_tables

    checked = validate_tables(load_tables(config.data), valuation=config.valuation)
    assert "C033" in checked.valid["companies"]["company_id"].to_list()
    assert "rate_above_growth" not in checked.quarantine["check"].to_list()


def test_gordon_excludes_only_the_dcf_with_the_reason() -> None:
    got = statuses(sample_valuations())
    assert got["dcf"] == (
        "excluded",
        "discount rate 0.09 must exceed terminal growth 0.12",
    )
    assert got["comparables"] == ("valued", None)
    assert got["asset"] == ("valued", None)


def test_exit_multiple_needs_no_r_above_g() -> None:
    ctx = sample_run(terminal="exit_multiple", exit_multiple=10.0)
    got = ctx["valuations"].filter(pl.col("company_id") == "C033")
    assert statuses(got)["dcf"] == ("valued", None)
    assert got.filter(pl.col("method") == "dcf")["value_per_share"].item() > 0
    # the reverse DCF solves a Gordon growth value: for this company it says why it cannot
    reverse = ctx["reverse_dcf"].filter(pl.col("company_id") == "C033").row(0, named=True)
    assert reverse["implied_fcff_growth"] is None
    assert reverse["reason"] == (
        "discount rate not above terminal growth: no Gordon growth value to solve for"
    )


def _dcf_only(rows: list[dict[str, Any]], **valuation: Any) -> dict[str, tuple[str, str | None]]:
    table = companies(*rows)
    flows = financials([r for c in rows for r in fcff_rows(c["company_id"], 2026, [10.0] * 3)])
    config = load_config(overrides={"valuation": {**QUICK, "methods": ["dcf"], **valuation}})
    checked = validate_tables({"companies": table, "financials": flows}, valuation=config.valuation)
    assert checked.quarantine.height == 0  # r <= g never quarantines a row
    out = value_companies(
        checked.valid,
        valuation=config.valuation,
        universe=table["company_id"],
        quarantine=checked.quarantine,
    )
    return {
        c: (s, r) for c, s, r in out["valuations"].select("company_id", "status", "reason").rows()
    }


def test_under_wacc_the_computed_rate_is_what_counts() -> None:
    rows = [
        # the row's rate (0.03) is below g but ignored: WACC = 0.04 + 1.0 x 0.05 = 0.09 > 0.05
        {"company_id": "A", "discount_rate": 0.03, "terminal_growth": 0.05, "beta": 1.0},
        # the row's rate (0.20) is above g but ignored: WACC = 0.04 + 0 x 0.05 = 0.04 <= 0.05
        {"company_id": "B", "discount_rate": 0.20, "terminal_growth": 0.05, "beta": 0.0},
    ]
    rows = [{**r, "market_cap": 1000.0, "debt": 0.0} for r in rows]
    got = _dcf_only(rows, rate_source="wacc")
    assert got["A"] == ("valued", None)
    assert got["B"] == (
        "excluded",
        "discount rate 0.04 must exceed terminal growth 0.05",
    )
    given = _dcf_only(rows)  # with the rows' own rates it is the other way round
    assert given["A"][0] == "excluded"
    assert given["B"] == ("valued", None)


@pytest.mark.parametrize("rate", [0.04, 0.05])
def test_a_configured_default_at_or_below_g_excludes_only_the_dcf(rate: float) -> None:
    rows = [{"company_id": "A", "discount_rate": None, "terminal_growth": None}]
    got = _dcf_only(rows, discount_rate=rate, terminal_growth=0.05)
    assert got["A"][0] == "excluded"
    assert got["A"][1].startswith(f"discount rate {rate} must exceed terminal growth 0.05")


def test_the_spread_warning_stays_and_names_r_at_or_below_g() -> None:
    config = load_config()
    from wfo_kit.io import load_tables

    checked = validate_tables(load_tables(config.data), valuation=config.valuation)
    warned = checked.warnings.filter(pl.col("company_id") == "C033")
    assert warned.select("check", "reason").rows() == [
        (
            "rate_not_above_growth",
            "discount rate 0.09 is not above terminal growth 0.12: the Gordon DCF cannot "
            "value this company",
        )
    ]


def test_the_spread_warning_uses_the_wacc_under_rate_source_wacc() -> None:
    rows = [
        {"company_id": "A", "discount_rate": 0.03, "terminal_growth": 0.05, "beta": 1.0},
        {"company_id": "B", "discount_rate": 0.20, "terminal_growth": 0.035, "beta": 0.0},
    ]
    table = companies(*[{**r, "market_cap": 1000.0, "debt": 0.0} for r in rows])
    config = load_config(overrides={"valuation": {"rate_source": "wacc"}})
    checked = validate_tables({"companies": table}, valuation=config.valuation)
    assert checked.warnings.select("company_id", "check").rows() == [("B", "narrow_spread")]
