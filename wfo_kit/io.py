"""Loading input tables and writing outputs atomically.

Loaders read every source into a Polars frame typed by the data contract (:mod:`wfo_kit.schemas`),
with a ``_row`` column holding the 1-based source row number so that validation can quarantine
rows by where they came from. File-level problems raise :class:`~wfo_kit.errors.DataFormatError`
naming the file and what is wrong, in one line; a SQL source that is only busy (a lock held by
another connection or process) raises the retryable
:class:`~wfo_kit.errors.SourceUnavailableError` instead.

Writers never leave a half-written file under its final name: they write a temporary file in the
same folder and ``os.replace`` it into place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from wfo_kit.config import REQUIRED_TABLES, DataConfig, TableSource, is_http, require_tables
from wfo_kit.errors import (
    ConfigurationError,
    DataFormatError,
    InfrastructureError,
    SourceUnavailableError,
    nearest,
)
from wfo_kit.schemas import INPUT_SCHEMAS, OPTIONAL_COLUMNS, polars_dtypes
from wfo_kit.trust import neutralise_formulas

ROW = "_row"
#: Prefix of the helper column that carries a number read for an integer column but not whole
#: (2023.5 for ``year``): the typed column holds null there, validation quarantines the row.
FRACTION = "_fraction_"
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def load_tables(data: DataConfig, *, security: Any = None) -> dict[str, pl.DataFrame]:
    """Read every input table given, typed by the contract; a table not given is left out.

    Raises a ConfigurationError when ``companies`` or ``financials`` is not given. ``security``
    (``config.security``) limits HTTP sources in confinement (:mod:`wfo_kit.httpsource`).
    """
    tables = {}
    for name in INPUT_SCHEMAS:
        source = getattr(data, name)
        if source is None and name in REQUIRED_TABLES:
            require_tables(data)
        if source is not None:
            tables[name] = read_table(source, table=name, security=security)
    return tables


def read_table(source: TableSource, *, table: str, security: Any = None) -> pl.DataFrame:
    """One input table from a file, a SQL or an HTTP source, conformed to the contract."""
    if source.url is not None and is_http(source.url):
        from wfo_kit.httpsource import fetch, shown

        return conform(fetch(source, table=table, security=security).frame, table=table,
                       where=shown(source.url))  # fmt: skip
    if source.path is not None:
        raw = _read_file(Path(source.path), table=table)
        where = source.path
    else:
        raw = _read_sql(source, table=table)
        where = _mask_url(source.url or "")
    return conform(raw, table=table, where=where)


def _read_file(path: Path, *, table: str) -> pl.DataFrame:
    if not path.is_file():
        msg = f"{table}: file not found: {path}"
        raise DataFormatError(msg, table=table, hint=f"check `data.{table}` in the parameters file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            return pl.read_parquet(path)
        except Exception as exc:
            msg = f"{table}: cannot read Parquet file {path}: {_first_line(exc)}"
            raise DataFormatError(msg, table=table) from exc
    if suffix not in {".csv", ".txt", ".tsv"}:
        msg = f"{table}: unsupported file type {suffix!r} for {path}"
        raise DataFormatError(msg, table=table, hint="use .csv or .parquet, or a SQL `url`")
    return _read_csv(path, table=table)


def _read_csv(path: Path, *, table: str) -> pl.DataFrame:
    if path.stat().st_size == 0:
        msg = f"{table}: file is empty: {path}"
        raise DataFormatError(msg, table=table, hint="a CSV needs a header row")
    head = path.read_bytes()[:65536]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the sample's end
            line = head[: exc.start].count(b"\n") + 1
            msg = f"{table}: {path} is not UTF-8 text (undecodable byte at line {line})"
            raise DataFormatError(msg, table=table, hint="save the file as UTF-8") from exc
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        frame = pl.read_csv(path, infer_schema=False, separator=separator)
    except pl.exceptions.NoDataError as exc:
        msg = f"{table}: file is empty: {path}"
        raise DataFormatError(msg, table=table) from exc
    except Exception as exc:
        msg = f"{table}: cannot read CSV {path}: {_first_line(exc)}"
        raise DataFormatError(msg, table=table) from exc
    if any("_duplicated_" in name for name in frame.columns):  # how the reader renames a repeat
        _refuse_repeated_columns(
            _csv_header(path, separator=separator), table=table, where=str(path)
        )
    if frame.width == 1:
        header = frame.columns[0]
        for other in (";", "\t", "|"):
            if other in header:
                shown = {"\t": "tab"}.get(other, other)
                msg = f"{table}: {path} looks {shown!r}-delimited; comma-separated is expected"
                raise DataFormatError(msg, table=table, hint="export the file as CSV with commas")
    return frame


def _csv_header(path: Path, *, separator: str) -> list[str]:
    """The header cells as written (the reader renames a repeated name to ``x_duplicated_0``)."""
    head = pl.read_csv(path, has_header=False, n_rows=1, infer_schema=False, separator=separator)
    return [str(cell) for cell in head.row(0)] if head.height else []


def _refuse_repeated_columns(names: list[str], *, table: str, where: str) -> None:
    """A one-line DataFormatError when a column name occurs more than once."""
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            msg = (
                f"{table}: {where} has column {name!r} more than once "
                f"(columns {seen[name]} and {position})"
            )
            hint = "every column name must be unique: rename or remove the extra column"
            raise DataFormatError(msg, table=table, column=name, hint=hint)
        seen[name] = position


def _expand_env(url: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            msg = f"environment variable {name} used in a SQL url is not set"
            raise ConfigurationError(msg)
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", replace, url)


def _expand_stashed(query: str) -> str:
    """A query with the ``${WFO_SECRET_n}`` placeholders that wfo put in place of literal
    credentials (wfo_kit.config.externalize_secrets) filled from the environment. No other
    variable is expanded in a query: a parameters file cannot read the environment through it."""

    def replace(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:
            msg = f"credential placeholder {match.group(0)} is not set in the environment"
            raise ConfigurationError(msg, hint="run through `wfo run`, which sets it")
        return value

    return re.sub(r"\$\{(WFO_SECRET_\d+)\}", replace, query)


def _mask_url(url: str) -> str:
    """A URL safe to print: any password is replaced by ***."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def _read_sql(source: TableSource, *, table: str) -> pl.DataFrame:
    """A table from a SQL source: one SELECT on the database file, reading nothing else.

    ``table:`` is a name, never SQL: ``name`` or ``schema.name`` (split at the first dot), each
    part double-quoted with its own double quotes doubled. A ``query:`` must be one SELECT
    statement (``WITH ... SELECT`` included): SQLite runs it under an authorizer that allows only
    reads, DuckDB parses it with its own parser and runs it on a connection with external access
    disabled and the configuration locked. Anything else is a ConfigurationError naming the reason.
    """
    url = _expand_env(source.url or "")  # holds secrets: never put `url` in a message
    if source.query is not None:
        query = _expand_stashed(source.query)
    else:
        query = f"SELECT * FROM {_quoted_table(source.table or '', table=table)}"
    scheme = url.split(":", 1)[0]
    rest = url.partition(":///")[2]
    shown = _mask_url(source.url or "")
    try:
        if scheme == "sqlite":
            if not Path(rest).is_file():
                msg = f"{table}: SQLite database not found: {rest}"
                raise DataFormatError(msg, table=table)
            return _read_sqlite(Path(rest), query, source=source, table=table, shown=shown)
        if scheme == "duckdb":
            if not Path(rest).is_file():
                msg = f"{table}: DuckDB database not found: {rest}"
                raise DataFormatError(msg, table=table)
            return _read_duckdb(Path(rest), query, table=table, shown=shown)
    except (DataFormatError, ConfigurationError):
        raise
    except Exception as exc:
        busy = _transient(exc)
        if busy is not None:
            msg = f"{table}: SQL source {shown} is {busy}: {_first_line(exc)}"
            raise SourceUnavailableError(
                msg,
                table=table,
                hint="retried with backoff per pipeline.retry; if it stays locked, find the "
                "process holding the lock",
            ) from exc
        msg = f"{table}: SQL source {shown} failed: {_first_line(exc)}"
        raise DataFormatError(msg, table=table) from exc
    msg = f"{table}: unsupported SQL url scheme {scheme!r}"
    raise ConfigurationError(msg, hint="use sqlite:///path.db or duckdb:///path.duckdb")


def _quoted_table(name: str, *, table: str) -> str:
    """``name`` (``table`` or ``schema.table``) as quoted SQL identifiers: a name, never SQL.

    >>> _quoted_table('main.peers', table='peers')
    '"main"."peers"'
    >>> _quoted_table('x"; DROP TABLE y; --', table='peers')
    '"x""; DROP TABLE y; --"'
    """
    parts = name.split(".", 1)
    if not all(parts):
        msg = f"{table}: table name {name!r} has an empty part"
        hint = (
            "write `table: name` or `table: schema.name`; for a table whose name holds a dot, "
            'use `query: SELECT * FROM "a.b"`'
        )
        raise ConfigurationError(msg, table=table, hint=hint)
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


_QUERY_HINT = (
    "a SQL source runs one SELECT on its own database: no other statement, no other file, "
    "extension, setting or secret"
)


def _refused(reason: str, *, table: str, shown: str) -> ConfigurationError:
    msg = f"{table}: query refused for SQL source {shown}: {reason}"
    return ConfigurationError(msg, table=table, hint=_QUERY_HINT)


#: Settings of every DuckDB connection a source opens: only the database file is reachable
#: (no other file, URL or extension, whether by COPY, read_csv, ATTACH, INSTALL or a view), and
#: ``lock_configuration`` keeps a query's SET, RESET or PRAGMA from undoing that.
DUCKDB_SETTINGS: Mapping[str, bool] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}
#: DuckDB statement types shown by what one writes (INSTALL parses as a LOAD statement).
_DUCKDB_KINDS = {"LOAD": "INSTALL/LOAD", "VARIABLE_SET": "SET"}


def _read_duckdb(path: Path, query: str, *, table: str, shown: str) -> pl.DataFrame:
    import duckdb

    conn = duckdb.connect(str(path), read_only=True, config=dict(DUCKDB_SETTINGS))
    with contextlib.closing(conn):
        statements = conn.extract_statements(query)
        if len(statements) != 1:
            count = f"{len(statements)} statements" if statements else "no statement"
            reason = f"{count}, not one SELECT"
            raise _refused(reason, table=table, shown=shown)
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            shown_kind = _DUCKDB_KINDS.get(kind.name, kind.name)
            reason = f"{shown_kind} is not a SELECT statement"
            raise _refused(reason, table=table, shown=shown)
        try:
            relation = conn.sql(statements[0])  # the statement parsed above, not the text again
            # .pl() would rename a repeated name to x_1
            _refuse_repeated_columns(relation.columns, table=table, where=f"SQL source {shown}")
            return relation.pl()
        except duckdb.PermissionException as exc:
            # DuckDB's message names the path or URL, which may hold a credential: not echoed
            reason = "it reads or writes outside its database (file system access is disabled)"
            raise _refused(reason, table=table, shown=shown) from exc


#: SQLite authorizer actions a source's statement may take: select, read a column, recurse.
_SQLITE_READS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
#: SQL functions refused even in a SELECT (the last three exist only in the sqlite3 shell).
_SQLITE_DENIED_FUNCTIONS = frozenset(
    {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}
)
_SQLITE_ACTION_NAMES = (
    "ALTER_TABLE", "ANALYZE", "ATTACH", "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX",
    "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW", "CREATE_TRIGGER",
    "CREATE_VIEW", "CREATE_VTABLE", "DELETE", "DETACH", "DROP_INDEX", "DROP_TABLE",
    "DROP_TEMP_INDEX", "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER",
    "DROP_VIEW", "DROP_VTABLE", "INSERT", "PRAGMA", "REINDEX", "SAVEPOINT", "TRANSACTION",
    "UPDATE",
)  # fmt: skip
#: Authorizer action codes by name, for the message that says what was refused.
_SQLITE_ACTIONS = {getattr(sqlite3, f"SQLITE_{name}"): name for name in _SQLITE_ACTION_NAMES}


def _read_sqlite(
    path: Path, query: str, *, source: TableSource, table: str, shown: str
) -> pl.DataFrame:
    # as_uri() percent-encodes `?`, `#` and `%`, which a hand-built "file:" URI would read as
    # its query, fragment or an escape (and then open or create another file, read-write)
    uri = f"{path.absolute().as_uri()}?mode=ro"
    denied: list[str] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, *_: str | None) -> int:
        if action in _SQLITE_READS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in (
            _SQLITE_DENIED_FUNCTIONS
        ):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            denied.append(f"function {arg2}() is not allowed")
        else:
            name = _SQLITE_ACTIONS.get(action, f"action {action}")
            denied.append(f"{name} is not a read" + (f" ({arg1})" if arg1 else ""))
        return sqlite3.SQLITE_DENY

    conn = sqlite3.connect(uri, uri=True, timeout=source.lock_timeout)
    with contextlib.closing(conn):
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(authorize)
        try:
            cursor = conn.execute(query)  # refuses a second statement before running the first
        except sqlite3.ProgrammingError as exc:
            if "one statement at a time" not in str(exc):
                raise
            reason = "several statements, not one SELECT"
            raise _refused(reason, table=table, shown=shown) from exc
        except sqlite3.DatabaseError as exc:
            if denied:
                raise _refused(denied[0], table=table, shown=shown) from exc
            raise
        if cursor.description is None:  # nothing but blanks and comments
            reason = "no statement, not one SELECT"
            raise _refused(reason, table=table, shown=shown)
        columns = [d[0] for d in cursor.description]
        _refuse_repeated_columns(columns, table=table, where=f"SQL source {shown}")
        rows = cursor.fetchall()
    return pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)


#: OS errors that say "not now" rather than "not so": a retry can succeed.
TRANSIENT_ERRNOS = frozenset(
    {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ENOLCK, errno.EDEADLK}
)


def _transient(exc: BaseException) -> str | None:
    """Why a failure of a SQL source is temporary (a lock held elsewhere, a busy device), or None.

    SQLite reports a lock as ``OperationalError`` "database is locked" (SQLITE_BUSY) or "database
    table is locked" (SQLITE_LOCKED); DuckDB as an ``IOException`` "Could not set lock on file
    ... Conflicting lock is held"; the OS as EAGAIN, EBUSY and the like.
    """
    if isinstance(exc, sqlite3.OperationalError):
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc).lower()
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or text in {
            "database is locked",
            "database table is locked",
            "database is busy",
        }:
            return "locked by another connection"
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return f"temporarily unavailable ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
    if type(exc).__module__.split(".")[0] in {"duckdb", "_duckdb"}:
        text = str(exc)
        if "Could not set lock" in text or "Conflicting lock" in text:
            return "locked by another process"
    return None


def conform(raw: pl.DataFrame, *, table: str, where: str) -> pl.DataFrame:
    """Check required columns, fill optional ones, cast to contract dtypes, add ``_row``.

    A value that cannot be read as its column's type is a :class:`DataFormatError` naming the
    column, the first bad row and the value. Extra columns are kept as they are. The frame comes
    back contiguous (one chunk per column).
    """
    dtypes = polars_dtypes(INPUT_SCHEMAS[table])
    optional = OPTIONAL_COLUMNS.get(table, {})
    missing = [c for c in dtypes if c not in raw.columns and c not in optional]
    if missing:
        extra = [c for c in raw.columns if c not in dtypes]
        hints = [f"{m!r} -> {s!r}?" for m in missing if (s := nearest(m, extra))]
        msg = f"{table}: {where} lacks required column(s) {', '.join(missing)}"
        if hints:
            msg += f" (close names found: {', '.join(hints)})"
        raise DataFormatError(msg, table=table, column=missing[0])
    fills = [
        pl.lit(default, dtype=dtypes[c]).alias(c)
        for c, default in optional.items()
        if c not in raw.columns
    ]
    frame = raw.with_columns(fills) if fills else raw
    casts = [_cast(frame[c], dtypes[c]).alias(c) for c in dtypes]
    fractions = [
        fraction.alias(f"{FRACTION}{c}")
        for c, dtype in dtypes.items()
        if dtype.is_integer() and (fraction := _fraction(frame[c])).is_not_null().any()
    ]
    typed = frame.with_columns([*casts, *fractions])
    for column, dtype in dtypes.items():
        read = typed[column]
        if f"{FRACTION}{column}" in typed.columns:  # a fraction was read: not unreadable
            read = pl.select(
                pl.coalesce(read.cast(pl.Float64), typed[f"{FRACTION}{column}"])
            ).to_series()
        _raise_on_unreadable(
            frame[column], read, table=table, where=where, dtype=dtype, column=column
        )
    # One chunk per column: a CSV is read in parallel chunks, and Polars 2.1 panics in `pl.format`
    # over a column left with an empty chunk by a filter (tests/test_validate.py documents it).
    return typed.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64)).rechunk()


def _number(series: pl.Series) -> pl.Series:
    """The series as Float64 (text stripped; null where it is not a number)."""
    if series.dtype == pl.String:
        return _stripped(series).cast(pl.Float64, strict=False)
    return series.cast(pl.Float64, strict=False)


def _fraction(series: pl.Series) -> pl.Series:
    """For an integer column: the numbers that are finite but not whole (2023.5), else null."""
    if series.dtype.is_integer():
        return pl.Series(series.name, [None] * series.len(), dtype=pl.Float64)
    number = _number(series)
    return pl.select(
        pl.when(number.is_finite() & (number != number.floor())).then(number)
    ).to_series()


def _stripped(series: pl.Series) -> pl.Series:
    text = series.str.strip_chars()
    return pl.select(pl.when(text == "").then(None).otherwise(text)).to_series()


def _cast(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    if series.dtype == dtype:
        return series
    if dtype.is_integer() and not series.dtype.is_integer():
        # Never truncate: 2023.0 (or "2023.0", "2.023e3") is 2023; 2023.5 is null here and
        # carried in the FRACTION column for validation to quarantine.
        direct = _stripped(series).cast(dtype, strict=False) if series.dtype == pl.String else None
        number = _number(series)
        whole = pl.select(
            pl.when(number.is_finite() & (number == number.floor())).then(number)
        ).to_series()
        cast = whole.cast(dtype, strict=False)
        return cast if direct is None else pl.select(pl.coalesce(direct, cast)).to_series()
    if series.dtype == pl.String:
        text = _stripped(series)
        if dtype == pl.Boolean:
            lowered = text.str.to_lowercase()
            return pl.select(
                pl.when(lowered.is_in(list(_TRUE)))
                .then(True)
                .when(lowered.is_in(list(_FALSE)))
                .then(False)
                .otherwise(None)
            ).to_series()
        if dtype == pl.Date:  # Polars 2 parses dates explicitly; ISO 8601 (2026-06-30) only
            return text.str.to_date("%Y-%m-%d", strict=False)
        return text.cast(dtype, strict=False)
    return series.cast(dtype, strict=False)


def _raise_on_unreadable(
    before: pl.Series,
    after: pl.Series,
    *,
    table: str,
    where: str,
    dtype: pl.DataType,
    column: str,
) -> None:
    if before.dtype == pl.String:
        before = pl.select(
            pl.when(before.str.strip_chars() == "").then(None).otherwise(before)
        ).to_series()
    bad = before.is_not_null() & after.is_null()
    if not bad.any():
        return
    index = int(bad.arg_max())  # first True
    value = before[index]
    msg = (
        f"{table}: {where}: column {column!r} cannot be read as {dtype}: "
        f"{value!r} at row {index + 1}"
    )
    raise DataFormatError(msg, table=table, column=column, row=index + 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Atomic writers


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds.

    A disk that is full or read-only is an :class:`~wfo_kit.errors.InfrastructureError` naming
    the file (exit code 3), never a raw ``OSError``; the temporary file is always removed.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~process_umask())  # mkstemp makes 0600; outputs are shared
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def process_umask() -> int:
    """The process's umask, read without changing it (Linux reports it in /proc).

    Elsewhere it can only be read by setting it and setting it back (which races with other
    threads creating files): that is done only when a file is written, never on import.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(target: Path, exc: OSError) -> InfrastructureError:
    msg = f"cannot write {target}: {exc.strerror or exc}"
    return InfrastructureError(msg, hint="check free space and permissions of the output folder")


def write_text(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: Path, payload: Any) -> Path:
    return write_text(target, json.dumps(payload, indent=2, default=str, sort_keys=False) + "\n")


def write_frame(frame: pl.DataFrame, target: Path) -> Path:
    """Write one frame as Parquet, CSV or JSON (by suffix), atomically.

    In CSV, text cells a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab,
    carriage return first) get a leading single quote (:func:`wfo_kit.trust.neutralise_formulas`);
    Parquet and JSON keep every value as it is.
    """
    target = Path(target)
    with atomic_path(target) as tmp:
        if target.suffix == ".parquet":
            try:
                frame.write_parquet(tmp)
            except pl.exceptions.ComputeError as exc:
                # Polars reports an I/O failure of its Parquet writer as a ComputeError
                # ("... underlying IO error: No space left on device (os error 28)").
                if "(os error" not in str(exc):
                    raise
                msg = str(exc).rpartition("IO error: ")[2] or str(exc)
                raise OSError(msg) from exc
        elif target.suffix == ".csv":
            neutralise_formulas(frame).write_csv(tmp)
        elif target.suffix == ".json":
            frame.write_json(tmp)
        else:
            msg = f"unsupported output format {target.suffix!r}"
            raise ConfigurationError(msg, hint="use parquet, csv or json")
    return target


def write_results(
    frames: Mapping[str, pl.DataFrame], folder: Path, *, formats: list[str]
) -> dict[str, list[str]]:
    """Write each frame in each format under ``folder``; return the written paths per table.

    ``xlsx`` is one workbook for all tables, ``results.xlsx``, a sheet per table
    (:mod:`wfo_kit.excel`).
    """
    written: dict[str, list[str]] = {}
    files = [fmt for fmt in formats if fmt != "xlsx"]
    for name, frame in frames.items():
        written[name] = [str(write_frame(frame, Path(folder) / f"{name}.{fmt}")) for fmt in files]
    if "xlsx" in formats:
        from wfo_kit.excel import write_workbook

        workbook = str(write_workbook(frames, Path(folder) / "results.xlsx"))
        for name in frames:
            written[name].append(f"{workbook}#{name}")
    return written
