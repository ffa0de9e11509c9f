"""Comparables' metric year (issue 10, item 8): NTM is the first forecast year, never a later one.

When the first forecast row was quarantined, the "next twelve months" basis silently took year 2.
NTM must be the year right after the last actual year (LTM, symmetrically, the year right before
the first forecast year); otherwise the company is excluded from each multiple with the reason.
"""

from __future__ import annotations

import polars as pl
import pytest

from tests.builders import companies, financials, peers
from wfo_kit.comparables import value_comparables
from wfo_kit.config import ComparablesConfig
from wfo_kit.validate import validate_tables


def peer_table() -> pl.DataFrame:
    return peers(
        [
            {
                "peer_id": f"P{i}",
                "name": f"Peer {i}",
                "sector": "S",
                "enterprise_value": m * 100.0,
                "market_cap": m * 80.0,
                "ebitda": 100.0,
                "revenue": 400.0,
                "ebit": 80.0,
                "net_income": 50.0,
            }
            for i, m in enumerate([9.0, 10.0, 11.0, 12.0, 13.0])
        ]
    )


def year(y: int, *, forecast: bool, ebitda: float, **extra: object) -> dict:
    return {
        "company_id": "X",
        "year": y,
        "is_forecast": forecast,
        "revenue": 10 * ebitda,
        "ebitda": ebitda,
        "ebit": 0.8 * ebitda,
        "net_income": 0.5 * ebitda,
        "depreciation": 0.2 * ebitda,
        "capex": 0.2 * ebitda,
        "change_nwc": 0.0,
        **extra,
    }


ROWS = {
    2024: year(2024, forecast=False, ebitda=200.0),
    2025: year(2025, forecast=False, ebitda=250.0),
    2026: year(2026, forecast=True, ebitda=300.0),
    2027: year(2027, forecast=True, ebitda=400.0),
}


def value(years: list[int], *, basis: str = "ntm", multiples: list[str] | None = None) -> tuple:
    config = ComparablesConfig(basis=basis, multiples=multiples or ["ev_ebitda"])
    fin = financials([ROWS[y] for y in years])
    return value_comparables(companies({}), fin, peer_table(), config=config)


@pytest.mark.parametrize(
    ("basis", "year_used", "ebitda"), [("ntm", 2026, 300.0), ("ltm", 2025, 250.0)]
)
def test_complete_years_use_the_basis_year(basis: str, year_used: int, ebitda: float) -> None:
    valued, detail, _, excluded = value([2024, 2025, 2026, 2027], basis=basis)
    assert excluded.height == 0
    assert detail["metric_value"].to_list() == [ebitda]
    # median EV/EBITDA 11 on the basis year's EBITDA, 100 shares, no bridge items
    assert valued["value_per_share"][0] == pytest.approx(11.0 * ebitda / 100.0, rel=1e-12)


def test_ntm_without_its_first_forecast_year_is_excluded_with_the_reason() -> None:
    valued, detail, _, excluded = value(
        [2024, 2025, 2027], multiples=["ev_ebitda", "ev_sales", "pe"]
    )
    assert valued.height == 0  # not valued on 2027's EBITDA (400) as if it were the NTM
    reason = excluded.row(0, named=True)["reason"]
    assert "2026" in reason
    assert "ntm" in reason
    assert reason.count("2026") == 1  # one reason, not one copy per multiple
    assert detail["reason"].null_count() == 0  # every multiple says why


def test_ltm_without_its_last_actual_year_is_excluded_with_the_reason() -> None:
    valued, _, _, excluded = value([2024, 2026, 2027], basis="ltm")
    assert valued.height == 0
    assert "2025" in excluded["reason"][0]


def test_quarantined_first_forecast_row_is_not_replaced_by_year_two() -> None:
    """End to end through validation: the 2026 row lacks capex and is quarantined."""
    fin = financials([ROWS[2024], ROWS[2025], {**ROWS[2026], "capex": None}, ROWS[2027]])
    checked = validate_tables(
        {"companies": companies({}), "financials": fin, "peers": peer_table()}
    )
    assert checked.quarantine.filter(pl.col("table") == "financials").height == 1
    valid = checked.valid
    valued, _, _, excluded = value_comparables(
        valid["companies"], valid["financials"], valid["peers"], config=ComparablesConfig()
    )
    assert valued.height == 0
    assert "2026" in excluded["reason"][0]
