"""Input classes that were accepted silently (issue 17 item 8), checked in every format and for
every column of their kind: duplicate column names are refused; a non-whole number in an integer
column and a blank required text are quarantined with the reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.builders import balance_sheet, companies, fcff_rows, financials, peers
from wfo_kit.config import TableSource
from wfo_kit.errors import DataFormatError
from wfo_kit.io import conform, read_table
from wfo_kit.schemas import INPUT_SCHEMAS, polars_dtypes
from wfo_kit.validate import validate_tables

HEADER = "company_id,year,is_forecast,fcff"


def _source(tmp_path: Path, kind: str, frame: pl.DataFrame | None = None, *, csv: str = "") -> Any:
    """A TableSource of ``kind`` holding ``frame`` (or the CSV text), and where it points."""
    if kind in {"csv", "tsv"}:
        path = tmp_path / f"t.{kind}"
        path.write_text(csv.replace(",", "\t") if kind == "tsv" else csv, encoding="utf-8")
        return TableSource(path=str(path))
    if kind == "parquet":
        path = tmp_path / "t.parquet"
        frame.write_parquet(path)
        return TableSource(path=str(path))
    if kind == "sqlite":
        db = tmp_path / "t.db"
        with sqlite3.connect(db) as conn:
            columns = ", ".join(frame.columns)
            conn.execute(f"CREATE TABLE t ({columns})")
            marks = ", ".join("?" * frame.width)
            conn.executemany(f"INSERT INTO t VALUES ({marks})", frame.rows())
        return TableSource(url=f"sqlite:///{db}", table="t")
    import duckdb

    db = tmp_path / "t.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.register("frame", frame.to_arrow())
        conn.execute("CREATE TABLE t AS SELECT * FROM frame")
    return TableSource(url=f"duckdb:///{db}", table="t")


# --------------------------------------------------------------------------------------------
# Duplicate column names: refused with one line naming the column


@pytest.mark.parametrize("kind", ["csv", "tsv"])
def test_a_repeated_csv_header_is_refused(tmp_path: Path, kind: str) -> None:
    text = f"{HEADER},fcff\nX,2026,true,1,2\n"
    source = _source(tmp_path, kind, csv=text)
    with pytest.raises(DataFormatError) as exc:
        read_table(source, table="financials")
    assert exc.value.one_line() == (
        f"financials: {source.path} has column 'fcff' more than once (columns 4 and 5) "
        "(hint: every column name must be unique: rename or remove the extra column)"
    )
    assert exc.value.column == "fcff"


def test_a_repeated_name_the_reader_would_rename_is_still_refused(tmp_path: Path) -> None:
    # the CSV reader renames the second 'fcff' to 'fcff_duplicated_0'; a column of that name
    # given on purpose is left alone
    ok = _source(tmp_path, "csv", csv=f"{HEADER},fcff_duplicated_0\nX,2026,true,1,2\n")
    assert "fcff_duplicated_0" in read_table(ok, table="financials").columns


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_a_repeated_sql_column_is_refused(tmp_path: Path, kind: str) -> None:
    frame = pl.DataFrame({"company_id": ["X"], "year": [2026], "is_forecast": [True]})
    source = _source(tmp_path, kind, frame)
    query = "SELECT company_id, year, is_forecast, year AS fcff, year AS fcff FROM t"
    source = TableSource(url=source.url, query=query)
    with pytest.raises(DataFormatError) as exc:
        read_table(source, table="financials")
    assert "has column 'fcff' more than once (columns 4 and 5)" in exc.value.one_line()


def test_a_repeated_parquet_column_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    table = pa.table([pa.array(["X"]), pa.array([2026]), pa.array([1.0]), pa.array([2.0])],
                     names=["company_id", "year", "fcff", "fcff"])  # fmt: skip
    pq.write_table(table, path)
    with pytest.raises(DataFormatError) as exc:
        read_table(TableSource(path=str(path)), table="financials")
    assert "'fcff'" in exc.value.one_line()
    assert len(exc.value.one_line().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# Non-whole numbers in integer columns: quarantined, never truncated


def _years(kind: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "company_id": ["X", "X", "X"],
            "year": [2026.0, 2027.5, 2028.0],  # 2027.5 would truncate onto 2027 (no such row)
            "is_forecast": [True, True, True],
            "fcff": [1.0, 2.0, 3.0],
        }
    )


@pytest.mark.parametrize("kind", ["parquet", "csv", "sqlite", "duckdb"])
def test_a_fractional_year_is_quarantined_in_every_format(tmp_path: Path, kind: str) -> None:
    frame = _years(kind).with_columns(pl.col("year").cast(pl.String).str.replace(r"\.0$", ""))
    frame = _years(kind) if kind != "csv" else frame
    source = _source(tmp_path, kind, frame, csv=frame.write_csv())
    table = read_table(source, table="financials")
    checked = validate_tables({"companies": companies(), "financials": table})
    assert checked.quarantine.select("row", "column", "check", "value", "reason").rows() == [
        (2, "year", "whole_number", "2027.5", "year must be a whole number, got 2027.5")
    ]
    valid = checked.valid["financials"]
    assert valid["year"].to_list() == [2026, 2028]
    assert [c for c in valid.columns if c.startswith("_") and c != "_row"] == []


def test_a_fractional_year_does_not_collide_with_the_whole_one() -> None:
    rows = fcff_rows("X", 2026, [1.0, 2.0])
    raw = pl.DataFrame(rows).with_columns(pl.Series("year", [2026.0, 2026.5]))
    checked = validate_tables({"companies": companies(), "financials": financials(raw.to_dicts())})
    # 2026.5 is not a second 2026: only the fractional row is quarantined, for that reason
    assert checked.quarantine.select("row", "check").rows() == [(2, "whole_number")]


def test_whole_floats_are_integers() -> None:
    raw = [{**r, "year": float(r["year"])} for r in fcff_rows("X", 2026, [1.0, 2.0])]
    checked = validate_tables({"companies": companies(), "financials": financials(raw)})
    assert checked.quarantine.height == 0
    assert checked.valid["financials"]["year"].to_list() == [2026, 2027]


def test_every_integer_input_column_is_checked_for_whole_numbers() -> None:
    integer_columns = [
        (table, column)
        for table, schema in INPUT_SCHEMAS.items()
        for column, dtype in polars_dtypes(schema).items()
        if dtype.is_integer()
    ]
    assert integer_columns == [  # a new one is picked up by conform
        ("companies", "high_growth_years"),
        ("companies", "transition_years"),
        ("financials", "year"),
    ]


# --------------------------------------------------------------------------------------------
# Blank required text: quarantined with the reason

MINIMAL = {
    "companies": lambda **kw: companies(kw),
    "financials": lambda **kw: financials([{**fcff_rows("X", 2026, [1.0])[0], **kw}]),
    "peers": lambda **kw: peers(
        [{"peer_id": "P", "name": "Peer", "sector": "S", "enterprise_value": 10.0,
          "market_cap": 8.0, **kw}]
    ),
    "balance_sheet": lambda **kw: balance_sheet(
        [{"company_id": "X", "item": "Land", "side": "asset", "book_value": 1.0,
          "fair_value_adjustment": 0.0, **kw}]
    ),
    "dated_flows": lambda **kw: conform(
        pl.DataFrame([{"company_id": "X", "date": "2026-06-30", "amount": 1.0, **kw}]),
        table="dated_flows", where="test",
    ),
}  # fmt: skip

REQUIRED_TEXT = [
    (table, column)
    for table, schema in INPUT_SCHEMAS.items()
    for column, spec in schema.to_schema().columns.items()
    if spec.dtype.type == pl.String and not spec.nullable
]


@pytest.mark.parametrize("blank", ["", "   ", "\t", "\u00a0"])
@pytest.mark.parametrize(("table", "column"), REQUIRED_TEXT, ids=lambda x: str(x))
def test_blank_required_text_is_quarantined(table: str, column: str, blank: str) -> None:
    tables = {"companies": companies(), table: MINIMAL[table](**{column: blank})}
    checked = validate_tables(tables)
    found = checked.quarantine.filter(pl.col("table") == table, pl.col("column") == column)
    assert found.height >= 1, (table, column)
    spec = INPUT_SCHEMAS[table].to_schema().columns[column]
    if not spec.checks:  # a text with no content check of its own gets the blank check
        assert found.filter(pl.col("check") == "not_blank")["reason"].to_list() == [
            f"{column} is empty or only whitespace"
        ]
    assert checked.valid[table].height == 0


def test_names_with_text_around_spaces_stay_valid() -> None:
    checked = validate_tables({"companies": companies({"name": " A  B "})})
    assert checked.quarantine.height == 0
