"""The logging hierarchy and its sinks (``logging`` configuration section).

Every event of a run is a record of a named logger that follows the pipeline
(:func:`logger_name`): ``wfo_kit.workflow`` (the run: started, finished, failed),
``wfo_kit.step.<name>`` (one step: started, finished, failed, retried) and ``wfo_kit.system``
(notifications, sinks, anything else). A logger's level is the most specific entry of
``logging.levels`` (``wfo_kit.step`` covers every step), else ``logging.level``.

Sinks (:func:`open_sinks`): console, rotating file, a SQL database (one row per event; ``wfo logs``
queries it), syslog and an HTTP collector. They are plain ``logging.Handler`` objects made per
run, not attached to global loggers, so runs in one process (``wfo serve``) never share or leak
them. A sink that fails is recorded (:attr:`Sinks.problems`) and skipped: it never fails the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import sqlite3
import sys
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wfo_kit.observers import LEVELS
from wfo_kit.opsconfig import LoggingConfig

LEVEL_NAMES = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
               "error": logging.ERROR, "critical": logging.CRITICAL}  # fmt: skip
EXTRA_LEVELS = {"notification_failed": logging.WARNING, "notification_note": logging.WARNING}
FORMAT = "%(asctime)s %(levelname)s %(name)s run=%(run_id)s %(message)s"
TABLE = "wfo_log"
COLUMNS = ("time", "run_id", "logger", "level", "event", "step", "message", "fields")


def logger_name(fields: dict[str, Any]) -> str:
    """The logger an event belongs to.

    >>> logger_name({"event": "step_finished", "step": "validate"})
    'wfo_kit.step.validate'
    >>> logger_name({"event": "run_failed"})
    'wfo_kit.workflow'
    >>> logger_name({"event": "notification_failed"})
    'wfo_kit.system'
    """
    event = str(fields.get("event", ""))
    if event.startswith("step_") and fields.get("step"):
        return f"wfo_kit.step.{fields['step']}"
    if event.startswith("run_"):
        return "wfo_kit.workflow"
    return "wfo_kit.system"


def level_of(name: str, config: LoggingConfig) -> int:
    """The configured level of logger ``name``: its own entry, its nearest parent's, or the
    default ``logging.level``."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        entry = config.levels.get(".".join(parts[:end]))
        if entry is not None:
            return LEVEL_NAMES[entry]
    return LEVEL_NAMES[config.level]


def event_message(fields: dict[str, Any]) -> str:
    """One line for an event: what, which step, the figures or the error."""
    event = str(fields.get("event", ""))
    parts = [event.replace("_", " ")]
    if fields.get("step"):
        parts.append(str(fields["step"]))
    if fields.get("seconds") is not None:
        parts.append(f"in {float(fields['seconds']):.3f}s")
    error = fields.get("error")
    if isinstance(error, dict) and error.get("message"):
        parts.append(f": {error['message']}")
    elif isinstance(error, str):
        parts.append(f": {error}")
    if fields.get("note"):
        parts.append(f": {fields['note']}")
    return " ".join(parts)


def to_record(fields: dict[str, Any]) -> logging.LogRecord:
    """A log record of the event's logger, at the event's level, dated when the event happened."""
    event = str(fields.get("event", ""))
    level = EXTRA_LEVELS.get(event, LEVELS.get(event, logging.INFO))
    record = logging.getLogger(logger_name(fields)).makeRecord(
        logger_name(fields), level, "wfo_kit", 0, event_message(fields), (), None
    )
    if isinstance(fields.get("time"), int | float):
        record.created = float(fields["time"])
        record.msecs = (record.created % 1) * 1000
    record.run_id = fields.get("run_id", "")
    record.wfo = fields
    return record


# --------------------------------------------------------------------------------------------
# Handlers of our own: a database and an HTTP collector


class DatabaseHandler(logging.Handler):
    """One row per record in table ``wfo_log`` of a SQLite (default) or DuckDB database."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.connection: Any = connect_log_db(url, create=True)

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "wfo", {})
        self.connection.execute(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.created,
                str(getattr(record, "run_id", "")),
                record.name,
                record.levelname.lower(),
                str(fields.get("event", "")),
                fields.get("step"),
                record.getMessage(),
                json.dumps(fields, default=str),
            ),
        )
        # Committed per event: whoever tails the table sees a long run's steps as they happen.
        self.connection.commit()

    def close(self) -> None:
        # Closed twice (by the run's Sinks, then by logging's exit hook): the second is a no-op.
        connection, self.connection = self.connection, None
        try:
            if connection is not None:
                connection.commit()
                connection.close()
        finally:
            super().close()


class HttpCollectorHandler(logging.Handler):
    """POSTs each record's event as JSON to a collector (one request per event)."""

    def __init__(self, url: str, *, timeout: float) -> None:
        super().__init__()
        if not url.lower().startswith(("http://", "https://")):
            msg = f"logging.http must be an http(s) URL, not {url!r}"
            raise ValueError(msg)
        self.url, self.timeout = url, timeout

    def emit(self, record: logging.LogRecord) -> None:
        body = {"logger": record.name, "level": record.levelname.lower(),
                "message": record.getMessage(), **getattr(record, "wfo", {})}  # fmt: skip
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout):
            pass


def connect_log_db(url: str, *, create: bool = False) -> Any:
    """A connection to the log database: a path or ``sqlite:///path`` (SQLite), or
    ``duckdb:///path``. With ``create``, the table is made if missing."""
    scheme, sep, rest = url.partition(":///")
    if not sep:
        scheme, rest = "sqlite", url
    if scheme == "duckdb":
        import duckdb

        connection = duckdb.connect(rest)
    elif scheme == "sqlite":
        connection = sqlite3.connect(rest, timeout=10)
    else:
        msg = f"logging.database: unknown scheme {scheme!r} (sqlite:///path or duckdb:///path)"
        raise ValueError(msg)
    if create:
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (time DOUBLE, run_id TEXT, logger TEXT, "
            "level TEXT, event TEXT, step TEXT, message TEXT, fields TEXT)"
        )
    return connection


# --------------------------------------------------------------------------------------------
# Sinks of one run


def _syslog(address: str) -> logging.Handler:
    if address.startswith("/"):
        return logging.handlers.SysLogHandler(address=address)
    host, _, port = address.rpartition(":")
    return logging.handlers.SysLogHandler(address=(host or "localhost", int(port or 514)))


#: sink name -> (is it configured, how to open it)
SINKS = {
    "console": (lambda c: c.console, lambda c: logging.StreamHandler(sys.stderr)),
    "file": (
        lambda c: c.file,
        lambda c: logging.handlers.RotatingFileHandler(
            c.file, maxBytes=c.file_max_bytes, backupCount=c.file_backups, encoding="utf-8"
        ),
    ),
    "database": (lambda c: c.database, lambda c: DatabaseHandler(c.database)),
    "syslog": (lambda c: c.syslog, lambda c: _syslog(c.syslog)),
    "http": (lambda c: c.http, lambda c: HttpCollectorHandler(c.http, timeout=c.http_timeout)),
}


@dataclass
class Sinks:
    """The open sinks of one run; :meth:`__call__` makes it an observer."""

    config: LoggingConfig
    handlers: dict[str, logging.Handler] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        record = to_record(fields)
        if record.levelno < level_of(record.name, self.config):
            return
        for name, handler in list(self.handlers.items()):
            try:
                handler.handle(record)
                self.written[name] = self.written.get(name, 0) + 1
            except Exception as exc:  # a failing sink must never fail the run
                self._drop(name, exc)

    def _drop(self, name: str, exc: BaseException) -> None:
        # One problem per sink, then the sink is closed: a dead collector is not retried per event.
        self.problems.append(f"log sink {name}: {type(exc).__name__}: {exc}")
        handler = self.handlers.pop(name)
        with contextlib.suppress(Exception):  # closing a broken sink may fail too
            handler.close()

    def replay(self, events: Iterable[dict[str, Any]]) -> None:
        for fields in events:
            self(str(fields.get("event", "")), fields)

    def close(self) -> None:
        for name in list(self.handlers):
            try:
                self.handlers[name].close()
            except Exception as exc:  # a sink that cannot flush: recorded, as above
                self.problems.append(f"log sink {name}: {type(exc).__name__}: {exc}")
        self.handlers.clear()


def _raise_errors(handler: logging.Handler) -> logging.Handler:
    # logging.Handler.handleError prints a traceback on stderr and carries on; re-raising lets
    # Sinks record the failure once in the run's manifest instead.
    def handle_error(record: logging.LogRecord) -> None:
        raise  # called inside the handler's own `except` block: re-raises what emit hit

    handler.handleError = handle_error  # type: ignore[method-assign]
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def open_sinks(config: LoggingConfig) -> Sinks:
    """Open every configured sink; one that cannot be opened is a problem, not an error."""
    sinks = Sinks(config)
    for name, (configured, make) in SINKS.items():
        if not configured(config):
            continue
        try:
            sinks.handlers[name] = _raise_errors(make(config))
        except Exception as exc:  # an unwritable path, a bad address: recorded, not raised
            sinks.problems.append(f"log sink {name}: {type(exc).__name__}: {exc}")
    return sinks


def _has_log_table(connection: Any) -> bool:
    if isinstance(connection, sqlite3.Connection):
        catalog = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:  # DuckDB
        catalog = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return bool(connection.execute(catalog, [TABLE]).fetchone()[0])


def query_logs(
    url: str, *, run_id: str | None = None, level: str | None = None, step: str | None = None
) -> list[dict[str, Any]]:
    """Events of the log database, oldest first: of one run, at or above a level, of one step."""
    clauses, params = [], []
    if run_id:
        clauses.append("run_id = ?")
        params.append(run_id)
    if level:
        names = [n for n, v in LEVEL_NAMES.items() if v >= LEVEL_NAMES[level]]
        clauses.append(f"level IN ({', '.join('?' * len(names))})")
        params += names
    if step:
        clauses.append("step = ?")
        params.append(step)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    connection = connect_log_db(url)
    try:
        if not _has_log_table(connection):  # a sink has made the file, not yet its table
            return []
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}{where} ORDER BY time"
        rows = connection.execute(sql, params).fetchall()
    finally:
        connection.close()
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
