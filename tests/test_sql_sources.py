"""SQL sources read their own database and nothing else (issue 11 item 1).

A `query:` or `table:` in a parameters file may run one SELECT on the database its `url` names:
no other statement, no other file read or written, no extension, setting or secret. Each case runs
against a real SQLite or DuckDB file under tmp_path, with an outside file holding a marker: the
refusal is one line (exit 2), the file a statement would write does not exist afterwards, and the
marker appears nowhere (not in the message, not in any file written).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from wfo_kit import errors
from wfo_kit.config import TableSource
from wfo_kit.io import read_table

SAMPLE = Path(__file__).resolve().parent.parent / "wfo_kit" / "sample_data"
MARKER = "OUTSIDE-MARKER-7f3a"
HINT = "(hint: a SQL source runs one SELECT on its own database:"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the database, with a text, a CSV and a Parquet file holding the marker."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(f"{MARKER}\n")
    (folder / "secret.csv").write_text(f"a\n{MARKER}\n")
    pl.DataFrame({"a": [MARKER]}).write_parquet(folder / "secret.parquet")
    return folder


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def kept(db: Path) -> list[tuple]:
    """The rows of table ``keep``, which no refused statement may have changed."""
    if db.suffix == ".duckdb":
        import duckdb

        with duckdb.connect(str(db), read_only=True) as conn:
            return conn.sql("SELECT * FROM keep").fetchall()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT * FROM keep").fetchall()


def assert_nothing_leaked(root: Path, before: set[Path], message: str) -> None:
    assert files_under(root) == before
    assert MARKER not in message
    assert len(message.splitlines()) == 1, message


# --------------------------------------------------------------------------------------------
# DuckDB


@pytest.fixture
def duck(tmp_path: Path) -> Path:
    import duckdb

    db = tmp_path / "market.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute(f"CREATE TABLE peers AS SELECT * FROM read_csv_auto('{SAMPLE / 'peers.csv'}')")
        conn.execute("CREATE TABLE keep AS SELECT 1 AS x")
    return db


def read_duck(db: Path, *, query: str | None = None, table: str | None = None) -> pl.DataFrame:
    return read_table(TableSource(url=f"duckdb:///{db}", query=query, table=table), table="peers")


def refused_duck(db: Path, query: str, root: Path) -> str:
    before = files_under(root)
    with pytest.raises(errors.ConfigurationError) as info:
        read_duck(db, query=query)
    assert info.value.exit_code == 2
    message = info.value.one_line()  # as the CLI prints it
    assert_nothing_leaked(root, before, str(info.value))
    assert message.startswith(f"peers: query refused for SQL source duckdb:///{db}: "), message
    assert HINT in message
    assert MARKER not in message
    return message


def test_duckdb_select_still_reads(duck: Path) -> None:
    assert read_duck(duck, table="peers").height == 36
    assert read_duck(duck, query="SELECT * FROM peers WHERE ebitda > 0;").height == 35
    with_cte = "WITH p AS (SELECT * FROM peers) SELECT * FROM p"
    assert read_duck(duck, query=with_cte).height == 36


def test_duckdb_copy_to_writes_no_file(duck: Path, tmp_path: Path) -> None:
    target = tmp_path / "copied.csv"
    message = refused_duck(duck, f"COPY (SELECT 'x') TO '{target}'", tmp_path)
    assert message.endswith(": COPY is not a SELECT statement " + message[message.index(HINT) :])
    assert not target.exists()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('{dir}/secret.csv')",
        "SELECT * FROM read_csv_auto('{dir}/secret.csv')",
        "SELECT * FROM '{dir}/secret.csv'",
        "SELECT * FROM read_parquet('{dir}/secret.parquet')",
        "SELECT * FROM read_text('{dir}/secret.txt')",
        "SELECT * FROM read_blob('{dir}/secret.txt')",
        "SELECT * FROM glob('{dir}/*')",
        "SELECT * FROM peers UNION ALL BY NAME SELECT * FROM read_csv('/etc/hostname')",
    ],
    ids=["read_csv", "read_csv_auto", "replacement-scan", "read_parquet", "read_text",
         "read_blob", "glob", "system-file"],
)  # fmt: skip
def test_duckdb_reads_no_outside_file(
    duck: Path, tmp_path: Path, outside: Path, query: str
) -> None:
    message = refused_duck(duck, query.format(dir=outside), tmp_path)
    assert message.endswith(
        ": it reads or writes outside its database (file system access is disabled) "
        + message[message.index(HINT) :]
    )


def test_duckdb_refusal_does_not_echo_a_credential_in_a_url(duck: Path, tmp_path: Path) -> None:
    query = "SELECT * FROM read_csv('https://analyst:tok3n-s3cr3t@example.invalid/x.csv')"
    message = refused_duck(duck, query, tmp_path)
    assert "tok3n-s3cr3t" not in message
    assert "reads or writes outside its database" in message


def test_duckdb_view_over_an_outside_file_is_not_followed(tmp_path: Path, outside: Path) -> None:
    """The database file itself may hold a view that reads another file: still refused."""
    import duckdb

    db = tmp_path / "views.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute(f"CREATE VIEW leak AS SELECT * FROM read_csv('{outside / 'secret.csv'}')")
    before = files_under(tmp_path)
    with pytest.raises(errors.ConfigurationError, match="outside its database") as info:
        read_duck(db, table="leak")
    assert_nothing_leaked(tmp_path, before, str(info.value))


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("ATTACH '{new}' AS other", "ATTACH"),
        ("ATTACH ':memory:' AS other", "ATTACH"),
        ("INSTALL httpfs", "INSTALL/LOAD"),
        ("LOAD httpfs", "INSTALL/LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("RESET lock_configuration", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's3cr3t')", "CREATE"),
        ("CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 's3cr3t')", "CREATE"),
        ("EXPORT DATABASE '{new}'", "EXPORT"),
        ("CALL pragma_version()", "CALL"),
        ("DROP TABLE keep", "DROP"),
    ],
    ids=["attach-file", "attach-memory", "install", "load", "set", "reset", "pragma",
         "create-secret", "create-persistent-secret", "export", "call", "drop"],
)  # fmt: skip
def test_duckdb_refuses_statements_other_than_select(
    duck: Path, tmp_path: Path, query: str, kind: str
) -> None:
    new = tmp_path / "new.duckdb"
    message = refused_duck(duck, query.format(new=new), tmp_path)
    assert f": {kind} is not a SELECT statement (hint:" in message
    assert not new.exists()
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("SELECT * FROM peers; DROP TABLE keep", 2),
        ("SELECT * FROM peers; COPY (SELECT 'x') TO '{out}'", 2),
        ("SELECT 1; SELECT 2; SELECT * FROM peers", 3),
    ],
    ids=["select-drop", "select-copy", "three-selects"],
)
def test_duckdb_runs_one_statement(duck: Path, tmp_path: Path, query: str, count: int) -> None:
    out = tmp_path / "copied.csv"
    message = refused_duck(duck, query.format(out=out), tmp_path)
    assert f": {count} statements, not one SELECT (hint:" in message
    assert not out.exists()
    assert kept(duck) == [(1,)]


def test_duckdb_empty_query_is_refused(duck: Path, tmp_path: Path) -> None:
    message = refused_duck(duck, "  -- nothing", tmp_path)
    assert ": no statement, not one SELECT (hint:" in message


def test_duckdb_hostile_table_name_is_a_name(duck: Path) -> None:
    name = 'x"; DROP TABLE keep; --'
    with pytest.raises(errors.DataFormatError) as info:
        read_duck(duck, table=name)
    message = str(info.value)
    assert message == (
        f"peers: SQL source duckdb:///{duck} failed: Catalog Error: Table with name {name} "
        "does not exist!"
    )
    assert kept(duck) == [(1,)]


def test_duckdb_table_name_can_name_its_schema(duck: Path) -> None:
    assert read_duck(duck, table="main.peers").height == 36
    with pytest.raises(errors.DataFormatError, match='schema "nope" does not exist'):
        read_duck(duck, table="nope.peers")


def test_duckdb_quoted_table_names_round_trip(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "odd.duckdb"
    name = 'my "peers" table; --'
    with duckdb.connect(str(db)) as conn:
        quoted = '"' + name.replace('"', '""') + '"'
        conn.execute(
            f"CREATE TABLE {quoted} AS SELECT * FROM read_csv_auto('{SAMPLE / 'peers.csv'}')"
        )
    assert read_duck(db, table=name).height == 36


@pytest.mark.parametrize("name", ["", ".", "main.", ".peers"])
def test_table_name_with_an_empty_part_is_refused(duck: Path, name: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=r"table name .* has an empty part"):
        read_duck(duck, table=name)


# --------------------------------------------------------------------------------------------
# SQLite


def sqlite_db(path: Path) -> Path:
    raw = pl.read_csv(SAMPLE / "peers.csv")
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE peers ({', '.join(raw.columns)})")
        conn.executemany(f"INSERT INTO peers VALUES ({', '.join('?' * raw.width)})", raw.rows())
        conn.execute("CREATE TABLE keep (x)")
        conn.execute("INSERT INTO keep VALUES (1)")
    conn.close()
    return path


@pytest.fixture
def lite(tmp_path: Path) -> Path:
    return sqlite_db(tmp_path / "market.db")


def read_lite(db: Path, *, query: str | None = None, table: str | None = None) -> pl.DataFrame:
    return read_table(TableSource(url=f"sqlite:///{db}", query=query, table=table), table="peers")


def refused_lite(db: Path, query: str, root: Path) -> str:
    before = files_under(root)
    with pytest.raises(errors.ConfigurationError) as info:
        read_lite(db, query=query)
    assert info.value.exit_code == 2
    message = info.value.one_line()  # as the CLI prints it
    assert_nothing_leaked(root, before, str(info.value))
    assert message.startswith(f"peers: query refused for SQL source sqlite:///{db}: "), message
    assert HINT in message
    assert MARKER not in message
    return message


def test_sqlite_select_still_reads(lite: Path) -> None:
    assert read_lite(lite, table="peers").height == 36
    assert read_lite(lite, table="main.peers").height == 36
    assert read_lite(lite, query="SELECT * FROM peers WHERE ebitda > 0;").height == 35
    recursive = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 36) "
        "SELECT p.*, upper(p.name) AS shout, coalesce(p.ebit, 0) AS e FROM peers p "
        "JOIN n ON n.i = p.rowid"
    )
    assert read_lite(lite, query=recursive).height == 36


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("ATTACH DATABASE '{new}' AS other", "ATTACH is not a read"),
        ("VACUUM INTO '{new}'", "ATTACH is not a read"),
        ("PRAGMA user_version", "PRAGMA is not a read"),
        ("PRAGMA journal_mode = WAL", "PRAGMA is not a read"),
        ("SELECT * FROM pragma_table_info('peers')", "is not a read"),
        ("BEGIN IMMEDIATE", "TRANSACTION is not a read"),
        ("CREATE TEMP TABLE t AS SELECT 1", "is not a read"),
        ("DELETE FROM keep", "DELETE is not a read"),
        ("SELECT load_extension('{new}')", "function load_extension() is not allowed"),
    ],
    ids=["attach", "vacuum-into", "pragma-read", "pragma-write", "pragma-function", "begin",
         "create-temp", "delete", "load_extension"],
)  # fmt: skip
def test_sqlite_refuses_anything_but_reads(
    lite: Path, tmp_path: Path, query: str, reason: str
) -> None:
    new = tmp_path / "new.db"
    message = refused_lite(lite, query.format(new=new), tmp_path)
    assert reason in message
    assert not new.exists()
    assert kept(lite) == [(1,)]


def test_sqlite_runs_one_statement(lite: Path, tmp_path: Path) -> None:
    message = refused_lite(lite, "SELECT * FROM peers; DELETE FROM keep", tmp_path)
    assert ": several statements, not one SELECT (hint:" in message
    message = refused_lite(lite, "-- nothing", tmp_path)
    assert ": no statement, not one SELECT (hint:" in message
    assert kept(lite) == [(1,)]


def test_sqlite_hostile_table_name_is_a_name(lite: Path) -> None:
    for name in ['x"; DROP TABLE keep; --', 'peers" LIMIT 1 --']:
        with pytest.raises(errors.DataFormatError) as info:
            read_lite(lite, table=name)
        assert str(info.value) == (
            f"peers: SQL source sqlite:///{lite} failed: no such table: {name}"
        )
    assert kept(lite) == [(1,)]


@pytest.mark.parametrize("name", ["odd?mode=rwc#x.db", "a%41b.db", "with space & #hash.db"])
def test_sqlite_path_with_uri_characters(tmp_path: Path, name: str) -> None:
    """`?`, `#` and `%` in the file name are part of the name, not of the URI."""
    folder = tmp_path / "dir?x#y"
    folder.mkdir()
    db = sqlite_db(folder / name)
    before = files_under(tmp_path)
    assert read_lite(db, table="peers").height == 36
    assert files_under(tmp_path) == before
    with pytest.raises(errors.ConfigurationError, match="DELETE is not a read"):
        read_lite(db, query="DELETE FROM keep")
    assert kept(db) == [(1,)]
