"""One run: execute the valuation notebook, publish it, and account for it on disk.

A run writes ``<output.root>/<run_id>/``::

    valuation.ipynb    the executed notebook (kept when a cell fails, showing the failing cell)
    report.html        self-contained HTML, code hidden, plotly.js embedded once, no network
    results/           result tables (Parquet by default; CSV/JSON by configuration)
    metrics.json       per-step timings and row counts from inside the kernel
    manifest.json      parameters, sources, input hashes, versions, status, error
    log.jsonl          every event of the run

Everything is built in a hidden ``.<run_id>.partial`` folder and renamed into place at the end, so
a folder under a run id is always complete (its manifest says whether the run succeeded).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import getpass
import hashlib
import json
import os
import platform
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from wfo_kit.config import ResolvedConfig, externalize_secrets, mask_secrets
from wfo_kit.errors import (
    ExecutionError,
    InfrastructureError,
    NotebookExecutionError,
    WfoError,
)
from wfo_kit.io import write_json
from wfo_kit.kernels import check_kernel, execute_notebook
from wfo_kit.observers import JsonlLog, TerminalProgress, console_log, follow
from wfo_kit.pipeline import check_step_names
from wfo_kit.publish import export_html

PACKAGES = (
    "wfo_kit",
    "polars",
    "pandera",
    "numpy",
    "scipy",
    "plotly",
    "papermill",
    "nbconvert",
    "nbclient",
    "ipykernel",
    "pydantic",
)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    report: Path
    error: NotebookExecutionError | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hashes(resolved: ResolvedConfig) -> dict[str, str | None]:
    hashes: dict[str, str | None] = {}
    for name, source in resolved.config.data:
        if source is not None and source.path is not None:
            path = Path(source.path)
            hashes[name] = file_sha256(path) if path.is_file() else None
    return hashes


def make_run_id(resolved: ResolvedConfig, hashes: dict[str, str | None]) -> str:
    """Timestamp plus a short hash of the configuration and the input files' contents."""
    payload = json.dumps(
        {"config": resolved.config.model_dump(mode="json"), "inputs": hashes}, sort_keys=True
    )
    short = hashlib.sha256(payload.encode()).hexdigest()[:8]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{short}"


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_report(
    resolved: ResolvedConfig,
    *,
    params_file: str | Path | None = None,
    output_root: Path | None = None,
    log: Any = None,
    progress: bool = False,
    run_id: str | None = None,
    reuse_kernel: bool = False,
    verbose: bool = False,
) -> RunResult:
    """Execute the valuation notebook for one configuration and publish its HTML report.

    Events from this process (run and report/publish steps) and from the kernel (pipeline steps)
    go to the run's ``log.jsonl``; with ``progress`` a one-line progress display follows them.
    ``run_id`` defaults to the UTC time plus a content hash; batches pass a pure content id so
    that a second invocation recognises finished runs. An interrupted run (Ctrl-C, SIGTERM) is
    still moved under its final name, with ``status: interrupted`` in its manifest.
    """
    config, secret_env = externalize_secrets(resolved.config)
    steps = check_step_names(config)
    check_kernel(config.report.kernel)
    hashes = input_hashes(resolved)
    run_id = run_id or make_run_id(resolved, hashes)
    root = Path(output_root or config.output.root).resolve()
    final = root / run_id
    partial = root / f".{run_id}.partial"
    try:
        if partial.exists():  # left by a crashed earlier attempt: never reused
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
    except OSError as exc:
        msg = f"cannot create the run folder under {root}: {exc.strerror or exc}"
        raise InfrastructureError(msg, hint="check the output folder and its permissions") from exc

    say = log or (lambda _msg: None)
    events = JsonlLog(partial / "log.jsonl")

    def emit(event: str, **fields: Any) -> None:
        events(event, {"event": event, "time": time.time(), "run_id": run_id, **fields})

    started = dt.datetime.now(dt.UTC)
    timings: dict[str, float] = {}
    error: WfoError | None = None
    status = "failed"
    emit("run_started", steps=[*steps, "report", "publish"], params_file=str(params_file or ""))
    executed = partial / "valuation.ipynb"
    try:
        say(f"run {run_id}: executing the notebook")
        emit("step_started", step="report")
        tick = time.perf_counter()
        os.environ.update(secret_env)  # the kernel inherits them; no file holds them
        try:
            with _progress(
                partial / "log.jsonl", total=len(steps), enabled=progress, verbose=verbose
            ):
                execute_notebook(
                    config,
                    executed,
                    partial,
                    run_id=run_id,
                    sources=resolved.sources,
                    # a kernel started earlier cannot see secrets put in the environment now
                    reuse_kernel=reuse_kernel and not secret_env,
                )
        except NotebookExecutionError as exc:
            error = exc
            emit("step_failed", step="report", error=exc.to_dict())
        finally:
            for name in secret_env:
                os.environ.pop(name, None)
        timings["execute"] = time.perf_counter() - tick
        if error is None:
            emit("step_finished", step="report", seconds=timings["execute"])
        say("publishing HTML")
        emit("step_started", step="publish")
        tick = time.perf_counter()
        export_html(executed, partial / "report.html", failed=error)
        timings["export"] = time.perf_counter() - tick
        emit("step_finished", step="publish", seconds=timings["export"])
        status = "failed" if error else "succeeded"
    except (KeyboardInterrupt, SystemExit) as exc:
        status = "interrupted"
        error = ExecutionError(f"run interrupted ({type(exc).__name__})", step="report")
        raise
    except Exception as exc:
        status = "failed"
        error = classify_error(exc)
        raise error from exc
    finally:
        metrics = _read_json(partial / "metrics.json") or {"steps": None, "quality": None}
        manifest = {
            "run_id": run_id,
            "status": status,
            "started": started.isoformat(),
            "finished": dt.datetime.now(dt.UTC).isoformat(),
            "params_file": str(params_file) if params_file else None,
            "user": _user(),
            "host": platform.node(),
            "config": mask_secrets(resolved.config.model_dump(mode="json")),
            "sources": resolved.sources,
            "inputs_sha256": hashes,
            "versions": package_versions(),
            "timings_seconds": timings,
            "steps": metrics.get("steps"),
            "quality": metrics.get("quality"),
            "headline": _headline(partial),
            "results": sorted(str(p.relative_to(partial)) for p in (partial / "results").glob("*"))
            if (partial / "results").is_dir()
            else [],
            "error": error.to_dict() | {"details": error.details} if error else None,
        }
        write_json(partial / "manifest.json", manifest)
        if status == "succeeded":
            emit("run_finished", seconds=sum(timings.values()))
        else:
            emit("run_failed", status=status, error=error.to_dict() if error else None)
        if final.exists():  # a re-run of the same id (failed before, or --force): replace it
            shutil.rmtree(final)
        os.replace(partial, final)
        append_audit(
            root / "audit.jsonl",
            command="run",
            params_file=params_file,
            config_hash=run_id.rsplit("-", 1)[-1],
            run_id=run_id,
            outcome=status,
        )
    return RunResult(run_id, final, status, final / "report.html", error)


def classify_error(exc: BaseException) -> WfoError:
    """An unexpected error outside the notebook, in the hierarchy."""
    if isinstance(exc, WfoError):
        return exc
    if isinstance(exc, OSError):
        return InfrastructureError(f"{type(exc).__name__}: {exc}", step="report")
    return ExecutionError(f"{type(exc).__name__}: {exc}", step="report")


def _headline(run_dir: Path) -> dict[str, Any] | None:
    """A one-glance figure for batch tables: companies valued and the median blended value."""
    path = run_dir / "results" / "blend.parquet"
    if not path.is_file():
        return None
    import polars as pl

    blend = pl.read_parquet(path)
    valued = blend.filter(pl.col("base").is_not_null())
    return {
        "companies": blend.height,
        "valued": valued.height,
        "median_blended_value_per_share": valued["base"].median() if valued.height else None,
    }


@contextlib.contextmanager
def _progress(
    log_path: Path, *, total: int, enabled: bool, verbose: bool = False
) -> Iterator[None]:
    """Follow the run's log in a thread: a one-line progress display and/or console logging."""
    if not (enabled or verbose):
        yield
        return
    stop = threading.Event()
    bar = TerminalProgress(total=total) if enabled else None

    def pump() -> None:
        for event in follow(log_path, stop):
            name = event.get("event", "")
            if verbose:
                console_log(name, event)
            if bar is not None and name.startswith("step_") and event.get("step") != "report":
                bar(name, event)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        if bar is not None:
            bar.close("notebook executed")


def append_audit(path: Path, **fields: Any) -> None:
    """Append one line to the audit log: who, where, what, when, outcome.

    One ``write`` on a file opened for appending: lines from concurrent runs never interleave.
    """
    record = {
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "user": _user(),
        "host": platform.node(),
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items()},
    }
    line = (json.dumps(record, default=str) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
