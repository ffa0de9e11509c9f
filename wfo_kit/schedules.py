"""Schedules: named cron expressions over parameters files, run by ``wfo scheduler``.

Schedules live in ``<output>/schedules.json`` (``wfo schedule add|list|remove``), with the time
each last fired. :func:`tick` is the whole policy, driven by the clock it is given: a schedule
whose cron time passed since it last fired starts **one** run, whatever the number of times it
missed while the scheduler was down; a schedule whose previous run is still going is skipped,
and that is logged. Each run is ``wfo batch PARAMS... --force --output <output>`` in its own
process (a crash cannot take the scheduler down). Every decision is a line in
``<output>/scheduler.jsonl``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from wfo_kit.errors import ConfigurationError, did_you_mean

STORE = "schedules.json"
LOG = "scheduler.jsonl"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Handle(Protocol):
    """A started run: ``poll()`` is None while it runs, else its exit code (as ``Popen``)."""

    def poll(self) -> int | None: ...


Launcher = Callable[[dict[str, Any], Path], Handle]


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[dict[str, Any]]:
    """The schedules, read and written back under an exclusive lock (add, remove and the
    scheduler's bookkeeping never lose each other's changes)."""
    from wfo_kit.io import write_json

    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{STORE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = root / STORE
        schedules = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        before = json.dumps(schedules, sort_keys=True)
        yield schedules
        if json.dumps(schedules, sort_keys=True) != before:
            write_json(path, schedules)


def load_schedules(root: Path) -> dict[str, Any]:
    path = Path(root) / STORE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def add_schedule(
    root: Path,
    name: str,
    cron: str,
    params: list[str],
    *,
    sets: list[str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Store a schedule; a bad name, cron expression or parameters file is a ConfigurationError."""
    from croniter import croniter

    if not NAME.fullmatch(name):
        msg = f"schedule name {name!r}: letters, digits, '.', '_' or '-' (at most 64)"
        raise ConfigurationError(msg)
    if not croniter.is_valid(cron):
        msg = f"schedule {name}: {cron!r} is not a cron expression"
        raise ConfigurationError(
            msg, hint='five fields: minute hour day month weekday, e.g. "0 6 * * 1-5"'
        )
    missing = [p for p in params if not Path(p).is_file()]
    if not params or missing:
        msg = f"schedule {name}: parameters file not found: {', '.join(missing) or '(none given)'}"
        raise ConfigurationError(msg)
    created = (now or dt.datetime.now(dt.UTC)).isoformat()
    entry = {
        "cron": cron,
        "params": [str(Path(p).resolve()) for p in params],
        "sets": list(sets or []),
        "created": created,
        "last_fired": None,
    }
    with _locked(Path(root)) as schedules:
        if name in schedules:
            msg = f"schedule {name!r} exists already"
            raise ConfigurationError(msg, hint=f"`wfo schedule remove {name}` first")
        schedules[name] = entry
    return entry


def remove_schedule(root: Path, name: str) -> None:
    with _locked(Path(root)) as schedules:
        if name not in schedules:
            msg = f"no schedule {name!r}{did_you_mean(name, list(schedules))}"
            raise ConfigurationError(msg, hint="`wfo schedule list` shows them")
        del schedules[name]


def due_time(cron: str, *, since: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The latest cron time in ``(since, now]``, or None: however many were missed, one.

    >>> t = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    >>> due_time("*/5 * * * *", since=t, now=t + dt.timedelta(hours=1, minutes=2))
    datetime.datetime(2026, 1, 1, 11, 0, tzinfo=datetime.timezone.utc)
    >>> due_time("*/5 * * * *", since=t, now=t + dt.timedelta(minutes=4)) is None
    True
    """
    from croniter import croniter

    latest = croniter(cron, now + dt.timedelta(microseconds=1)).get_prev(dt.datetime)
    latest = latest.replace(fold=0)  # croniter may set fold=1 on a UTC time; it means nothing
    return latest if latest > since else None


def next_time(cron: str, *, now: dt.datetime) -> dt.datetime:
    from croniter import croniter

    return croniter(cron, now).get_next(dt.datetime)


def _log(root: Path, **fields: Any) -> None:
    from wfo_kit.runs import append_audit

    append_audit(Path(root) / LOG, **fields)


def tick(
    root: Path, *, now: dt.datetime, running: dict[str, Handle], launch: Launcher
) -> list[dict[str, Any]]:
    """One pass over the schedules at ``now``: start what is due, skip what still runs.

    ``running`` maps schedule names to their run still going (kept by the caller between ticks).
    Returns the decisions (also logged): ``started``, ``skipped`` (overlap) and ``finished``.
    """
    decisions: list[dict[str, Any]] = []
    for name, handle in list(running.items()):
        code = handle.poll()
        if code is not None:
            del running[name]
            decisions.append({"schedule": name, "action": "finished", "exit_code": code})
    with _locked(Path(root)) as schedules:
        for name, entry in sorted(schedules.items()):
            since = dt.datetime.fromisoformat(entry["last_fired"] or entry["created"])
            due = due_time(entry["cron"], since=since, now=now)
            if due is None:
                continue
            entry["last_fired"] = due.isoformat()  # missed or skipped, a cron time fires once
            if name in running:
                reason = "its previous run is still going"
                decisions.append({"schedule": name, "action": "skipped", "due": due.isoformat(),
                                  "reason": reason})  # fmt: skip
                continue
            try:
                running[name] = launch(entry, Path(root))
            except Exception as exc:  # a full queue, a missing file: said, the scheduler goes on
                decisions.append({"schedule": name, "action": "failed", "due": due.isoformat(),
                                  "reason": f"{type(exc).__name__}: {exc}"})  # fmt: skip
                continue
            decisions.append({"schedule": name, "action": "started", "due": due.isoformat()})
    for decision in decisions:
        _log(root, command="scheduler", at=now.isoformat(), **decision)
    return decisions


def launch_batch(entry: dict[str, Any], root: Path) -> subprocess.Popen[bytes]:
    """``wfo batch`` for one schedule, in its own process (its output goes to the run folders)."""
    command = [sys.executable, "-m", "wfo_kit.cli", "batch", *entry["params"], "--force",
               "--output", str(root)]  # fmt: skip
    for item in entry.get("sets") or []:
        command += ["--set", item]
    return subprocess.Popen(  # our own CLI, arguments as a list (no shell)
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def run_scheduler(
    root: Path,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    sleep: Callable[[float], None] = time.sleep,
    launch: Launcher = launch_batch,
    once: bool = False,
    say: Callable[[str], None] = lambda _line: None,
    stop: threading.Event | None = None,
) -> None:
    """Tick until interrupted (or ``stop`` is set), waking at the next cron time (at least every
    30 s, so that schedules added meanwhile are seen)."""
    running: dict[str, Handle] = {}
    if stop is not None:
        sleep = stop.wait
    while stop is None or not stop.is_set():
        now = clock()
        for decision in tick(root, now=now, running=running, launch=launch):
            say(f"{decision['schedule']}: {decision['action']}"
                + (f" ({decision['reason']})" if decision.get("reason") else ""))  # fmt: skip
        if once:
            return
        upcoming = [next_time(e["cron"], now=now) for e in load_schedules(root).values()]
        wait = min([(t - now).total_seconds() for t in upcoming] + [30.0])
        sleep(max(wait, 1.0))


class _Tickets:
    """The runs one schedule submitted to a ``wfo serve`` queue, as a :class:`Handle`."""

    def __init__(self, queue: Any, run_ids: list[str], root: Path) -> None:
        self.queue, self.run_ids, self.root = queue, run_ids, root

    def poll(self) -> int | None:
        from wfo_kit.history import load_manifest

        ended = ("succeeded", "failed", "interrupted", "incomplete", "unreadable")
        statuses = []
        for run_id in self.run_ids:
            try:  # the queue records a run in the output folder when it accepts it
                status = load_manifest(self.root, run_id).get("status")
            except ConfigurationError:
                status = None
            if status not in ended:
                return None  # queued or running
            statuses.append(status)
        return 0 if all(s == "succeeded" for s in statuses) else 1


def queue_launcher(queue: Any) -> Launcher:
    """Start a schedule's runs on a ``wfo serve`` queue (its warm workers), owned by
    ``scheduler``. Schedules are the operator's (``wfo schedule add`` on the server), so their
    parameters files are not confined to the data root."""

    def launch(entry: dict[str, Any], root: Path) -> Handle:
        from wfo_kit.batch import Job
        from wfo_kit.runs import make_run_id

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        jobs = [
            Job(
                params_file=params,
                run_id=make_run_id(f"{stamp}-sched"),
                output_root=str(root),
                sets=tuple(entry.get("sets") or ()),
                owner="scheduler",
            )
            for params in entry["params"]
        ]
        for job in jobs:
            queue.submit(job)
        return _Tickets(queue, [j.run_id for j in jobs], root)

    return launch
