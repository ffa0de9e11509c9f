"""The validate step on the bundled sample: the documented bad rows, and nothing else."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.exceptions import PanicException

from wfo_kit.config import TableSource, load_config
from wfo_kit.io import conform, load_tables, read_table
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


# --------------------------------------------------------------------------------------------
# Frames in several chunks (issue 17 item 1): a CSV read in parallel, or frames concatenated


def _chunked_financials(n: int, *, chunks: int, nan_rows: tuple[int, ...]) -> pl.DataFrame:
    """``n`` financials rows (10 years per company) as ``chunks`` chunks, NaN capex at rows."""
    index = pl.int_range(n, eager=True)
    raw = pl.DataFrame(
        {
            "company_id": (index // 10).cast(pl.String).str.zfill(7),
            "year": 2021 + index % 10,
            "is_forecast": index % 10 >= 3,
            "ebit": pl.repeat(10.0, n, eager=True),
            "depreciation": pl.repeat(1.0, n, eager=True),
            "capex": pl.Series([float("nan") if i in nan_rows else 5.0 for i in range(n)]),
            "change_nwc": pl.repeat(1.0, n, eager=True),
        }
    )
    size = -(-n // chunks)
    parts = [raw.slice(start, size) for start in range(0, n, size)]
    return pl.concat(parts, rechunk=False)


def _ids_for(frame: pl.DataFrame) -> pl.DataFrame:
    from tests.builders import companies

    ids = frame["company_id"].unique().sort()
    base = companies()
    return conform(
        base.drop("_row").select(pl.all().repeat_by(ids.len()).explode()).with_columns(ids),
        table="companies",
        where="test",
    )


@pytest.mark.parametrize("chunks", [1, 3, 7])
@pytest.mark.parametrize("n", [50, 5_000, 200_000])
def test_nan_rows_are_quarantined_exactly_whatever_the_chunking(n: int, chunks: int) -> None:
    nan_rows = (3, n // 2, n - 5)
    raw = _chunked_financials(n, chunks=chunks, nan_rows=nan_rows)
    table = conform(raw, table="financials", where="test")
    checked = validate_tables({"companies": _ids_for(raw), "financials": table})
    quarantine = checked.quarantine.filter(pl.col("table") == "financials")
    assert quarantine.select("row", "column", "check").rows() == [
        (i + 1, "capex", "finite") for i in nan_rows
    ]
    quality = checked.quality.filter(pl.col("table") == "financials").row(0, named=True)
    assert (quality["rows_in"], quality["rows_quarantined"]) == (n, 3)


@pytest.mark.parametrize("n", [5_000, 200_000])
def test_a_csv_read_in_chunks_validates(n: int, tmp_path: Path) -> None:
    raw = _chunked_financials(n, chunks=1, nan_rows=(10, n // 2, n - 5))
    path = tmp_path / "f.csv"
    raw.write_csv(path)
    table = read_table(TableSource(path=str(path)), table="financials")
    checked = validate_tables({"companies": _ids_for(raw), "financials": table})
    assert checked.quarantine["row"].to_list() == [11, n // 2 + 1, n - 4]
    assert checked.quarantine["reason"].to_list() == ["capex must be a finite number, got NaN"] * 3


def _filtered_with_an_empty_chunk() -> pl.DataFrame:
    three = pl.concat(
        [pl.DataFrame({"s": ["a", "x"]}), pl.DataFrame({"s": ["y"]}), pl.DataFrame({"s": ["b"]})],
        rechunk=False,
    )
    kept = three.filter(pl.Series([True, False, False, True]))
    assert kept["s"].chunk_lengths() == [1, 0, 1]  # the middle chunk is empty
    return kept


@pytest.mark.xfail(
    strict=True,
    raises=PanicException,
    reason="Polars 2.1 bug: pl.format over a column with an empty chunk panics "
    "('assertion failed: i < self.len()'); when this passes, the upstream fix has arrived",
)
def test_polars_format_over_an_empty_chunk_still_panics() -> None:
    got = _filtered_with_an_empty_chunk().select(pl.format("{}!", pl.col("s")))
    assert got.to_series().to_list() == ["a!", "b!"]


def test_our_workaround_for_that_polars_bug_holds() -> None:
    got = _filtered_with_an_empty_chunk().rechunk().select(pl.format("{}!", pl.col("s")))
    assert got.to_series().to_list() == ["a!", "b!"]


def test_valid_frames_come_out_in_one_chunk() -> None:
    raw = _chunked_financials(5_000, chunks=7, nan_rows=(3,))
    table = conform(raw, table="financials", where="test")
    assert set(table.n_chunks("all")) == {1}  # the loader hands over contiguous frames
    checked = validate_tables({"companies": _ids_for(raw), "financials": _typed_in_chunks(raw)})
    assert set(checked.valid["financials"].n_chunks("all")) == {1}


def _typed_in_chunks(raw: pl.DataFrame) -> pl.DataFrame:
    """A contract-typed frame that keeps its chunks (as a library caller may pass one)."""
    typed = conform(raw, table="financials", where="test")
    parts = [typed.slice(i, 1000) for i in range(0, typed.height, 1000)]
    return pl.concat(parts, rechunk=False)


# --------------------------------------------------------------------------------------------
# Sign conventions (issue 10 item 6): amounts the contract fixes as positive


def _reasons(checked, table: str) -> list[tuple[int, str | None, str, str]]:
    return (
        checked.quarantine.filter(pl.col("table") == table)
        .select("row", "column", "check", "reason")
        .rows()
    )


def test_negative_capex_is_quarantined_with_how_to_enter_it() -> None:
    from tests.builders import companies, fcff_rows, financials

    rows = fcff_rows("X", 2026, [None, None, None])
    parts = {"ebit": 100.0, "depreciation": 20.0, "capex": 30.0, "change_nwc": 5.0}
    rows = [{**r, **parts} for r in rows]
    rows[1]["capex"] = -30.0
    rows[2]["capex"] = -12.5
    checked = validate_tables({"companies": companies(), "financials": financials(rows)})
    assert _reasons(checked, "financials") == [
        (2, "capex", "sign", "capex is a positive outflow; enter 30, not -30"),
        (3, "capex", "sign", "capex is a positive outflow; enter 12.5, not -12.5"),
    ]
    assert checked.valid["financials"]["capex"].to_list() == [30.0]


def test_every_sign_convention_column_says_how_to_enter_it() -> None:
    from tests.builders import balance_sheet, companies, fcff_rows, financials

    company = companies(
        {"debt": -50.0, "minority_interest": -4.0, "preferred_equity": -3.0},
    )
    rows = [{**r, "depreciation": -20.0} for r in fcff_rows("X", 2026, [1.0])]
    sheet = balance_sheet(
        [
            {"company_id": "X", "item": "Loan", "side": "liability", "book_value": -500.0,
             "fair_value_adjustment": 0.0, "priority": "secured"},
            {"company_id": "X", "item": "Allowance", "side": "asset", "book_value": -5.0,
             "fair_value_adjustment": 0.0},
        ]
    )  # fmt: skip
    checked = validate_tables(
        {"companies": company, "financials": financials(rows), "balance_sheet": sheet}
    )
    assert sorted(_reasons(checked, "companies")) == [
        (1, "debt", "sign", "debt is a positive amount owed; enter 50, not -50"),
        (1, "minority_interest", "sign", "minority_interest is a positive claim; enter 4, not -4"),
        (1, "preferred_equity", "sign", "preferred_equity is a positive claim; enter 3, not -3"),
    ]
    assert _reasons(checked, "financials") == [
        (
            1,
            "depreciation",
            "sign",
            "depreciation is a positive charge added back; enter 20, not -20",
        )
    ]
    # a contra-asset may be negative; a liability is a positive claim
    assert _reasons(checked, "balance_sheet") == [
        (1, "book_value", "sign",
         "book_value of a liability is a positive claim; enter 500, not -500"),
    ]  # fmt: skip


def test_the_data_contract_states_the_signs() -> None:
    from wfo_kit.schemas import contract_markdown

    doc = contract_markdown()
    assert "positive outflow (30 spent: enter 30, not -30)" in doc
    assert "a liability's book value is entered positive" in doc


# --------------------------------------------------------------------------------------------
# The schema's column checks run in the rules' one pass (issue 16): they quarantine exactly what
# Pandera's own validation of the whole frame does, with the same reasons.

HOSTILE = {
    pl.Float64: [None, float("nan"), float("inf"), float("-inf"), -1.0, -0.5, -1e-12, 0.0, 0.5,
                 1.0, 1.5, 2200.0],
    pl.Int64: [None, -1, 0, 100, 101, 1899, 1900, 2200, 2201],
    pl.String: [None, "", "   ", "usd", "US", "USDX", "EUR", "asset", "liability", "equity",
                "D0", "D2", "<b>x</b>"],
    pl.Boolean: [None, True, False],
}  # fmt: skip


def _hostile(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """The clean rows, then one row per (column, hostile value of its dtype): a copy of a clean
    row with that one cell replaced. The copies get fresh ids (companies, peers, financials), so
    that only a hostile value in a key column makes a duplicate."""
    from wfo_kit.io import ROW
    from wfo_kit.schemas import INPUT_SCHEMAS, polars_dtypes

    key = "peer_id" if table == "peers" else "company_id"
    rows = []
    for column, dtype in polars_dtypes(INPUT_SCHEMAS[table]).items():
        for value in HOSTILE.get(dtype.base_type(), [None]):
            source = frame.slice(len(rows) % frame.height, 1)
            if table != "balance_sheet" and column != key:
                source = source.with_columns(pl.lit(f"K{len(rows)}").alias(key))
            rows.append(source.with_columns(pl.lit(value, dtype).alias(column)))
    return pl.concat([frame, *rows]).with_columns(pl.int_range(1, pl.len() + 1).alias(ROW))


@pytest.mark.parametrize("table", ["companies", "financials", "peers", "balance_sheet"])
def test_column_checks_in_one_pass_quarantine_what_pandera_does(table: str) -> None:
    from polars.testing import assert_frame_equal

    from wfo_kit.config import ValuationConfig
    from wfo_kit.validate import RULES, check_table, column_checks

    config = load_config()
    sample = load_tables(config.data)
    frame = _hostile(sample[table], table)
    if table == "financials":  # a year given as 2023.5 (the loader keeps the fraction aside)
        raw = frame.drop("_row").with_columns(pl.col("year").cast(pl.Float64))
        raw = raw.with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(2023.5)
            .otherwise(pl.col("year"))
            .alias("year")
        )
        frame = conform(raw, table=table, where="test")
    known = [sample["companies"]["company_id"]]  # and the copies' fresh ids
    known += [frame["company_id"]] if "company_id" in frame.columns else []
    ids = pl.concat(known).unique()
    ids = ids.filter(~ids.is_in(HOSTILE[pl.String]))  # a hostile id is unknown too
    rules = RULES[table](frame, valuation=ValuationConfig(), company_ids=ids)
    assert column_checks(frame, table=table) is not None  # the one-pass path is the one taken
    valid, bad = check_table(frame, table=table, rules=rules)
    by_pandera, bad_by_pandera = check_table(frame, table=table, rules=rules, run_pandera=True)
    assert_frame_equal(valid, by_pandera)
    order = ["row", "check", "column"]
    assert_frame_equal(
        bad.sort(order, maintain_order=True), bad_by_pandera.sort(order, maintain_order=True)
    )
    assert valid.height > 0
    assert bad["row"].n_unique() == frame.height - valid.height
    assert bad["check"].n_unique() >= 4  # nulls, NaN, bounds and rules were all exercised


def test_rules_evaluated_once_per_run_of_ids_flag_every_row_in_any_order() -> None:
    from wfo_kit.validate import _blank_rules, _known_company

    ids = ["A", "A", None, None, "Z", " ", "B", "A", "Z", "Z", None, "", "", "B"]
    frame = pl.DataFrame({"company_id": ids})
    known = pl.Series(["A", "B"])
    unknown = frame.select(_known_company(known).fails).to_series()
    assert unknown.to_list() == (~frame["company_id"].is_in(known.implode())).to_list()
    assert unknown.fill_null(False).arg_true().to_list() == [4, 5, 8, 9, 11, 12]
    (blank,) = [r for r in _blank_rules("financials") if r.column == "company_id"]
    blanks = frame.select(blank.fails).to_series()
    assert blanks.to_list() == (frame["company_id"].str.strip_chars() == "").to_list()
    assert blanks.fill_null(False).arg_true().to_list() == [5, 11, 12]


def test_a_check_that_is_not_one_expression_leaves_the_table_to_pandera() -> None:
    import pandera.polars as pa

    from wfo_kit.schemas import INPUT_SCHEMAS
    from wfo_kit.validate import _compiled_checks

    class ElementWise(pa.DataFrameModel):
        x: float = pa.Field(gt=0)

        @pa.check("x", element_wise=True)
        def small(cls, value: float) -> bool:  # noqa: N805 - pandera's classmethod checks
            return value < 10

    class Plain(pa.DataFrameModel):
        x: float = pa.Field(gt=0)

    assert _compiled_checks(ElementWise) is None
    assert [(r.column, r.check) for r in _compiled_checks(Plain)] == [
        ("x", "not_nullable"),
        ("x", "greater_than(0)"),
    ]
    assert all(_compiled_checks(model) is not None for model in INPUT_SCHEMAS.values())


@pytest.mark.parametrize("run_pandera", [False, True], ids=["one_pass", "pandera"])
def test_a_fraction_in_an_integer_column_is_quarantined_whatever_rules_are_given(
    run_pandera: bool,
) -> None:
    # The null check leaves an integer cell that held a fraction (2023.5) to the whole_number
    # rule; check_table adds that rule when the caller's list lacks it, so the row never stays
    # valid with a null year nor leaves without its reason.
    from wfo_kit.validate import check_table

    sample = load_tables(load_config().data)["financials"]
    raw = sample.drop("_row").with_columns(pl.col("year").cast(pl.Float64))
    raw = raw.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(2023.5).otherwise(pl.col("year")).alias("year")
    )
    frame = conform(raw, table="financials", where="test")
    valid, bad = check_table(frame, table="financials", rules=[], run_pandera=run_pandera)
    assert valid.height + bad["row"].n_unique() == frame.height
    assert bad.select("row", "check", "reason").rows() == [
        (4, "whole_number", "year must be a whole number, got 2023.5")
    ]


def test_a_failing_row_no_failure_reports_gets_a_reason_naming_its_checks() -> None:
    from wfo_kit.io import ROW
    from wfo_kit.validate import Rule, _unreported

    failing = pl.DataFrame(
        {ROW: [7, 9], "company_id": ["A", "B"], "__rule0": [True, True], "__rule1": [False, True]}
    )
    rules = [
        Rule(check="not_nullable", column="year", fails=pl.lit(True), reason=pl.lit("")),
        Rule(check="own_rule", column=None, fails=pl.lit(True), reason=pl.lit("")),
    ]
    reported = pl.DataFrame({"row": [7]}, schema={"row": pl.Int64})
    rows = _unreported(failing, reported, rules, ["__rule0", "__rule1"], table="financials")
    assert rows.select("row", "company_id", "check", "reason").rows() == [
        (9, "B", "unreported", "failed not_nullable (year), own_rule")
    ]
    flags = ["__rule0", "__rule1"]
    both = _unreported(failing, reported.head(0), rules, flags, table="financials")
    assert both["row"].to_list() == [7, 9]  # neither row reported: both get one
    assert _unreported(failing, both, rules, flags, table="financials").height == 0
