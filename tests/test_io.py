"""Loaders against real files and real databases (SQLite and DuckDB files), and atomic writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfo_kit.config import load_config
from wfo_kit.io import ROW, atomic_path, load_tables, read_table, write_frame
from wfo_kit.validate import validate_tables

SAMPLE = Path(__file__).resolve().parent.parent / "wfo_kit" / "sample_data"


def sample(name: str) -> pl.DataFrame:
    return read_table(getattr(load_config().data, name), table=name)


def test_sqlite_table_and_query_match_the_csv(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    raw = pl.read_csv(SAMPLE / "companies.csv")
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE companies ({', '.join(raw.columns)})")
        conn.executemany(f"INSERT INTO companies VALUES ({', '.join('?' * raw.width)})", raw.rows())
    params = tmp_path / "p.yaml"
    params.write_text(
        "data:\n  companies: {url: sqlite:///market.db, table: companies}\n"
        '  peers: {url: sqlite:///market.db, query: "SELECT * FROM companies '
        "WHERE sector = 'Energy'\"}\n"
    )
    config = load_config(params)
    from_db = read_table(config.data.companies, table="companies")
    from_csv = sample("companies")
    assert from_db.drop(ROW).equals(from_csv.drop(ROW))
    with pytest.raises(Exception, match=r"peers: .* lacks required column"):
        read_table(config.data.peers, table="peers")


def test_duckdb_table_and_query(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "market.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute(f"CREATE TABLE peers AS SELECT * FROM read_csv_auto('{SAMPLE / 'peers.csv'}')")
    params = tmp_path / "p.yaml"
    params.write_text("data:\n  peers: {url: duckdb:///market.duckdb, table: peers}\n")
    config = load_config(params)
    assert read_table(config.data.peers, table="peers").height == 36
    query = config.data.peers.model_copy(
        update={"table": None, "query": "SELECT * FROM peers WHERE ebitda > 0"}
    )
    assert read_table(query, table="peers").height == 35


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = sample("financials").drop(ROW)
    write_frame(frame, tmp_path / "f.parquet")
    config = load_config(overrides={"data": {"financials": str(tmp_path / "f.parquet")}})
    assert read_table(config.data.financials, table="financials").drop(ROW).equals(frame)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")

    def crash() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        crash()
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


CORRUPTIONS = {
    "null_shares": ("companies", "shares_diluted", None),
    "negative_debt": ("companies", "debt", -1.0),
    "tax_too_high": ("companies", "tax_rate", 1.5),
    "nan_cash": ("companies", "cash", float("nan")),
    "inf_ebit": ("financials", "ebit", float("inf")),
    "null_ebit": ("financials", "ebit", None),
    "unknown_company": ("financials", "company_id", "ZZZ"),
    "bad_side": ("balance_sheet", "side", "equity"),
    "negative_ev": ("peers", "enterprise_value", -3.0),
}


@pytest.fixture(scope="module")
def clean_tables() -> dict[str, pl.DataFrame]:
    return load_tables(load_config().data)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_row_is_valid_or_quarantined_under_random_corruption(
    clean_tables: dict[str, pl.DataFrame], data: st.DataObject
) -> None:
    tables = dict(clean_tables)
    picks = data.draw(st.lists(st.sampled_from(sorted(CORRUPTIONS)), min_size=1, max_size=6))
    for pick in picks:
        table, column, value = CORRUPTIONS[pick]
        frame = tables[table]
        row = data.draw(st.integers(0, frame.height - 1))
        dtype = frame.schema[column]
        tables[table] = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == row)
            .then(pl.lit(value, dtype))
            .otherwise(pl.col(column))
            .alias(column)
        )
    if data.draw(st.booleans()):  # duplicate a random row of a random table too
        name = data.draw(st.sampled_from(sorted(tables)))
        frame = tables[name]
        extra = frame.slice(data.draw(st.integers(0, frame.height - 1)), 1)
        tables[name] = pl.concat(
            [frame, extra.with_columns(pl.lit(frame.height + 1, pl.Int64).alias(ROW))]
        )
    checked = validate_tables(tables)
    for row in checked.quality.iter_rows(named=True):
        table = row["table"]
        assert row["rows_in"] == tables[table].height
        assert row["rows_in"] == row["rows_valid"] + row["rows_quarantined"]
        quarantined = set(checked.quarantine.filter(pl.col("table") == table)["row"].to_list())
        valid = set(checked.valid[table][ROW].to_list())
        assert quarantined.isdisjoint(valid)
        assert quarantined | valid == set(tables[table][ROW].to_list())
