"""The validate step on the bundled sample: the documented bad rows, and nothing else."""

from __future__ import annotations

import polars as pl

from wfo_kit.config import load_config
from wfo_kit.io import load_tables
from wfo_kit.validate import validate_tables


def checked_sample():
    config = load_config()
    return validate_tables(load_tables(config.data), valuation=config.valuation)


def test_sample_quarantines_exactly_the_documented_rows() -> None:
    checked = checked_sample()
    got = checked.quarantine.select("table", "row", "company_id", "check", "reason").rows()
    assert got == [
        ("companies", 12, "C012", "unique", "company_id 'C012' is not unique (rows 12, 41)"),
        ("companies", 27, "C027", "greater_than", "shares_diluted must be > 0, got -150.0"),
        (
            "companies",
            33,
            "C033",
            "rate_above_growth",
            "discount rate 0.09 must exceed terminal growth 0.12 (Gordon growth needs r > g)",
        ),
        ("companies", 41, "C012", "unique", "company_id 'C012' is not unique (rows 12, 41)"),
        (
            "financials",
            302,
            "C038",
            "fcff_inputs",
            "forecast row needs fcff, or ebit, depreciation, capex and change_nwc (missing: ebit)",
        ),
    ]


def test_every_row_is_valid_or_quarantined() -> None:
    checked = checked_sample()
    for row in checked.quality.iter_rows(named=True):
        assert row["rows_in"] == row["rows_valid"] + row["rows_quarantined"]
        quarantined = checked.quarantine.filter(pl.col("table") == row["table"])["row"].n_unique()
        assert quarantined == row["rows_quarantined"]
    assert (
        checked.quality.filter(pl.col("table") == "companies").row(0, named=True)["rows_in"] == 41
    )


def test_duplicate_keys_found_sorted_or_not() -> None:
    from wfo_kit.validate import duplicated

    frame = pl.DataFrame({"c": ["a", "a", "b", "b", "b", "c"], "y": [1, 2, 1, 1, 2, 1]})
    expected = [False, False, True, True, False, False]
    assert frame.select(duplicated(frame, "c", "y")).to_series().to_list() == expected
    shuffled = frame.with_row_index("i").sort("y", "c", descending=True)
    marks = shuffled.with_columns(duplicated(shuffled, "c", "y").alias("d")).sort("i")["d"]
    assert marks.to_list() == expected


def test_duplicate_years_are_caught_in_an_unsorted_table() -> None:
    from tests.builders import companies, fcff_rows, financials

    rows = fcff_rows("X", 2026, [1.0, 2.0, 3.0])
    table = financials([rows[2], rows[0], rows[1], rows[0]])  # unsorted, 2026 twice
    checked = validate_tables({"companies": companies(), "financials": table})
    dup = checked.quarantine.filter(pl.col("check") == "unique_company_year")
    assert sorted(dup["row"].to_list()) == [2, 4]
