"""Valuation accuracy against market prices: ratios, median |log error|, share within 20 %."""

from __future__ import annotations

import math

import polars as pl
import pytest

from wfo_kit.accuracy import accuracy_table


def test_accuracy_by_method_and_sector_by_hand() -> None:
    companies = pl.DataFrame(
        {
            "company_id": ["A", "B", "C", "D", "E"],
            "sector": ["S", "S", "T", "T", "T"],
            "share_price": [10.0, 10.0, 20.0, 20.0, None],
        }
    )
    valuations = pl.DataFrame(
        {
            "company_id": ["A", "B", "C", "D", "E", "A"],
            "method": ["dcf", "dcf", "dcf", "dcf", "dcf", "ddm"],
            "status": ["valued", "valued", "valued", "valued", "valued", "excluded"],
            "value_per_share": [12.0, 8.0, 30.0, -1.0, 50.0, None],
        }
    )
    blend = pl.DataFrame({"company_id": ["A", "C"], "base": [10.0, 24.0]})
    out = accuracy_table(valuations, blend, companies)
    assert out.select("method", "sector").rows() == [
        ("blend", "all"), ("blend", "S"), ("blend", "T"),
        ("dcf", "all"), ("dcf", "S"), ("dcf", "T"),
    ]  # fmt: skip
    dcf = out.filter(pl.col("method") == "dcf", pl.col("sector") == "all").row(0, named=True)
    # priced and positive: A 1.2, B 0.8, C 1.5; D (-1) is not positive; E has no price
    assert dcf["companies"] == 3
    assert dcf["not_positive"] == 1
    assert dcf["median_ratio"] == pytest.approx(1.2)
    assert dcf["median_abs_log_error"] == pytest.approx(abs(math.log(0.8)))
    assert dcf["share_within_20pct"] == pytest.approx(2 / 3)  # 1.2 and 0.8 are at the edges
    t = out.filter(pl.col("method") == "dcf", pl.col("sector") == "T").row(0, named=True)
    assert (t["companies"], t["not_positive"], t["share_within_20pct"]) == (1, 1, 0.0)
    blend_all = out.filter(pl.col("method") == "blend", pl.col("sector") == "all").row(
        0, named=True
    )
    assert blend_all["median_abs_log_error"] == pytest.approx(math.log(1.2) / 2)
    assert blend_all["share_within_20pct"] == 1.0
