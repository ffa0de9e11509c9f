"""Runs that can be trusted later: content hashes of what is read, SQL sources included."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import SAMPLE
from wfo_kit.batch import content_id
from wfo_kit.config import load_config, resolve_config
from wfo_kit.pipeline import RunContext, run_pipeline
from wfo_kit.runs import input_hashes


@pytest.fixture
def sqlite_peers(tmp_path: Path) -> Path:
    """Parameters whose peers come from a SQLite table (a copy of the sample's peers)."""
    peers = pl.read_csv(SAMPLE / "peers.csv")
    with sqlite3.connect(tmp_path / "market.db") as conn:
        conn.execute(f"CREATE TABLE peers ({', '.join(peers.columns)})")
        conn.executemany(f"INSERT INTO peers VALUES ({', '.join('?' * peers.width)})", peers.rows())
    params = tmp_path / "p.yaml"
    params.write_text(
        f"extends: {Path('parameters/default.yaml').resolve()}\n"
        "data:\n  peers: {url: sqlite:///market.db, table: peers}\n",
        encoding="utf-8",
    )
    return params


def delete_half_of_the_peers(params: Path) -> None:
    with sqlite3.connect(params.parent / "market.db") as conn:
        conn.execute("DELETE FROM peers WHERE rowid % 2 = 0")


def test_a_changed_sql_table_changes_the_content_id(sqlite_peers: Path) -> None:
    before = content_id(sqlite_peers)
    assert content_id(sqlite_peers) == before  # stable while nothing changes
    hashes = input_hashes(resolve_config(sqlite_peers))
    assert hashes["peers"] is not None
    delete_half_of_the_peers(sqlite_peers)
    assert content_id(sqlite_peers) != before  # a batch re-runs it instead of skipping


def test_uncheckpointed_wal_rows_change_the_hash(sqlite_peers: Path) -> None:
    db = sqlite_peers.parent / "market.db"
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")  # committed rows stay in market.db-wal
        before = input_hashes(resolve_config(sqlite_peers))["peers"]
        writer.execute("DELETE FROM peers WHERE rowid % 2 = 0")
        writer.commit()
        assert Path(f"{db}-wal").is_file()
        assert input_hashes(resolve_config(sqlite_peers))["peers"] != before
    finally:
        writer.close()


def test_fallback_sources_are_hashed_too(tmp_path: Path) -> None:
    snapshot = tmp_path / "peers.csv"
    snapshot.write_bytes((SAMPLE / "peers.csv").read_bytes())
    params = tmp_path / "p.yaml"
    params.write_text(
        f"extends: {Path('parameters/default.yaml').resolve()}\n"
        f"data:\n  peers: {{path: {SAMPLE / 'peers.csv'}, fallback: peers.csv}}\n",
        encoding="utf-8",
    )
    before = input_hashes(resolve_config(params))
    assert before["peers.fallback"] == before["peers"]
    snapshot.write_text(snapshot.read_text() + "\n")  # one more byte: a changed snapshot
    assert input_hashes(resolve_config(params))["peers.fallback"] != before["peers.fallback"]


def test_what_was_read_is_recorded_per_table(sqlite_peers: Path, tmp_path: Path) -> None:
    first = run_pipeline(RunContext(load_config(sqlite_peers), run_dir=tmp_path / "a"))
    read = json.loads((tmp_path / "a" / "metrics.json").read_text())["inputs_read"]
    assert set(read) == {"companies", "financials", "peers", "balance_sheet"}
    assert read == first.inputs_read
    delete_half_of_the_peers(sqlite_peers)
    second = run_pipeline(RunContext(load_config(sqlite_peers), run_dir=tmp_path / "b"))
    assert second.inputs_read["peers"] != read["peers"]
    assert {k: v for k, v in second.inputs_read.items() if k != "peers"} == {
        k: v for k, v in read.items() if k != "peers"
    }


def test_run_and_batch_name_run_folders_with_one_scheme(tmp_path: Path) -> None:
    """Issue 12 item 13: <UTC time>-<parameters file stem>-<content hash>-<random suffix>."""
    import re

    from wfo_kit.batch import new_run_id, succeeded_run
    from wfo_kit.runs import default_run_prefix, make_run_id

    scheme = r"\d{8}T\d{6}-bear-0d1ae7d3-[0-9a-f]{6}"
    from_batch = new_run_id("bear-0d1ae7d3ffff")  # content_id: <stem>-<hash, 12 digits>
    from_run = make_run_id(default_run_prefix("0d1ae7d3ffff", label="bear"))
    assert re.fullmatch(scheme, from_batch)
    assert re.fullmatch(scheme, from_run)
    # `wfo batch` resumes from a folder `wfo run` made, and only from a succeeded one
    folder = tmp_path / from_run
    folder.mkdir()
    manifest = {"status": "failed", "content_hash": "0d1ae7d3ffff"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert succeeded_run(tmp_path, "bear-0d1ae7d3ffff") is None
    (folder / "manifest.json").write_text(json.dumps({**manifest, "status": "succeeded"}))
    assert succeeded_run(tmp_path, "bear-0d1ae7d3ffff") == folder
    assert succeeded_run(tmp_path, "bull-0d1ae7d3ffff") is None
    assert succeeded_run(tmp_path, "bear-0d1ae7d3eeee") is None  # same 8 digits, not the hash
