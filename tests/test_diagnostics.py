"""Diagnostics traffic lights: each threshold at its edge, grey with the missing input named."""

from __future__ import annotations

import polars as pl
import pytest

from tests.builders import companies, fcff_rows, financials
from wfo_kit.config import DiagnosticsConfig, ValuationConfig
from wfo_kit.diagnostics import diagnostics_table
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies


def _detail(**columns: list) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "company_id": [f"C{i}" for i in range(n)],
        "tax_rate": [0.25] * n,
        "discount_rate": [0.10] * n,
        "terminal_growth": [0.02] * n,
        "terminal_share": [0.5] * n,
        "spread": [0.08] * n,
        "implied_exit_multiple": [10.0] * n,
    }
    return pl.DataFrame({**base, **columns})


NO_ROWS = financials(fcff_rows("none", 2026, [1.0])).filter(pl.lit(False))


def _lights(detail: pl.DataFrame, check: str, **kwargs: object) -> list[str]:
    out = diagnostics_table(
        detail, financials=NO_ROWS, peers=kwargs.get("peers"), config=DiagnosticsConfig()
    )
    return out.filter(pl.col("check") == check).sort("company_id")["light"].to_list()


def test_terminal_share_edges() -> None:
    detail = _detail(terminal_share=[0.75, 0.7500001, 0.85, 0.8500001, -0.1, None])
    assert _lights(detail, "terminal_share") == ["green", "amber", "amber", "red", "red", "grey"]


def test_spread_edges() -> None:
    detail = _detail(spread=[0.03, 0.0299999, 0.015, 0.0149999])
    assert _lights(detail, "spread") == ["green", "amber", "amber", "red"]


def test_exit_multiple_against_the_peer_quartiles() -> None:
    peers = pl.DataFrame(
        {
            "company_id": [f"C{i}" for i in range(6)],
            "multiple": ["ev_ebitda"] * 5 + ["ev_sales"],
            "low": [8.0] * 6,
            "high": [12.0] * 6,
        }
    )
    detail = _detail(implied_exit_multiple=[8.0, 12.0, 6.4, 15.0, 15.01, 10.0])
    # 6.4 = 8 / 1.25 and 15 = 12 x 1.25: amber edges; C5 has no EV/EBITDA peers: grey
    lights = _lights(detail, "exit_multiple_vs_peers", peers=peers)
    assert lights == ["green", "green", "amber", "amber", "red", "grey"]


def test_roic_and_growth_consistency_from_the_forecast_by_hand() -> None:
    # year 2027: EBIT 200, t 25 % -> NOPAT 150; IC at the start (2026's) 1,000 -> ROIC 15 %;
    # reinvestment 60 - 40 + 10 = 30 -> rate 20 %; fundamental growth 3 %; g 2 %: gap -1 %.
    comp = companies({"discount_rate": 0.10, "terminal_growth": 0.02})
    rows = [
        {"company_id": "X", "year": y, "is_forecast": True, "ebit": 200.0, "ebitda": 240.0,
         "depreciation": 40.0, "capex": 60.0, "change_nwc": 10.0, "invested_capital": ic}
        for y, ic in ((2026, 1000.0), (2027, 1030.0))
    ]  # fmt: skip
    valuation = ValuationConfig(
        methods=["dcf"],
        monte_carlo={"enabled": False},
        scenarios=[],
        sensitivity={"enabled": False},
    )
    checked = validate_tables(
        {"companies": comp, "financials": financials(rows)}, valuation=valuation
    )
    out = value_companies(
        checked.valid,
        valuation=valuation,
        universe=comp["company_id"],
        quarantine=checked.quarantine,
    )
    table = out["diagnostics"]
    got = dict(zip(table["check"], zip(table["value"], table["light"], strict=True), strict=True))
    assert got["roic_vs_wacc"][0] == pytest.approx(0.05, abs=1e-12)
    assert got["roic_vs_wacc"][1] == "green"
    assert got["growth_consistency"][0] == pytest.approx(0.02 - 0.2 * 0.15, abs=1e-12)
    assert got["growth_consistency"][1] == "green"  # |-0.01| <= 0.01
    assert got["exit_multiple_vs_peers"][1] == "grey"  # no peers table
    note = table.filter(pl.col("check") == "exit_multiple_vs_peers")["note"][0]
    assert note == "needs EBITDA_N > 0 and peers with EV/EBITDA"


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="spread_amber must be looser"):
        DiagnosticsConfig(spread_green=0.01, spread_amber=0.02)
