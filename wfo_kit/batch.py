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
import datetime as dt
import glob
import hashlib
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wfo_kit.errors import ConfigurationError, WfoError

MAX_POOL_RESTARTS = 3


@dataclass(frozen=True)
class Job:
    params_file: str
    run_id: str
    output_root: str
    sets: tuple[str, ...] = ()


@dataclass
class Outcome:
    run_id: str
    params_file: str
    status: str  # succeeded | failed | interrupted | skipped
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


def content_run_id(params_file: Path, sets: tuple[str, ...] = ()) -> str:
    """``<stem>-<hash>``: the hash of the effective config, input files, notebook and version."""
    from wfo_kit import __version__
    from wfo_kit.config import resolve_config
    from wfo_kit.publish import notebook_path
    from wfo_kit.runs import file_sha256, input_hashes

    resolved = resolve_config(params_file, sets=list(sets))
    config = resolved.config
    notebook = Path(config.report.notebook) if config.report.notebook else notebook_path()
    payload = json.dumps(
        {
            "config": config.model_dump(mode="json"),
            "inputs": input_hashes(resolved),
            "notebook": file_sha256(notebook),
            "version": __version__,
        },
        sort_keys=True,
    )
    return f"{params_file.stem}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def run_job(job: Job) -> dict[str, Any]:
    """Run one job (in a worker process); never raises for a failed run, returns its outcome."""
    from wfo_kit.config import resolve_config
    from wfo_kit.kernels import memory_report
    from wfo_kit.runs import run_report

    start = time.perf_counter()
    try:
        resolved = resolve_config(job.params_file, sets=list(job.sets))
        result = run_report(
            resolved,
            params_file=job.params_file,
            output_root=Path(job.output_root),
            run_id=job.run_id,
            reuse_kernel=True,  # a warm kernel per worker: imports paid once
        )
    except KeyboardInterrupt:
        return asdict(
            Outcome(
                job.run_id,
                job.params_file,
                "interrupted",
                time.perf_counter() - start,
                reason="interrupted",
            )
        )
    except WfoError as exc:
        return asdict(
            Outcome(
                job.run_id,
                job.params_file,
                "failed",
                time.perf_counter() - start,
                reason=exc.one_line(),
            )
        )
    manifest = json.loads((result.run_dir / "manifest.json").read_text(encoding="utf-8"))
    headline = (manifest.get("headline") or {}).get("median_blended_value_per_share")
    return asdict(
        Outcome(
            result.run_id,
            job.params_file,
            result.status,
            time.perf_counter() - start,
            headline=headline,
            report=str(result.report),
            reason=result.error.one_line() if result.error else None,
            **memory_report(),
        )
    )


def _manifest_status(run_dir: Path) -> str | None:
    path = run_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status")
    except (OSError, json.JSONDecodeError):
        return None


def _finalize_orphan(root: Path, run_id: str, status: str, reason: str) -> None:
    """A run whose worker vanished: keep what it wrote, under its final name, with the reason."""
    partial = root / f".{run_id}.partial"
    if not partial.is_dir():
        return
    from wfo_kit.io import write_json

    write_json(
        partial / "manifest.json",
        {
            "run_id": run_id,
            "status": status,
            "finished": dt.datetime.now(dt.UTC).isoformat(),
            "error": {"class": "ExecutionError", "message": reason},
        },
    )
    final = root / run_id
    if final.exists():
        import shutil

        shutil.rmtree(final)
    os.replace(partial, final)


def _worker_init(kernel: str) -> None:
    # Workers leave Ctrl-C to the batch process, which interrupts them on purpose (SIGTERM ->
    # KeyboardInterrupt inside the run, so the run is finalized as interrupted).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Pay the imports and a kernel's start-up now, while the pool is starting.
    from wfo_kit.kernels import prewarm_kernel

    with contextlib.suppress(Exception):  # a failure here only means a cold first run
        prewarm_kernel(kernel)


@contextlib.contextmanager
def _executor(
    workers: int, scheduler: str | None, kernel: str = "wfo_kit"
) -> Iterator[cf.Executor]:
    if scheduler:
        try:
            from distributed import Client
        except ImportError as exc:
            msg = "a Dask scheduler was given but dask[distributed] is not installed"
            raise ConfigurationError(msg, hint="pip install 'wfo_kit[dask]'") from exc
        client = Client(scheduler, timeout=30)
        try:
            yield client.get_executor(pure=False)
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
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_batch(
    patterns: list[str],
    *,
    output_root: Path,
    workers: int = 2,
    scheduler: str | None = None,
    force: bool = False,
    sets: tuple[str, ...] = (),
    progress: Any = None,
) -> tuple[list[Outcome], Path]:
    """Run every parameters file; return the outcomes and the batch manifest path."""
    root = Path(output_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    files = expand(patterns)
    outcomes: dict[str, Outcome] = {}
    jobs: list[Job] = []
    for path in files:
        try:
            run_id = content_run_id(path, sets)
        except WfoError as exc:
            key = f"invalid:{path}"
            outcomes[key] = Outcome(key, str(path), "failed", reason=exc.one_line())
            continue
        if not force and _manifest_status(root / run_id) == "succeeded":
            outcomes[run_id] = Outcome(
                run_id, str(path), "skipped", report=str(root / run_id / "report.html")
            )
            continue
        jobs.append(Job(str(path), run_id, str(root), sets))
    tick = progress or (lambda _done, _total, _outcome: None)
    total = len(files)
    for done, outcome in enumerate(outcomes.values(), start=1):  # skipped or invalid: done now
        tick(done, total, outcome)

    started = time.perf_counter()
    pending = list(jobs)
    interrupted = False
    for _ in range(MAX_POOL_RESTARTS + 1):
        if not pending:
            break
        pending, interrupted = _run_round(
            pending, outcomes, root, workers, scheduler, lambda o: tick(len(outcomes), total, o)
        )
        if interrupted:
            break
    for job in pending:
        outcomes[job.run_id] = Outcome(
            job.run_id,
            job.params_file,
            "interrupted" if interrupted else "failed",
            reason="not run: interrupted" if interrupted else "not run: worker pool kept failing",
        )
    manifest = _write_batch_manifest(
        root,
        list(outcomes.values()),
        time.perf_counter() - started,
        workers=workers,
        scheduler=scheduler,
    )
    if interrupted:
        raise KeyboardInterrupt(str(manifest))
    return list(outcomes.values()), manifest


def _run_round(
    jobs: list[Job],
    outcomes: dict[str, Outcome],
    root: Path,
    workers: int,
    scheduler: str | None,
    tick: Any,
) -> tuple[list[Job], bool]:
    """Submit jobs; return (jobs to retry on a fresh pool, interrupted?)."""
    broken: list[Job] = []
    with _executor(workers, scheduler) as executor:
        futures = {executor.submit(run_job, job): job for job in jobs}
        try:
            for future in cf.as_completed(futures):
                job = futures[future]
                try:
                    outcome = Outcome(**future.result())
                except cf.process.BrokenProcessPool:
                    broken.append(job)  # judged below, once every worker has exited
                    continue
                except Exception as exc:  # a worker-side crash outside run_job's own handling
                    outcome = Outcome(
                        job.run_id, job.params_file, "failed", reason=f"{type(exc).__name__}: {exc}"
                    )
                outcomes[job.run_id] = outcome
                tick(outcome)
        except KeyboardInterrupt:
            _interrupt(executor, futures, outcomes, root)
            return [j for j in jobs if j.run_id not in outcomes], True
    # A worker died. The pool then stopped the other workers: their runs finalized themselves
    # as interrupted and run again; the run whose worker died left only its partial folder.
    retry = []
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
            retry.append(job)
            continue
        else:
            outcome = Outcome(
                job.run_id, job.params_file, status, report=str(root / job.run_id / "report.html")
            )
        outcomes[job.run_id] = outcome
        tick(outcome)
    return retry, False


def _interrupt(
    executor: cf.Executor, futures: dict[cf.Future, Job], outcomes: dict[str, Outcome], root: Path
) -> None:
    """Stop queued jobs, ask running ones to stop, keep everything finished."""
    for future in futures:
        future.cancel()
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)  # -> KeyboardInterrupt in the worker's run
    deadline = time.monotonic() + 20
    for future, job in futures.items():
        if future.cancelled():
            continue
        try:
            outcome = Outcome(**future.result(timeout=max(0.1, deadline - time.monotonic())))
        except Exception:
            outcome = Outcome(job.run_id, job.params_file, "interrupted", reason="interrupted")
        if outcome.status == "interrupted" or job.run_id not in outcomes:
            _finalize_orphan(root, job.run_id, "interrupted", "interrupted")
        outcomes[job.run_id] = outcome


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
                for s in ("succeeded", "skipped", "failed", "interrupted")
            },
            "runs": [asdict(o) for o in outcomes],
        },
    )
    return path
