"""Schedules driven by an injected clock: due times, one run after downtime, overlaps skipped."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import pytest

from wfo_kit.cli import main
from wfo_kit.errors import ConfigurationError
from wfo_kit.schedules import add_schedule, launch_batch, load_schedules, tick

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


class Run:
    """A run the test finishes by hand (the scheduler only ever calls poll())."""

    def __init__(self) -> None:
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


@pytest.fixture
def params(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text("report: {title: scheduled}\n", encoding="utf-8")
    return path


def test_due_runs_start_once_after_downtime_and_overlaps_are_skipped(
    tmp_path: Path, params: Path
) -> None:
    root = tmp_path / "out"
    add_schedule(root, "every5", "*/5 * * * *", [str(params)], now=T0)
    add_schedule(root, "hourly", "0 * * * *", [str(params)], now=T0)
    started: list[tuple[str, Run]] = []

    def launch(entry: dict, where: Path) -> Run:
        run = Run()
        started.append((entry["cron"], run))
        assert where == root
        return run

    running: dict[str, Run] = {}

    def at(minutes: int) -> list[tuple[str, str]]:
        now = T0 + dt.timedelta(minutes=minutes)
        return [(d["schedule"], d["action"]) for d in tick(root, now=now, running=running,
                                                           launch=launch)]  # fmt: skip

    assert at(3) == []
    assert at(5) == [("every5", "started")]
    assert at(6) == []
    assert at(10) == [("every5", "skipped")]  # its 10:05 run still goes
    started[0][1].code = 0
    assert at(11) == [("every5", "finished")]
    # Down from 10:11 to 12:02: every5 missed 22 times and hourly twice; each runs once.
    assert at(122) == [("every5", "started"), ("hourly", "started")]
    assert len(started) == 3
    assert load_schedules(root)["every5"]["last_fired"] == "2026-03-02T12:00:00+00:00"
    log = [json.loads(line) for line in (root / "scheduler.jsonl").read_text().splitlines()]
    skipped = [e for e in log if e["action"] == "skipped"]
    assert skipped[0]["reason"] == "its previous run is still going"
    assert skipped[0]["due"] == "2026-03-02T10:10:00+00:00"


def test_add_list_remove_from_the_command_line(
    tmp_path: Path, params: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    assert main(["schedule", "add", "nightly", "30 2 * * *", str(params), "--output", out]) == 0
    assert main(["schedule", "add", "bad", "61 * * * *", str(params), "--output", out]) == 2
    assert "is not a cron expression" in capsys.readouterr().err
    assert main(["schedule", "add", "nightly", "0 3 * * *", str(params), "--output", out]) == 2
    assert main(["schedule", "list", "--output", out]) == 0
    listed = capsys.readouterr().out
    assert "nightly  '30 2 * * *'  next " in listed
    assert str(params.resolve()) in listed
    assert main(["schedule", "remove", "nightlly", "--output", out]) == 2
    assert "did you mean 'nightly'" in capsys.readouterr().err
    assert main(["schedule", "remove", "nightly", "--output", out]) == 0
    assert load_schedules(Path(out)) == {}
    with pytest.raises(ConfigurationError, match="parameters file not found"):
        add_schedule(Path(out), "x", "* * * * *", [str(tmp_path / "missing.yaml")])


def test_a_due_schedule_launches_wfo_batch_in_its_own_process(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("valuation: {not_a_setting: 1}\n", encoding="utf-8")
    root = tmp_path / "out"
    add_schedule(root, "b", "* * * * *", [str(broken)], now=T0)
    running: dict = {}
    tick(root, now=T0 + dt.timedelta(minutes=1), running=running, launch=launch_batch)
    process = running["b"]
    assert process.args[:4] == [sys.executable, "-m", "wfo_kit.cli", "batch"]
    deadline = time.monotonic() + 60
    while process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    decisions = tick(root, now=T0 + dt.timedelta(minutes=1, seconds=30), running=running,
                     launch=launch_batch)  # fmt: skip
    assert decisions == [{"schedule": "b", "action": "finished", "exit_code": 1}]
    (audit,) = [json.loads(x) for x in (root / "audit.jsonl").read_text().splitlines()]
    assert audit["command"] == "batch"  # the batch ran, in the schedule's output folder
    assert audit["arguments"][1:3] == [str(broken), "--force"]
    assert audit["outcome"] == "failed"
