"""Errors as documented (issue 10 item 14): each class in the README is raised where it belongs.

A locked source is retried, not failed at once: tested with a real lock held by another SQLite
connection (BEGIN EXCLUSIVE in a thread) and by another process (a DuckDB read-write connection),
released after about a second or never. No mocks: the loader, the step wrapper and the databases
are the real ones; only the retry policy is set small.
"""

from __future__ import annotations

import errno
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from wfo_kit import errors
from wfo_kit.config import Config, load_config
from wfo_kit.io import read_table
from wfo_kit.pipeline import RunContext, run_pipeline, run_step

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "wfo_kit" / "sample_data"


def sqlite_db(path: Path) -> Path:
    raw = pl.read_csv(SAMPLE / "companies.csv")
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE companies ({', '.join(raw.columns)})")
        conn.executemany(f"INSERT INTO companies VALUES ({', '.join('?' * raw.width)})", raw.rows())
    conn.close()
    return path


@contextmanager
def sqlite_lock(path: Path, *, hold: float | None) -> Iterator[threading.Event]:
    """Another connection holds BEGIN EXCLUSIVE on ``path`` for ``hold`` seconds (None: until the
    block ends). Yields an event set when the lock is released."""
    locked, stop, released = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        stop.wait(hold)
        conn.execute("ROLLBACK")
        conn.close()
        released.set()

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert locked.wait(5)
    try:
        yield released
    finally:
        stop.set()
        thread.join(5)


def sql_config(url: str, *, attempts: int, backoff: float, lock_timeout: float = 0.1) -> Config:
    return load_config(
        overrides={
            "data": {"companies": {"url": url, "table": "companies", "lock_timeout": lock_timeout}},
            "pipeline": {
                "retry": {"attempts": attempts, "backoff_seconds": backoff, "jitter": 0.0}
            },
        }
    )


def retries(ctx: RunContext) -> list[dict]:
    return [e for e in ctx.events if e["event"] == "step_retrying"]


def test_sqlite_lock_released_after_a_second_is_retried_with_backoff(tmp_path: Path) -> None:
    db = sqlite_db(tmp_path / "market.db")
    config = sql_config(f"sqlite:///{db}", attempts=6, backoff=0.2)
    ctx = RunContext(config)
    start = time.perf_counter()
    with sqlite_lock(db, hold=1.0) as released:
        run_step(ctx, "load")
        assert released.is_set()
    seconds = time.perf_counter() - start
    assert ctx["input_companies"].height == 41
    waits = [e["wait"] for e in retries(ctx)]
    assert len(waits) >= 2
    assert waits == [0.2 * 2**i for i in range(len(waits))]  # exponential backoff
    first = retries(ctx)[0]["error"]
    assert first["class"] == "SourceUnavailableError"
    assert first["retryable"] is True
    assert first["table"] == "companies"
    assert "locked by another connection" in first["message"]
    finished = next(e for e in ctx.events if e["event"] == "step_finished")
    assert finished["attempts"] == len(waits) + 1
    assert seconds >= 1.0


def test_sqlite_lock_never_released_fails_after_the_configured_attempts(tmp_path: Path) -> None:
    db = sqlite_db(tmp_path / "market.db")
    config = sql_config(f"sqlite:///{db}", attempts=3, backoff=0.05)
    ctx = RunContext(config)
    with sqlite_lock(db, hold=None), pytest.raises(errors.SourceUnavailableError) as caught:
        run_step(ctx, "load")
    error = caught.value
    line = error.one_line()
    assert "\n" not in line
    assert re.match(
        r"companies: SQL source sqlite:///\S+market\.db is locked by another connection: "
        r"database is locked \(gave up after 3 attempts\)",
        line,
    ), line
    assert error.table == "companies"
    assert error.exit_code == errors.EXIT_INFRASTRUCTURE
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert len(retries(ctx)) == 2
    assert ctx.errors[-1]["class"] == "SourceUnavailableError"


def test_sqlite_lock_timeout_waits_inside_one_attempt(tmp_path: Path) -> None:
    # The driver's own wait (lock_timeout) covers a short lock without a retry.
    db = sqlite_db(tmp_path / "market.db")
    config = sql_config(f"sqlite:///{db}", attempts=1, backoff=0.0, lock_timeout=5.0)
    with sqlite_lock(db, hold=0.3):
        frame = read_table(config.data.companies, table="companies")
    assert frame.height == 41


@contextmanager
def duckdb_writer(path: Path) -> Iterator[subprocess.Popen]:
    """Another process holds a read-write DuckDB connection until its stdin is closed."""
    code = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
    code += "sys.stdin.read(); c.close()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def test_duckdb_lock_held_by_another_process_is_retried(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "market.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            f"CREATE TABLE companies AS SELECT * FROM read_csv_auto('{SAMPLE / 'companies.csv'}')"
        )
    config = sql_config(f"duckdb:///{db}", attempts=6, backoff=0.2)
    with duckdb_writer(db) as writer:
        with pytest.raises(errors.SourceUnavailableError, match="locked by another process"):
            read_table(config.data.companies, table="companies")
        assert writer.stdin is not None
        timer = threading.Timer(1.0, writer.stdin.close)
        timer.start()
        ctx = RunContext(config)
        run_step(ctx, "load")
        timer.join()
    assert ctx["input_companies"].height == 41
    assert retries(ctx)
    assert {e["error"]["class"] for e in retries(ctx)} == {"SourceUnavailableError"}


def test_transient_os_errors_are_retryable_and_others_are_not() -> None:
    from wfo_kit.io import _transient

    assert _transient(OSError(errno.EAGAIN, "Resource temporarily unavailable")) is not None
    assert _transient(OSError(errno.EBUSY, "Device or resource busy")) is not None
    assert _transient(OSError(errno.EACCES, "Permission denied")) is None
    assert _transient(sqlite3.OperationalError("no such table: companies")) is None


def test_a_bad_query_is_still_a_format_error_and_not_retried(tmp_path: Path) -> None:
    db = sqlite_db(tmp_path / "market.db")
    config = load_config(
        overrides={
            "data": {"companies": {"url": f"sqlite:///{db}", "query": "SELECT * FROM nope"}},
            "pipeline": {"retry": {"attempts": 3, "backoff_seconds": 0.0}},
        }
    )
    ctx = RunContext(config)
    with pytest.raises(errors.DataFormatError, match="no such table: nope"):
        run_step(ctx, "load")
    assert retries(ctx) == []


def test_value_before_validate_is_a_dependency_error() -> None:
    ctx = RunContext(load_config(), sleep=lambda _s: None)
    with pytest.raises(errors.DependencyError) as caught:
        run_step(ctx, "value")
    assert caught.value.message == (
        "step 'value' needs 'input_companies' from step 'load': run 'load' first; and "
        "'companies', 'quarantine' from step 'validate': run 'validate' first"
    )
    run_step(ctx, "load")
    with pytest.raises(errors.DependencyError) as caught:
        run_step(ctx, "value")
    assert caught.value.one_line().startswith(
        "step 'value' needs 'companies', 'quarantine' from step 'validate': run 'validate' first"
    )
    assert caught.value.exit_code == errors.EXIT_FAILED
    assert not caught.value.retryable
    assert [e["class"] for e in ctx.errors] == ["DependencyError", "DependencyError"]
    run_step(ctx, "validate")
    run_step(ctx, "value")
    assert ctx["valuations"].height > 0


def test_quality_below_fail_below_stops_the_run(tmp_path: Path) -> None:
    # 40 forecast rows without any FCFF input: quarantined by validation, not a file error.
    rows = pl.read_csv(SAMPLE / "financials.csv", infer_schema=False)
    first = pl.int_range(pl.len()) < 40
    broken = rows.with_columns(
        pl.when(first).then(pl.lit("true")).otherwise(pl.col("is_forecast")).alias("is_forecast"),
        pl.when(first).then(pl.lit(None, pl.String)).otherwise(pl.col("ebit")).alias("ebit"),
    )
    path = tmp_path / "financials.csv"
    broken.write_csv(path)
    overrides = {"data": {"financials": str(path)}, "validation": {"fail_below": 0.9}}
    ctx = RunContext(load_config(overrides=overrides))
    with pytest.raises(errors.DataQualityError) as caught:
        run_pipeline(ctx, ["load", "validate", "value"])
    error = caught.value
    assert error.table == "financials"
    assert error.exit_code == errors.EXIT_BAD_INPUT
    assert re.fullmatch(
        r"data quality 0\.\d{3} of table financials is below validation\.fail_below 0\.9 "
        r"\(\d+ of \d+ rows quarantined\)",
        error.message,
    ), error.message
    assert "valuations" not in ctx.frames
    overrides["validation"]["fail_below"] = 0.0
    run_pipeline(RunContext(load_config(overrides=overrides)), ["load", "validate", "value"])


def error_classes() -> set[str]:
    return {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.WfoError)
    }


def test_every_leaf_error_class_is_raised_somewhere() -> None:
    """A class nothing raises is a promise nobody keeps: every leaf is raised in wfo_kit."""
    source = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "wfo_kit").rglob("*.py")
        if p.name != "errors.py"
    )
    classes = {getattr(errors, n) for n in error_classes()}
    leaves = {
        c.__name__ for c in classes if not any(o is not c and issubclass(o, c) for o in classes)
    }
    unraised = sorted(n for n in leaves if not re.search(rf"\b{n}\(", source))
    assert unraised == []


def test_readme_error_section_names_exactly_the_classes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+Error)`", section))
    assert named == error_classes() - {"PlatformError"}


def test_wfo_validate_retries_a_locked_source_like_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wfo_kit.cli import main

    db = sqlite_db(tmp_path / "market.db")
    params = tmp_path / "p.yaml"
    params.write_text(
        f"extends: {ROOT / 'parameters' / 'default.yaml'}\n"
        "data:\n  companies: {url: sqlite:///market.db, table: companies, lock_timeout: 0.1}\n"
        "pipeline:\n  retry: {attempts: 6, backoff_seconds: 0.2, jitter: 0}\n",
        encoding="utf-8",
    )
    with sqlite_lock(db, hold=1.0) as released:
        code = main(["validate", str(params), "--quarantine", str(tmp_path / "q.csv")])
        assert released.is_set()  # it waited for the lock instead of failing at once
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "companies" in out
