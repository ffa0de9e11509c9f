"""Batch runs: many parameter files through the report notebook, in parallel, resumable.

Each job is a pure description (parameters file, ``--set`` overrides, output root) run by
:func:`run_job` in a worker process: a local ``ProcessPoolExecutor`` (spawned workers, one
notebook at a time each, imports paid once per worker), or a Dask cluster's executor when a
scheduler address is given. Run ids are content hashes (parameters, input files, notebook,
toolkit version), so a second invocation skips runs that already succeeded and re-does failed or
interrupted ones; ``force`` re-runs everything.

Faults: a failed cell, a cell timeout or a dead kernel fail that run only (its folder keeps the
executed notebook and an HTML report marked FAILED). A worker process that dies fails the run it
was executing; runs not yet started go to a fresh pool. Ctrl-C keeps finished runs, marks the
in-flight ones interrupted and exits 130; the next invocation finishes the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import datetime as dt
import glob
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wfo_kit.errors import ConfigurationError, InfrastructureError, WfoError

MAX_POOL_RESTARTS = 3


@dataclass(frozen=True)
class Job:
    params_file: str
    run_id: str
    output_root: str
    sets: tuple[str, ...] = ()
    confine: str | None = None
    owner: str | None = None  # the API user who submitted it (`wfo serve`), in its manifest
    claimed: bool = False  # its `.partial` folder is claimed already (a `wfo serve` queued run)
    rerun_of: str | None = None  # execute that run's configuration again (params_file unused)
    accept_changed_inputs: bool = False  # for a rerun: value the current inputs all the same
    env_name: str | None = None  # `--env NAME`: layer <stem>.NAME.yaml over the parameters file


@dataclass
class Outcome:
    run_id: str
    params_file: str
    status: str  # succeeded | failed | interrupted | skipped | duplicate
    seconds: float = 0.0
    headline: float | None = None
    report: str | None = None
    reason: str | None = None
    worker_peak_mb: float | None = None
    kernel_peak_mb: float | None = None


def expand(patterns: list[str]) -> list[Path]:
    """Parameter files from paths and globs, sorted, each once; a pattern matching nothing is an
    error."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            msg = f"no parameters file matches {pattern!r}"
            raise ConfigurationError(msg)
        for match in matches:
            path = Path(match).resolve()
            if not path.is_file():
                msg = f"parameters file not found: {path}"
                raise ConfigurationError(msg)
            found[path] = None
    return list(found)


def content_id(
    params_file: Path,
    sets: tuple[str, ...] = (),
    confine: str | None = None,
    env_name: str | None = None,
) -> str:
    """``<stem>-<content hash>``: equal for two runs that would compute the same numbers (same
    effective configuration, input contents, notebook and toolkit version)."""
    from wfo_kit.config import resolve_config
    from wfo_kit.runs import content_hash, input_hashes

    resolved = resolve_config(params_file, sets=list(sets), confine=confine, env_name=env_name)
    return f"{params_file.stem}-{content_hash(resolved, input_hashes(resolved))}"


def new_run_id(content: str) -> str:
    """A run id for ``content`` (:func:`content_id`), the same scheme as ``wfo run``'s."""
    from wfo_kit.runs import default_run_prefix, make_run_id

    stem, _, full_hash = content.rpartition("-")
    return make_run_id(default_run_prefix(full_hash, label=stem))


def succeeded_run(root: Path, content: str) -> Path | None:
    """A run folder under ``root`` that already computed ``content`` successfully, if any."""
    from wfo_kit.runs import run_label

    stem, _, full_hash = content.rpartition("-")
    # run ids are <time>-<stem>-<hash, 8 digits>-<suffix> (wfo_kit.runs.default_run_prefix)
    pattern = f"[0-9]*-{glob.escape(run_label(stem))}-{full_hash[:8]}-*/manifest.json"
    for manifest_path in sorted(root.glob(pattern)):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable: not proof of success (`wfo runs` lists it as unreadable)
        if manifest.get("status") == "succeeded" and manifest.get("content_hash") == full_hash:
            return manifest_path.parent
    return None


def run_job(job: Job) -> dict[str, Any]:
    """Run one job (in a worker process) and return its outcome; a failed run is an outcome too.

    A stop (SIGTERM: Ctrl-C of the batch, or the pool lost another worker) gives the outcome the
    run's folder says: a run that finished before the stop reached it keeps its status.
    """
    from wfo_kit.config import resolve_config
    from wfo_kit.runs import run_report

    start = time.perf_counter()
    _IN_RUN.set()
    try:
        params_file: str | None = job.params_file
        try:
            if job.rerun_of is not None:
                from wfo_kit.runs import rerun_config

                resolved, _, params_file = rerun_config(
                    Path(job.output_root),
                    job.rerun_of,
                    accept_changed_inputs=job.accept_changed_inputs,
                    confine=job.confine,
                )
            else:
                resolved = resolve_config(
                    job.params_file, sets=list(job.sets), confine=job.confine, env_name=job.env_name
                )
            result = run_report(
                resolved,
                params_file=params_file,
                output_root=Path(job.output_root),
                run_id=job.run_id,
                reuse_kernel=True,  # a warm kernel per worker: imports paid once
                owner=job.owner,
                rerun_of=job.rerun_of,
                claimed=job.claimed,
            )
        except WfoError as exc:
            seconds = time.perf_counter() - start
            return asdict(
                Outcome(job.run_id, job.params_file, "failed", seconds, reason=exc.one_line())
            )
        reason = result.error.one_line() if result.error else None
        return _with_memory(_outcome_of(job, result.run_dir, start, reason=reason))
    except KeyboardInterrupt:
        return _with_memory(_outcome_of(job, Path(job.output_root) / job.run_id, start))
    finally:
        _IN_RUN.clear()


def _with_memory(outcome: Outcome) -> dict[str, Any]:
    from wfo_kit.kernels import memory_report

    return asdict(dataclasses.replace(outcome, **memory_report()))


def _outcome_of(
    job: Job, run_dir: Path, start: float | None = None, *, reason: str | None = None
) -> Outcome:
    """The outcome a run's folder says (no folder: interrupted before it had one)."""
    manifest = _read_manifest(run_dir)
    status = manifest.get("status") or "interrupted"
    if reason is None and status != "succeeded":
        error = manifest.get("error") or {}
        reason = "interrupted" if status == "interrupted" else error.get("message")
    report = run_dir / "report.html"
    return Outcome(
        job.run_id,
        job.params_file,
        status,
        0.0 if start is None else time.perf_counter() - start,
        headline=(manifest.get("headline") or {}).get("median_blended_value_per_share"),
        report=str(report) if report.is_file() else None,
        reason=reason,
    )


def _manifest_status(run_dir: Path) -> str | None:
    return _read_manifest(run_dir).get("status")


def _finalize_orphan(root: Path, run_id: str, status: str, reason: str) -> None:
    """A run whose worker vanished: keep what it wrote, under its final name, with the reason.

    Its notebook may be cut short and its report missing: the manifest says so, and a small
    page stands in for the report so that no run folder lacks one. Nothing is overwritten.
    """
    partial = root / f".{run_id}.partial"
    if not partial.is_dir() or (root / run_id).exists():
        return
    from wfo_kit.io import write_json, write_text

    manifest = _read_manifest(partial)
    manifest.update(
        run_id=run_id,
        status=status,
        finished=dt.datetime.now(dt.UTC).isoformat(),
        error={"class": "ExecutionError", "message": reason},
    )
    with contextlib.suppress(WfoError):
        if not (partial / "report.html").is_file():
            write_text(partial / "report.html", _stand_in_report(run_id, status, reason))
        write_json(partial / "manifest.json", manifest)
        os.rename(partial, root / run_id)


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        found = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _stand_in_report(run_id: str, status: str, reason: str) -> str:
    import html

    title = f"Run {run_id}: {status.upper()}"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p role='alert'>This run was {html.escape(status.upper())}"
        f" before its report was published: {html.escape(reason)}.</p>"
        "<p>What it executed is in <code>valuation.ipynb</code>, its events in "
        "<code>log.jsonl</code>.</p></body></html>\n"
    )


_IN_RUN = threading.Event()  # set while this worker process executes a run


def _on_sigterm(_signum: int, _frame: Any) -> None:
    # Inside a run: KeyboardInterrupt, so the run publishes its report marked INTERRUPTED and
    # finalizes its folder. Idle: a quiet exit (multiprocessing prints no traceback for it).
    if _IN_RUN.is_set():
        raise KeyboardInterrupt
    raise SystemExit(0)


def _worker_init(kernel: str) -> None:
    # Workers leave Ctrl-C to the batch process, which stops their runs on purpose (SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _warm_up(kernel)
    except SystemExit:
        # SIGTERM while warming up (the pool lost another worker, or is being stopped): leave
        # quietly, with any kernel kept so far shut down. Raised out of an initializer, it would
        # print "Exception in initializer" and a traceback on the batch's terminal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        from wfo_kit.kernels import shutdown_warm_kernels

        shutdown_warm_kernels()
        os._exit(0)


def _warm_up(kernel: str) -> None:
    """Pay the imports and a kernel's start-up now, while the pool is starting."""
    from wfo_kit.kernels import prewarm_kernel, skip_unused_imports

    skip_unused_imports()
    from wfo_kit.observers import quiet_library_logs, quiet_stopped_cells

    quiet_library_logs()
    quiet_stopped_cells()
    with contextlib.suppress(Exception):  # a failure here only means a cold first run
        prewarm_kernel(kernel)


@contextlib.contextmanager
def _executor(
    workers: int, scheduler: str | None, kernel: str = "wfo_kit"
) -> Iterator[tuple[cf.Executor, int]]:
    """The executor and how many runs it executes at once (jobs are handed out no faster)."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError as exc:
            msg = "a Dask scheduler was given but dask[distributed] is not installed"
            raise ConfigurationError(msg, hint="pip install 'wfo_kit[dask]'") from exc
        client = Client(scheduler, timeout=30)
        try:
            slots = sum(client.nthreads().values()) or workers
            yield client.get_executor(pure=False), slots
        finally:
            client.close()
        return
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded process
        initializer=_worker_init,
        initargs=(kernel,),
    )
    try:
        yield pool, workers
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_writable(root: Path) -> None:
    """Fail now, with one line, if runs cannot be written under ``root``."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".wfo-probe-"):
            pass
    except OSError as exc:
        msg = f"cannot write runs under {root}: {exc.strerror or exc}"
        hint = "check the output folder, its permissions and free space"
        raise InfrastructureError(msg, hint=hint) from exc


def run_batch(
    patterns: list[str],
    *,
    output_root: Path,
    workers: int = 2,
    scheduler: str | None = None,
    force: bool = False,
    sets: tuple[str, ...] = (),
    confine: str | None = None,
    progress: Any = None,
    env_name: str | None = None,
) -> tuple[list[Outcome], Path]:
    """Run every parameters file; return one outcome per file and the batch manifest path.

    Every file given is accounted for: run (succeeded, failed, interrupted), skipped because an
    earlier run with the same content succeeded, a duplicate of another file in this batch (same
    configuration and inputs: run once), or failed before running (invalid parameters, or no
    environment file ``<stem>.<env_name>.yaml`` beside it).
    """
    root = Path(output_root).resolve()
    check_writable(root)
    files = expand(patterns)
    with contextlib.ExitStack() as stack:
        return _run_files(
            files, root, stack, workers, scheduler, force, sets, confine, progress, env_name
        )


def _run_files(
    files: list[Path],
    root: Path,
    stack: contextlib.ExitStack,
    workers: int,
    scheduler: str | None,
    force: bool,  # noqa: FBT001 - run_batch's keyword, passed on
    sets: tuple[str, ...],
    confine: str | None,
    progress: Any,
    env_name: str | None,
) -> tuple[list[Outcome], Path]:
    outcomes: dict[str, Outcome] = {}  # by parameters file, in the order given
    jobs: list[Job] = []
    first_of: dict[str, str] = {}  # content id -> the file that runs it
    # The local pool starts with the first job found: its workers start their kernels and
    # import (2-3 s) while the other files are read and hashed here (0.5 s for the first, with
    # its imports, then about 3 ms each, measured), instead of after all of them.
    early_pool: tuple[cf.Executor, int] | None = None
    for path in files:
        key = str(path)
        try:
            content = content_id(path, sets, confine, env_name)
        except WfoError as exc:
            outcomes[key] = Outcome(f"invalid:{path.name}", key, "failed", reason=exc.one_line())
            continue
        if content in first_of:
            outcomes[key] = Outcome(
                content,
                key,
                "duplicate",
                reason=f"same configuration and inputs as {first_of[content]}",
            )
            continue
        first_of[content] = key
        done = None if force else succeeded_run(root, content)
        if done is not None:
            outcomes[key] = Outcome(done.name, key, "skipped", report=str(done / "report.html"))
            continue
        jobs.append(Job(key, new_run_id(content), str(root), sets, confine, env_name=env_name))
        if early_pool is None and scheduler is None:
            early_pool = stack.enter_context(_executor(workers, None))
            for _ in range(early_pool[1]):
                early_pool[0].submit(_ready)  # spawns a worker (and its initializer) now
    tick = progress or (lambda _done, _total, _outcome: None)
    total = len(files)
    for done_count, outcome in enumerate(list(outcomes.values()), start=1):
        tick(done_count, total, outcome)

    def record(outcome: Outcome) -> None:
        outcomes[outcome.params_file] = outcome
        tick(len(outcomes), total, outcome)

    started = time.perf_counter()
    pending = list(jobs)
    interrupted = False
    for _ in range(MAX_POOL_RESTARTS + 1):
        if not pending:
            break
        pending, interrupted = _run_round(
            pending, root, workers, scheduler, record, pool=early_pool
        )
        early_pool = None  # a retry gets a fresh pool
        if interrupted:
            break
    for job in pending:
        record(
            Outcome(
                job.run_id,
                job.params_file,
                "interrupted" if interrupted else "failed",
                reason="not run: interrupted"
                if interrupted
                else "not run: worker pool kept failing",
            )
        )
    # Duplicates share the outcome of the file that ran for them.
    by_file = {o.params_file: o for o in outcomes.values()}
    for key, outcome in outcomes.items():
        if outcome.status == "duplicate":
            twin = by_file[first_of[outcome.run_id]]
            outcomes[key] = Outcome(
                twin.run_id,
                key,
                "duplicate",
                headline=twin.headline,
                report=twin.report,
                reason=f"{outcome.reason} (run {twin.run_id}: {twin.status})",
            )
    ordered = [outcomes[str(path)] for path in files]
    manifest = _write_batch_manifest(
        root, ordered, time.perf_counter() - started, workers=workers, scheduler=scheduler
    )
    if interrupted:
        raise KeyboardInterrupt(str(manifest))
    return ordered, manifest


@contextlib.contextmanager
def _shut_down_after(pool: tuple[cf.Executor, int]) -> Iterator[tuple[cf.Executor, int]]:
    try:
        yield pool
    finally:
        pool[0].shutdown(wait=True, cancel_futures=True)  # every worker exited


def _ready() -> None:
    """A task that does nothing: submitted to start a worker before the first job is known."""


def _run_round(
    jobs: list[Job],
    root: Path,
    workers: int,
    scheduler: str | None,
    record: Any,
    *,
    pool: tuple[cf.Executor, int] | None = None,
) -> tuple[list[Job], bool]:
    """Run jobs, handing one to the executor only when a slot is free (so Ctrl-C never finds
    runs queued inside the pool). Return (jobs to retry on a fresh pool, interrupted?).

    ``pool``: an executor already started (and its slots); it is shut down here too, as the
    round's own would be, before the runs of a broken pool are judged.
    """
    broken: list[Job] = []
    queue = list(reversed(jobs))
    running: dict[cf.Future, Job] = {}
    context = _shut_down_after(pool) if pool else _executor(workers, scheduler)
    with context as (executor, slots):
        try:
            while queue or running:
                while queue and len(running) < slots and not broken:
                    job = queue.pop()
                    running[executor.submit(run_job, job)] = job
                if not running:
                    break
                finished = _wait_some(running)
                for future in finished:
                    job = running.pop(future)
                    try:
                        outcome = Outcome(**future.result())
                    except (cf.process.BrokenProcessPool, SystemExit):
                        # SystemExit: the worker was stopped just as its run returned; judged
                        # below by the run's folder, as a broken pool's runs are
                        broken.append(job)
                        continue
                    except Exception as exc:  # a worker-side crash outside run_job's handling
                        reason = f"the worker failed outside the run: {type(exc).__name__}: {exc}"
                        outcome = Outcome(job.run_id, job.params_file, "failed", reason=reason)
                    record(outcome)
        except KeyboardInterrupt:
            _interrupt(executor, running, root, record)
            return [*reversed(queue), *broken], True
    # A worker died. The pool then stopped the other workers: their runs finalized themselves
    # as interrupted and run again; the run whose worker died left only its partial folder.
    retry = list(reversed(queue))
    for job in broken:
        status = _manifest_status(root / job.run_id)
        if (root / f".{job.run_id}.partial").is_dir():
            reason = "the worker process died during the run"
            _finalize_orphan(root, job.run_id, "failed", reason)
            outcome = Outcome(
                job.run_id,
                job.params_file,
                "failed",
                reason=reason,
                report=str(root / job.run_id / "report.html"),
            )
        elif status in (None, "interrupted"):
            # A fresh run id: an interrupted run's folder is kept as it is, never reused.
            from wfo_kit.runs import renewed_run_id

            retry.append(dataclasses.replace(job, run_id=renewed_run_id(job.run_id)))
            continue
        else:
            outcome = _outcome_of(job, root / job.run_id)
        record(outcome)
    return retry, False


GRACE_SECONDS = 15.0
POLL_SECONDS = 0.2


def _wait_some(running: dict[cf.Future, Job]) -> set[cf.Future]:
    """The futures that are done, waiting for at least one.

    Waits in short slices: a wait without a timeout is not interrupted by Ctrl-C when the kernel
    delivers SIGINT to one of the executor's threads (Python then runs the handler only once the
    main thread wakes up).
    """
    while True:
        finished, _ = cf.wait(running, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
        if finished:
            return finished


def _interrupt(
    executor: cf.Executor, running: dict[cf.Future, Job], root: Path, record: Any
) -> None:
    """Ctrl-C: dispatch nothing more; ask the running runs to stop and publish what they have.

    The running runs get SIGTERM (a KeyboardInterrupt inside their run, which then writes its
    report marked INTERRUPTED) and up to ``GRACE_SECONDS`` to finish. A second Ctrl-C (or the
    grace period running out) kills their workers at once; their folders are then finalized
    here, with a stand-in report, so nothing is left half-written.
    """
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    try:
        while time.monotonic() < deadline and not all(f.done() for f in running):
            cf.wait(running, timeout=POLL_SECONDS)
    except KeyboardInterrupt:  # the second Ctrl-C: stop now
        pass
    not_done = {f for f in running if not f.done()}
    if not_done:  # runs that did not stop in time: their workers are killed
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    for future, job in running.items():
        outcome, reason = None, "interrupted; its worker was stopped"
        if future not in not_done:
            try:
                outcome = Outcome(**future.result(timeout=0))
            except (Exception, SystemExit) as exc:  # the worker died or exited while stopping
                reason = f"interrupted; its worker ended with {type(exc).__name__}: {exc}"
        if outcome is None:
            future.cancel()
            _finalize_orphan(root, job.run_id, "interrupted", reason)
            outcome = Outcome(job.run_id, job.params_file, "interrupted", reason=reason)
        record(outcome)
    if isinstance(executor, cf.ProcessPoolExecutor):
        executor.shutdown(wait=False, cancel_futures=True)


def _write_batch_manifest(
    root: Path, outcomes: list[Outcome], seconds: float, *, workers: int, scheduler: str | None
) -> Path:
    from wfo_kit.io import write_json

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = root / f"batch-{stamp}-{os.getpid()}.json"
    write_json(
        path,
        {
            "finished": dt.datetime.now(dt.UTC).isoformat(),
            "seconds": seconds,
            "workers": workers,
            "scheduler": scheduler,
            "counts": {
                s: sum(o.status == s for o in outcomes)
                for s in ("succeeded", "skipped", "duplicate", "failed", "interrupted")
            },
            "runs": [asdict(o) for o in outcomes],
        },
    )
    return path
