"""dcf_wide, the million-company path (issue 10, item 5): a null flow is never a zero.

A null last flow used to count as 0, so the terminal value vanished: FCFF 100, 100, null at 10 %,
g 2 % gave EV 173.55 (the PV of two years) instead of null. Now either the value is null with a
reason, or the caller gives each row's horizon and the row is valued over its own years, equal to
the long path (:func:`wfo_kit.dcf.value_dcf`) on the same forecast. Tolerance: relative 1e-12.
"""

from __future__ import annotations

import polars as pl
import pytest

from tests.builders import companies, fcff_rows, financials
from wfo_kit.dcf import dcf_wide, value_dcf

COLUMNS = ["f1", "f2", "f3"]


def wide(rows: list[dict]) -> pl.DataFrame:
    base = {
        "discount_rate": 0.10,
        "terminal_growth": 0.02,
        "shares_diluted": 10.0,
        "debt": 50.0,
        "cash": 20.0,
        "minority_interest": 0.0,
        "preferred_equity": 0.0,
        "non_operating_assets": 0.0,
    }
    return pl.DataFrame(
        [{**base, **row} for row in rows],
        schema_overrides={c: pl.Float64 for c in COLUMNS} | {"horizon": pl.Int64},
    )


def long_path(flows: list[float], *, timing: str = "end_of_year") -> dict:
    comp = companies({"company_id": "X", "shares_diluted": 10.0, "debt": 50.0, "cash": 20.0})
    detail, _, _ = value_dcf(comp, financials(fcff_rows("X", 2026, flows)), timing=timing)
    return detail.row(0, named=True)


OUTPUTS = ("pv_explicit", "terminal_value", "pv_terminal", "enterprise_value", "value_per_share")


def test_a_null_flow_gives_a_null_value_with_the_reason() -> None:
    frame = wide(
        [
            {"f1": 100.0, "f2": 100.0, "f3": None},
            {"f1": 100.0, "f2": None, "f3": 100.0},
            {"f1": 100.0, "f2": 100.0, "f3": 100.0},
        ]
    )
    out = dcf_wide(frame, flow_columns=COLUMNS)
    for column in OUTPUTS:
        assert out[column].to_list()[:2] == [None, None], column
    reasons = out["reason"].to_list()
    assert "f3" in reasons[0]
    assert "horizon_column" in reasons[0]  # says how to value shorter forecasts
    assert "f2" in reasons[1]
    assert reasons[2] is None
    assert out["enterprise_value"][2] == pytest.approx(
        long_path([100.0, 100.0, 100.0])["enterprise_value"], rel=1e-12
    )


@pytest.mark.parametrize("timing", ["end_of_year", "mid_year"])
def test_each_row_is_valued_over_its_own_horizon(timing: str) -> None:
    frame = wide(
        [
            {"f1": 100.0, "f2": 100.0, "f3": None, "horizon": 2},
            {"f1": 210.0, "f2": 218.0, "f3": 227.0, "horizon": 3},
            {"f1": 80.0, "f2": 999.0, "f3": None, "horizon": 1},  # beyond the horizon: unused
        ]
    )
    out = dcf_wide(frame, flow_columns=COLUMNS, timing=timing, horizon_column="horizon")
    assert out["reason"].to_list() == [None, None, None]
    for i, flows in enumerate([[100.0, 100.0], [210.0, 218.0, 227.0], [80.0]]):
        expected = long_path(flows, timing=timing)
        for column in OUTPUTS:
            assert out[column][i] == pytest.approx(expected[column], rel=1e-12), (i, column)
    if timing == "end_of_year":  # third flow null, horizon 2: EV 1,227.27, not 173.55
        ev = 100 / 1.1 + 100 / 1.1**2 + 100 * 1.02 / 0.08 / 1.1**2
        assert out["enterprise_value"][0] == pytest.approx(ev, rel=1e-12)
        assert ev == pytest.approx(1227.2727, abs=1e-4)


def test_horizon_rows_that_cannot_be_valued_say_why() -> None:
    frame = wide(
        [
            {"f1": 100.0, "f2": None, "f3": None, "horizon": 2},  # null inside the horizon
            {"f1": 100.0, "f2": 100.0, "f3": 100.0, "horizon": 4},  # beyond the columns
            {"f1": 100.0, "f2": 100.0, "f3": 100.0, "horizon": None},
            {"f1": 100.0, "f2": 100.0, "f3": 100.0, "horizon": 3, "discount_rate": 0.02},
        ]
    )
    out = dcf_wide(frame, flow_columns=COLUMNS, horizon_column="horizon")
    assert out["enterprise_value"].to_list() == [None, None, None, None]
    reasons = out["reason"].to_list()
    assert "f2" in reasons[0]
    assert "horizon" in reasons[1]
    assert "horizon" in reasons[2]
    assert "must exceed terminal growth" in reasons[3]
