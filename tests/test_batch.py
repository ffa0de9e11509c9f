"""Batch runs with real worker processes and kernels: failures kept, resume, faults, Dask."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.builders import notebook, params
from wfo_kit.batch import run_batch
from wfo_kit.cli import main

pytestmark = pytest.mark.e2e

FAST = (
    "valuation:\n  monte_carlo: {enabled: false}\n  sensitivity: {enabled: false}\n"
    "  terminal_growth: 0.0{n}\n"
)


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    raising = notebook(folder / "raising.ipynb", "raise RuntimeError('boom in a cell')")
    for n in range(1, 5):
        params(folder, f"good{n}", FAST.replace("{n}", str(n)))
    params(folder, "bad_data", "data:\n  financials: missing.csv\n")
    params(folder, "raising_cell", f"report:\n  notebook: {raising}\n")
    return folder


def outcomes_by_name(outcomes: list) -> dict[str, object]:
    return {Path(o.params_file).stem: o for o in outcomes}


def test_batch_keeps_failures_and_resumes(
    batch_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = batch_dir / "out"
    code = main(["batch", str(batch_dir / "*.yaml"), "--workers", "2", "--output", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 1
    assert "batch: 4 succeeded, 0 skipped (already done), 2 failed" in stdout
    errors = [line for line in stderr.splitlines() if line.startswith("wfo: error:")]
    assert len(errors) == 2
    assert any("DataFormatError: financials: file not found" in line for line in errors)
    assert any("RuntimeError: boom in a cell" in line for line in errors)
    failed = [p for p in out.iterdir() if p.is_dir() and "-raising_cell-" in p.name]
    # the one run-id scheme of `wfo run` and `wfo batch`: <UTC time>-<file stem>-<hash>-<suffix>
    assert re.fullmatch(r"\d{8}T\d{6}-raising_cell-[0-9a-f]{8}-[0-9a-f]{6}", failed[0].name)
    assert len(failed) == 1
    manifest = json.loads((failed[0] / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert "This run FAILED" in (failed[0] / "report.html").read_text()
    batch_manifests = sorted(out.glob("batch-*.json"))
    assert json.loads(batch_manifests[-1].read_text())["counts"]["succeeded"] == 4

    # Resume: a second invocation skips what succeeded and re-does the failures.
    code = main(["batch", str(batch_dir / "*.yaml"), "--workers", "2", "--output", str(out)])
    stdout, _ = capsys.readouterr()
    assert code == 1
    assert "batch: 0 succeeded, 4 skipped (already done), 2 failed" in stdout

    # History and diff over the same folder.
    assert main(["runs", "--output", str(out)]) == 0
    listing = capsys.readouterr().out
    assert listing.count("succeeded") == 4
    ids = sorted(p.name for p in out.iterdir() if p.is_dir() and "-good" in p.name)
    assert main(["diff", ids[0], ids[1], "--output", str(out)]) == 0
    diff = capsys.readouterr().out
    assert "valuation.terminal_growth" in diff
    assert "inputs: identical" in diff
    assert main(["runs", "show", ids[0], "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"
    assert main(["runs", "report", "--output", str(out)]) == 0
    history = Path(capsys.readouterr().out.strip())
    assert history.name == "history.html"
    assert "Run history" in history.read_text()


def test_cell_timeout_and_dead_kernel_are_recorded(tmp_path: Path) -> None:
    sleepy = notebook(tmp_path / "sleepy.ipynb", "import time\ntime.sleep(120)")
    killer = notebook(
        tmp_path / "killer.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    )
    params(tmp_path, "timeout", f"report:\n  notebook: {sleepy}\n  cell_timeout: 2\n")
    params(tmp_path, "dead", f"report:\n  notebook: {killer}\n")
    outcomes, _ = run_batch([str(tmp_path / "*.yaml")], output_root=tmp_path / "out", workers=2)
    by_name = outcomes_by_name(outcomes)
    assert by_name["timeout"].status == "failed"
    assert "CellTimeoutError" in by_name["timeout"].reason
    assert by_name["dead"].status == "failed"
    assert "DeadKernelError" in by_name["dead"].reason
    for outcome in outcomes:
        run_dir = tmp_path / "out" / outcome.run_id
        nb = nbformat.read(run_dir / "valuation.ipynb", as_version=4)
        stopped = [c for c in nb.cells if c.metadata.get("papermill", {}).get("exception")]
        assert len(stopped) == 1  # the cell that was running is marked, unlike plain papermill
        assert "This run FAILED" in (run_dir / "report.html").read_text()


def test_a_killed_worker_fails_its_run_only(tmp_path: Path) -> None:
    worker_killer = notebook(
        tmp_path / "wk.ipynb", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    )
    params(tmp_path, "a_killer", f"report:\n  notebook: {worker_killer}\n")
    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    for n in range(3):
        params(
            tmp_path,
            f"fine{n}",
            f"report:\n  notebook: {fine}\nvaluation:\n  terminal_growth: 0.0{n}\n",
        )
    outcomes, _ = run_batch([str(tmp_path / "*.yaml")], output_root=tmp_path / "out", workers=2)
    by_name = outcomes_by_name(outcomes)
    assert by_name["a_killer"].status == "failed"
    assert by_name["a_killer"].reason == "the worker process died during the run"
    assert [by_name[f"fine{n}"].status for n in range(3)] == ["succeeded"] * 3
    assert not list((tmp_path / "out").glob(".*.partial"))


def test_sigint_keeps_finished_runs_and_a_second_invocation_finishes(tmp_path: Path) -> None:
    slow = notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(4)\nprint('done')")
    for n in range(4):
        params(
            tmp_path,
            f"slow{n}",
            f"report:\n  notebook: {slow}\nvaluation:\n  terminal_growth: 0.0{n}\n",
        )
    out = tmp_path / "out"
    command = [
        str(Path(sys.executable).parent / "wfo"),
        "batch",
        str(tmp_path / "*.yaml"),
        "--workers",
        "1",
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for one finished run, then interrupt
        if any((p / "manifest.json").is_file() for p in out.glob("[0-9]*-slow*")):
            break
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted; finished runs are kept" in stderr
    statuses = {
        p.name: json.loads((p / "manifest.json").read_text())["status"]
        for p in out.iterdir()
        if p.is_dir()
    }
    assert "succeeded" in statuses.values()
    assert set(statuses.values()) <= {"succeeded", "interrupted"}
    assert not list(out.glob(".*.partial"))
    done = list(statuses.values()).count("succeeded")
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{4 - done} succeeded, {done} skipped" in again.stdout


def test_unwritable_output_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    params(tmp_path, "p", f"report:\n  notebook: {fine}\n")
    code = main(["run", str(tmp_path / "p.yaml"), "--output", str(blocker / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1
    assert err[0].startswith(f"wfo: error: cannot create the run folder under {blocker / 'out'}")


def test_same_batch_on_a_dask_cluster(tmp_path: Path) -> None:
    from distributed import LocalCluster

    fine = notebook(tmp_path / "fine.ipynb", "print('fine')")
    for n in range(3):
        params(
            tmp_path,
            f"d{n}",
            f"report:\n  notebook: {fine}\nvaluation:\n  terminal_growth: 0.0{n}\n",
        )
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        outcomes, manifest = run_batch(
            [str(tmp_path / "*.yaml")],
            output_root=tmp_path / "out",
            scheduler=cluster.scheduler_address,
        )
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    assert json.loads(manifest.read_text())["scheduler"].startswith("tcp://127.0.0.1")


def test_warm_kernel_is_reused_without_leaking(tmp_path: Path) -> None:
    from wfo_kit import kernels, runs
    from wfo_kit.config import resolve_config

    fine = notebook(tmp_path / "fine.ipynb", "x = 41 + 1\nprint(x)")
    resolved = resolve_config(params(tmp_path, "p", f"report:\n  notebook: {fine}\n"))

    def open_fds() -> int:
        gc.collect()  # what is garbage already is not a leak of these runs
        return len(os.listdir("/proc/self/fd"))

    kernels.shutdown_warm_kernels()  # a test file before this one in the worker may have left one
    runs.run_report(resolved, output_root=tmp_path / "out", reuse_kernel=True)
    fds = open_fds()
    (kernel,) = kernels._WARM["wfo_kit"]
    for _ in range(3):
        result = runs.run_report(resolved, output_root=tmp_path / "out", reuse_kernel=True)
        assert result.status == "succeeded"
    assert kernels._WARM["wfo_kit"] == [kernel]  # the same kernel, still warm
    assert kernel.wfo_runs == 4
    assert open_fds() <= fds  # no client channels left open per run


def test_a_reused_kernel_starts_empty_with_the_libraries_frozen(tmp_path: Path) -> None:
    # The reset between reports ends with gc.freeze(), so the next reset's garbage collection
    # scans only what the last report allocated (about 1 s -> 0.02 s per report here); the
    # namespace must still be empty, the freeze itself included (no name bound by it).
    from wfo_kit import runs
    from wfo_kit.config import resolve_config

    setter = notebook(tmp_path / "setter.ipynb", "leftover = 41 + 1")
    checker = notebook(
        tmp_path / "checker.ipynb",
        "import gc\n"
        "assert 'leftover' not in globals(), 'a name survived the reset'\n"
        "assert gc.get_freeze_count() > 0, 'the reset did not freeze'",
    )
    first = resolve_config(params(tmp_path, "a", f"report:\n  notebook: {setter}\n"))
    second = resolve_config(params(tmp_path, "b", f"report:\n  notebook: {checker}\n"))
    assert runs.run_report(first, output_root=tmp_path / "out", reuse_kernel=True).status == (
        "succeeded"
    )
    result = runs.run_report(second, output_root=tmp_path / "out", reuse_kernel=True)
    assert result.status == "succeeded", result.error


@pytest.mark.parametrize("reuse_kernel", [True, False], ids=["warm", "cold"])
def test_a_client_readied_without_a_quiet_wait_loses_no_output(
    tmp_path: Path, reuse_kernel: bool
) -> None:
    # The run's client is ready once the kernel answered kernel_info on both channels
    # (kernels._until_ready), not after 0.2 s of silence on IOPub: every output of the first
    # cells must still arrive, run after run; and our kernels keep no IPython history.
    import nbformat

    from wfo_kit import kernels, runs
    from wfo_kit.config import resolve_config

    talker = notebook(
        tmp_path / "talker.ipynb",
        "assert not get_ipython().history_manager.enabled, 'the kernel keeps a history'\n"
        "for i in range(50):\n    print(i)",
    )
    resolved = resolve_config(params(tmp_path, "p", f"report:\n  notebook: {talker}\n"))
    kernels.shutdown_warm_kernels()
    for _ in range(4 if reuse_kernel else 2):
        result = runs.run_report(resolved, output_root=tmp_path / "out", reuse_kernel=reuse_kernel)
        assert result.status == "succeeded", result.error
        (path,) = result.run_dir.glob("*.ipynb")
        executed = nbformat.read(str(path), as_version=4)
        *_, first, last = executed.cells  # after the parameters and papermill's injected cell
        assert "".join(o.get("text", "") for o in first.outputs) == "started\n"
        printed = "".join(o.get("text", "") for o in last.outputs)
        assert printed == "".join(f"{i}\n" for i in range(50))
    kernels.shutdown_warm_kernels()


@pytest.mark.parametrize("reuse_kernel", [True, False], ids=["warm", "cold"])
def test_the_run_readies_its_client_without_the_quiet_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reuse_kernel: bool
) -> None:
    from wfo_kit import kernels, runs
    from wfo_kit.config import resolve_config

    readied = []
    until_ready = kernels._until_ready

    async def spy(kc: object, *, timeout: float) -> None:
        readied.append(type(kc).__name__)
        await until_ready(kc, timeout=timeout)

    monkeypatch.setattr(kernels, "_until_ready", spy)
    kernels.shutdown_warm_kernels()
    fine = notebook(tmp_path / "fine.ipynb", "x = 1")
    resolved = resolve_config(params(tmp_path, "p", f"report:\n  notebook: {fine}\n"))
    result = runs.run_report(resolved, output_root=tmp_path / "out", reuse_kernel=reuse_kernel)
    assert result.status == "succeeded", result.error
    assert readied == ["ReadyKernelClient"]  # the run's one nbclient client
    kernels.shutdown_warm_kernels()


def test_readying_a_client_of_a_dead_kernel_says_so() -> None:
    import asyncio

    from wfo_kit.kernels import ipc_kernel_manager

    km = ipc_kernel_manager()(kernel_name="wfo_kit")
    asyncio.run(km.start_kernel())
    try:
        asyncio.run(km.signal_kernel(signal.SIGKILL))
        kc = km.client()
        kc.start_channels()
        try:
            with pytest.raises(RuntimeError, match="Kernel died"):
                asyncio.run(kc.wait_for_ready(timeout=30))
        finally:
            kc.stop_channels()
    finally:
        asyncio.run(km.cleanup_resources())


def test_a_kernel_started_early_has_imported_the_libraries_when_the_run_takes_it(
    tmp_path: Path,
) -> None:
    # wfo run starts its kernel before importing Papermill (kernels.start_kernel_early); the run
    # takes that very kernel, unreset, with the libraries already imported and no name bound.
    from wfo_kit import kernels, runs
    from wfo_kit.config import resolve_config

    kernels.shutdown_warm_kernels()
    starts = kernels.KERNEL_COUNTS["starts"]
    kernels.start_kernel_early("wfo_kit")
    kernels.start_kernel_early("wfo_kit")  # a warm kernel is there: no second one
    (early,) = kernels._WARM["wfo_kit"]
    # what wfo run adds when the Monte Carlo's shocks are not stored (there: scipy.stats)
    kernels.import_early("wfo_kit", ("email.mime.multipart",))
    checker = notebook(
        tmp_path / "checker.ipynb",
        "import sys\n"
        "assert {'polars', 'pandera.polars', 'wfo_kit.charts', 'email.mime.multipart'}"
        " <= set(sys.modules)\n"
        "assert '_m' not in globals(), 'the early imports bound a name'",
    )
    resolved = resolve_config(params(tmp_path, "p", f"report:\n  notebook: {checker}\n"))
    result = runs.run_report(resolved, output_root=tmp_path / "out", reuse_kernel=True)
    assert result.status == "succeeded", result.error
    assert kernels._WARM["wfo_kit"] == [early]
    assert kernels.KERNEL_COUNTS["starts"] == starts + 1  # counted once, by the run
    assert not early.wfo_fresh
    kernels.shutdown_warm_kernels()
