"""Injected faults, for real: concurrent runs, Ctrl-C, read-only and full disks, dead kernels.

Read-only and full disks are made with a read-only bind mount and a small tmpfs, which needs
root (CAP_SYS_ADMIN); elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import polars as pl
import pytest

from tests.builders import notebook, params
from wfo_kit.cli import main
from wfo_kit.errors import ConfigurationError
from wfo_kit.history import run_history
from wfo_kit.runs import claim_run_folder, make_run_id

pytestmark = pytest.mark.e2e

WFO = str(Path(sys.executable).parent / "wfo")


def wfo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WFO, *args], capture_output=True, text=True, timeout=timeout)


PROGRESS = ("wfo: run ", "wfo: publishing HTML")  # status lines of a run without --progress


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if not line.startswith(PROGRESS)]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here (needs root): {result.stderr.strip()}")


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only for everyone, root included (a read-only bind mount)."""
    _mount("--bind", str(folder), str(folder))
    try:
        _mount("-o", "remount,bind,ro", str(folder))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def run_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


# --------------------------------------------------------------------------------------------
# Concurrent runs never destroy each other


def test_run_ids_are_unique_and_a_taken_id_is_refused_without_deleting(tmp_path: Path) -> None:
    assert len({make_run_id("same-prefix") for _ in range(200)}) == 200
    claimed = claim_run_folder(tmp_path, "r-1")
    (claimed / "notebook.ipynb").write_text("work in progress")
    with pytest.raises(ConfigurationError, match="already taken"):
        claim_run_folder(tmp_path, "r-1")  # the same id claimed by another process
    (tmp_path / "r-2").mkdir()
    (tmp_path / "r-2" / "manifest.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="already taken"):
        claim_run_folder(tmp_path, "r-2")  # an existing run is never replaced
    assert (claimed / "notebook.ipynb").read_text() == "work in progress"
    assert (tmp_path / "r-2" / "manifest.json").read_text() == "{}"


def test_two_identical_runs_started_together_both_complete(tmp_path: Path) -> None:
    fine = notebook(tmp_path / "fine.ipynb", "import time\ntime.sleep(1)\nprint('fine')")
    p = params(tmp_path, "p", f"report:\n  notebook: {fine}\n")
    out = tmp_path / "out"
    command = [WFO, "run", str(p), "--output", str(out), "--no-progress"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    procs.append(
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    results = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    reports = {Path(stdout.strip().splitlines()[-1]) for stdout, _ in results}
    assert len(reports) == 2
    for report in reports:
        manifest = json.loads((report.parent / "manifest.json").read_text())
        assert manifest["status"] == "succeeded"
        assert (report.parent / "valuation.ipynb").is_file()
        assert report.is_file()
    assert run_folders(out) == sorted(r.parent for r in reports)
    outcomes = [
        json.loads(line)["outcome"] for line in (out / "audit.jsonl").read_text().splitlines()
    ]
    assert sorted(outcomes) == ["started", "started", "succeeded", "succeeded"]


def test_identical_parameter_files_in_two_folders_are_each_accounted_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    files = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        files.append(params(tmp_path / folder, "p", f"report:\n  notebook: {fine}\n"))
    out = tmp_path / "out"
    code = main(["batch", *map(str, files), "--workers", "1", "--output", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "batch: 1 succeeded, 0 skipped (already done), 1 duplicate, 0 failed" in stdout
    assert f"wfo: note: p.yaml: same configuration and inputs as {files[0]}" in stderr
    (run,) = run_folders(out)
    batch = json.loads(sorted(out.glob("batch-*.json"))[-1].read_text())
    assert [r["status"] for r in batch["runs"]] == ["succeeded", "duplicate"]
    assert [r["params_file"] for r in batch["runs"]] == [str(f) for f in files]
    assert batch["runs"][1]["report"] == str(run / "report.html")


# --------------------------------------------------------------------------------------------
# Ctrl-C of a batch


def _start_slow_batch(tmp_path: Path, runs: int) -> tuple[subprocess.Popen[str], Path]:
    slow = notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    for n in range(runs):
        params(
            tmp_path,
            f"slow{n}",
            f"report:\n  notebook: {slow}\nvaluation:\n  terminal_growth: 0.0{n}\n",
        )
    out = tmp_path / "out"
    command = [WFO, "batch", str(tmp_path / "*.yaml"), "--workers", "1", "--output", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the first run has started
        if list(out.glob(".*.partial")):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        proc.communicate()
        pytest.fail("the batch did not start a run within 120 s")
    time.sleep(3)  # the warm kernel is then inside the slow cell
    return proc, out


def _assert_interrupted_run(out: Path) -> None:
    (run,) = run_folders(out)  # nothing queued started after Ctrl-C
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    assert "INTERRUPTED" in (run / "report.html").read_text()
    assert not list(out.glob(".*.partial"))
    batch = json.loads(sorted(out.glob("batch-*.json"))[-1].read_text())
    assert batch["counts"]["interrupted"] == 4
    assert sum(r["reason"] == "not run: interrupted" for r in batch["runs"]) == 3


def test_ctrl_c_stops_dispatching_and_publishes_the_interrupted_report(tmp_path: Path) -> None:
    proc, out = _start_slow_batch(tmp_path, 4)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130, stderr
    assert elapsed < 15, elapsed  # the run stops at once; queued runs never start
    _assert_interrupted_run(out)
    (run,) = run_folders(out)
    nb = nbformat.read(run / "valuation.ipynb", as_version=4)
    marked = [c for c in nb.cells if c.metadata.get("papermill", {}).get("exception")]
    assert len(marked) == 1  # the cell that was running
    assert "Traceback" not in stderr


def test_a_second_ctrl_c_exits_within_two_seconds(tmp_path: Path) -> None:
    proc, out = _start_slow_batch(tmp_path, 4)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    second = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - second < 2.0
    assert proc.returncode == 130, stderr
    _assert_interrupted_run(out)


# --------------------------------------------------------------------------------------------
# A stop (Ctrl-C, or SIGTERM from a pool) while a run's folder is claimed or finished


def _stop_here(signum: int, real: Any) -> Any:
    """``real``, with ``signum`` sent to this process first: a stop arriving at that point."""

    def stopped(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    return stopped


def _raise_keyboard_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # as `wfo run` and a batch worker inside a run handle SIGTERM


@contextlib.contextmanager
def handlers_set(**handlers: Any) -> Iterator[dict[int, Any]]:
    """Signal handlers for a test, by name (SIGINT=...), and this process's put back after."""
    wanted = {getattr(signal, name): handler for name, handler in handlers.items()}
    previous = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}
    try:
        yield wanted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _installed(handlers: dict[int, Any]) -> dict[int, Any]:
    return {signum: signal.getsignal(signum) for signum in handlers}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(
    ("where", "status"),
    [
        ("snapshot_http_sources", "interrupted"),  # set-up: after the claim, before the run
        ("_notify", "succeeded"),  # finishing, where a stop is let in and caught
        ("_trace", "succeeded"),
        ("_close_run", "succeeded"),  # finishing, where a stop is held until the folder is done
    ],
)
def test_a_stop_while_the_folder_is_claimed_or_finished_leaves_no_partial_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int, where: str, status: str
) -> None:
    from wfo_kit import runs
    from wfo_kit.config import resolve_config

    monkeypatch.setattr(runs, where, _stop_here(signum, getattr(runs, where)))
    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    resolved = resolve_config(params(tmp_path, "fine", f"report:\n  notebook: {fine}\n"))
    out = tmp_path / "out"
    with handlers_set(SIGINT=signal.default_int_handler, SIGTERM=_raise_keyboard_interrupt) as set_:
        with pytest.raises(KeyboardInterrupt):  # the stop still stops the caller
            runs.run_report(resolved, output_root=out, reuse_kernel=True)
        assert _installed(set_) == set_  # no hold left behind
    assert not list(out.glob(".*.partial"))
    (run,) = run_folders(out)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == status
    assert ("INTERRUPTED" in (run / "report.html").read_text()) == (status == "interrupted")
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert [entry["outcome"] for entry in audit] == ["started", status]


@pytest.mark.parametrize(("where", "status"), [("_close_run", "succeeded"), ("_notify", "failed")])
def test_a_batch_run_stopped_as_it_is_finished_keeps_the_status_of_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, status: str
) -> None:
    # What a worker reports when its pool stops it (SIGTERM) just after the run's outcome is known.
    from wfo_kit import batch, runs

    monkeypatch.setattr(runs, where, _stop_here(signal.SIGTERM, getattr(runs, where)))
    body = "print('fine')" if status == "succeeded" else "raise ValueError('a cell failed')"
    cell = notebook(tmp_path / "cell.ipynb", body)
    job = batch.Job(
        str(params(tmp_path, "p", f"report:\n  notebook: {cell}\n")),
        make_run_id("stopped"),
        str(tmp_path / "out"),
    )
    with handlers_set(SIGTERM=batch._on_sigterm) as set_:
        outcome = batch.run_job(job)
        assert _installed(set_) == set_
    manifest = json.loads((tmp_path / "out" / job.run_id / "manifest.json").read_text())
    assert outcome["status"] == manifest["status"] == status
    assert outcome["report"] == str(tmp_path / "out" / job.run_id / "report.html")
    if status == "failed":
        assert "a cell failed" in outcome["reason"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_wfo_run_stopped_by_ctrl_c_or_sigterm_publishes_its_interrupted_report(
    tmp_path: Path, signum: int
) -> None:
    # SIGTERM is what `timeout`, `docker stop` and systemd send: it used to kill `wfo run`
    # outright, its run left .partial with no report.
    slow = notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    out = tmp_path / "out"
    command = [WFO, "run", str(params(tmp_path, "slow", f"report:\n  notebook: {slow}\n"))]
    proc = subprocess.Popen(
        [*command, "--output", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # the kernel is then inside the slow cell
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "wfo: interrupted"
    assert "Traceback" not in stderr
    assert not list(out.glob(".*.partial"))
    (run,) = run_folders(out)
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    assert "INTERRUPTED" in (run / "report.html").read_text()


STOPPED_RUNS = """
import os, signal, sys, threading
from pathlib import Path
from wfo_kit import runs
from wfo_kit.config import resolve_config

def stop(_signum, _frame):
    raise KeyboardInterrupt  # as a batch worker inside a run

signal.signal(signal.SIGTERM, stop)
resolved = resolve_config(sys.argv[1])
out = Path(sys.argv[2])
runs.run_report(resolved, output_root=out, reuse_kernel=True)  # a warm kernel from here on
for n in range(int(sys.argv[3])):
    after = 0.004 + n * float(sys.argv[4])
    timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        try:
            status = runs.run_report(resolved, output_root=out, reuse_kernel=True).status
        finally:
            timer.join()
    except KeyboardInterrupt:
        status = "stopped"
    print(f"{after:.3f} {status}", flush=True)
"""


def test_stops_anywhere_in_warm_runs_never_hang_and_leave_no_partial_folder(tmp_path: Path) -> None:
    # A stop inside an exchange with the kernel (its reset, its client's start) left a zmq
    # context whose termination hung for ever: a batch worker stopped by its pool hung, and the
    # batch with it. A process of its own, so that a hang fails this test instead of the suite.
    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    parameters = params(tmp_path, "fine", f"report:\n  notebook: {fine}\n")
    out = tmp_path / "out"
    stops = 30
    done = subprocess.run(
        [sys.executable, "-c", STOPPED_RUNS, str(parameters), str(out), str(stops), "0.002"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == stops, done.stdout
    assert not list(out.glob(".*.partial"))
    statuses = [
        json.loads((run / "manifest.json").read_text())["status"] for run in run_folders(out)
    ]
    assert statuses  # the warm-up run at least; a run stopped before its claim has no folder
    assert set(statuses) <= {"succeeded", "interrupted"}


def test_closing_a_kernel_client_that_hangs_gives_up_in_time_and_keeps_it() -> None:
    from wfo_kit import kernels

    release = threading.Event()

    class HangingClient:  # stop_channels blocked, as in zmq's context termination after a stop
        def stop_channels(self) -> None:
            release.wait(30)

    client = HangingClient()
    started = time.monotonic()
    try:
        kernels.close_client(client, within=0.2)
        assert time.monotonic() - started < 5
        assert client in kernels._UNCLOSED_CLIENTS  # never collected, so never closed again
    finally:
        release.set()
        kernels._UNCLOSED_CLIENTS.remove(client)


def test_a_kernel_whose_manager_cannot_shut_it_down_is_killed_and_its_files_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_client.utils import run_sync

    from wfo_kit import kernels

    km = kernels.ipc_kernel_manager()(kernel_name="wfo_kit")
    run_sync(km.start_kernel)(extra_arguments=kernels.KERNEL_ARGUMENTS)
    process = km.provisioner.process
    connection_file = Path(km.connection_file)
    assert process.poll() is None
    assert connection_file.is_file()

    def refuses(*_args: Any, **_kwargs: Any) -> None:  # as after a start stopped midway
        raise asyncio.InvalidStateError("invalid state")

    monkeypatch.setattr(km, "shutdown_kernel", refuses)
    kernels._discard_kernel(km)
    assert process.poll() is not None  # killed and reaped, not left to notice its parent
    assert not connection_file.exists()
    assert not list(Path(km.ip).parent.glob(f"{Path(km.ip).name}-*"))  # its IPC sockets
    assert km.context.closed  # its zmq context too


def test_held_signals_act_inside_let_through_and_at_the_end_never_between() -> None:
    from wfo_kit.stopping import HeldSignals

    events = []

    def held_twice() -> None:
        with HeldSignals() as hold:
            os.kill(os.getpid(), signal.SIGINT)
            events.append("held")
            try:
                with hold.let_through():
                    events.append("never")  # what was held is raised as the block opens
            except KeyboardInterrupt:
                events.append("raised inside")
            os.kill(os.getpid(), signal.SIGINT)
            events.append("held again")

    with handlers_set(SIGINT=signal.default_int_handler) as set_:
        with pytest.raises(KeyboardInterrupt):  # raised as the block ends
            held_twice()
        assert _installed(set_) == set_
    assert events == ["held", "raised inside", "held again"]

    def elsewhere() -> None:  # no handler can be set outside the main thread: nothing is held
        with HeldSignals() as hold, hold.let_through():
            events.append("thread")

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert events[-1] == "thread"


@pytest.mark.parametrize("after", [0.0, 0.5])  # its kernel starting; then importing (1-2 s)
def test_a_worker_stopped_while_warming_up_leaves_quietly_with_its_kernel(after: float) -> None:
    code = "from wfo_kit.batch import _worker_init\n_worker_init('wfo_kit')\nprint('warm')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 60
    kernels: list[str] = []
    try:
        while not kernels and time.monotonic() < deadline:  # its kernel has started: warming up
            with contextlib.suppress(OSError):
                kernels = children.read_text().split()
            time.sleep(0.01)
        time.sleep(after)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:  # never a process left running for a later test to find
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert kernels, "the worker started no kernel within 60 s"
    assert proc.returncode == 0, stderr
    assert "warm" not in stdout  # stopped during the warm-up, not after it
    assert "Traceback" not in stderr, stderr
    assert "Exception in initializer" not in stderr
    # Its kernel was shut down with it, not left to find out that its parent had gone (the
    # kernel shares the worker's stderr, so communicate() also waited for the kernel to exit).
    assert "Parent appears to have exited" not in stderr, stderr


# --------------------------------------------------------------------------------------------
# Read-only and full disks


def test_output_root_that_is_a_file_is_exit_3(tmp_path: Path) -> None:
    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    p = params(tmp_path, "p", f"report:\n  notebook: {fine}\noutput:\n  root: {blocker}\n")
    for args in (
        ("run", str(p)),
        ("validate", str(p)),
        ("batch", str(p), "--output", str(blocker)),
    ):
        result = wfo(*args)
        line = one_line(result.stderr)
        assert result.returncode == 3, result.stderr
        assert str(blocker) in line
        assert "not a folder" in line or "Not a directory" in line or "File exists" in line, line


def test_read_only_output_root_is_exit_3_for_validate_run_and_batch(tmp_path: Path) -> None:
    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    p = params(tmp_path, "p", f"report:\n  notebook: {fine}\n")
    out = tmp_path / "out"
    out.mkdir()
    with read_only(out):
        for args in (
            ("validate", str(p), "--quarantine", str(out / "q.csv")),
            ("run", str(p), "--output", str(out)),
            ("batch", str(p), "--output", str(out)),
        ):
            result = wfo(*args)
            line = one_line(result.stderr)
            assert result.returncode == 3, (args, result.stderr)
            assert "Read-only file system" in line, line


def test_output_made_read_only_mid_run_is_accounted_for(tmp_path: Path) -> None:
    slow = notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(4)\nprint('done')")
    p = params(tmp_path, "p", f"report:\n  notebook: {slow}\n")
    out = tmp_path / "out"
    out.mkdir()
    command = [WFO, "run", str(p), "--output", str(out), "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # inside the slow cell
    with read_only(out):
        _, stderr = proc.communicate(timeout=120)
        line = one_line(stderr)
        assert proc.returncode == 3, stderr
        assert "could not be saved (report: Read-only file system)" in line, line
        assert "`wfo runs` lists it as incomplete" in line
        history = run_history(out)
        assert history["status"].to_list() == ["incomplete"]
        assert "its process is gone" in history["error"][0]
        audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
        assert [a["outcome"] for a in audit] == ["started"]
        assert main(["runs", "--output", str(out), "--status", "incomplete"]) == 0


def test_a_full_disk_is_exit_3_and_the_run_is_listed_incomplete(tmp_path: Path) -> None:
    big = notebook(tmp_path / "big.ipynb", "print('x' * 3_000_000)")
    p = params(tmp_path, "p", f"report:\n  notebook: {big}\n")
    out = tmp_path / "out"
    with small_disk(out, "1m"):
        result = wfo("run", str(p), "--output", str(out), "--no-progress")
        line = one_line(result.stderr)
        assert result.returncode == 3, result.stderr
        assert "No space left on device" in line, line
        history = run_history(out)
        assert history["status"].to_list() == ["incomplete"]
        listing = wfo("runs", "--output", str(out))
        assert listing.returncode == 0
        assert "incomplete" in listing.stdout


# --------------------------------------------------------------------------------------------
# Short error lines, no stray output


@pytest.mark.parametrize(
    ("body", "extra", "expected"),
    [
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "", "the kernel died"),
        (
            "import time\ntime.sleep(60)",
            "  cell_timeout: 2\n",
            "ran longer than report.cell_timeout",
        ),
    ],
    ids=["dead-kernel", "cell-timeout"],
)
def test_a_stopped_notebook_is_one_short_line(
    tmp_path: Path, body: str, extra: str, expected: str
) -> None:
    nb = notebook(tmp_path / "nb.ipynb", body)
    p = params(tmp_path, "p", f"report:\n  notebook: {nb}\n{extra}")
    result = wfo("run", str(p), "--output", str(tmp_path / "out"), "--no-progress")
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert expected in line
    assert len(line.split(" (report: ")[0]) < 200, line
    (run,) = run_folders(tmp_path / "out")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["error"]["details"]["evalue"]  # the full text is kept in the manifest


# --------------------------------------------------------------------------------------------
# Nothing dropped silently


def test_unreadable_manifest_is_listed_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-a" / "manifest.json").write_text('{"run_id": "run-a", "status": "succ')
    (tmp_path / "bench").mkdir()  # not a run folder: not listed
    history = run_history(tmp_path)
    assert history.select("run_id", "status").rows() == [("run-a", "unreadable")]
    assert history["error"][0].startswith("manifest.json cannot be read: JSONDecodeError")


def test_native_panic_in_a_command_is_one_line_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wfo_kit import cli

    def panics(_args: object) -> int:
        # A real Rust panic surfaced through Polars' own exception type (a BaseException).
        raise pl.exceptions.PanicException("assertion failed: i < self.len()")

    monkeypatch.setitem(cli.COMMANDS, "validate", panics)
    assert main(["validate", "parameters/default.yaml"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("wfo: internal error: a panic in native code (Polars): assertion")
