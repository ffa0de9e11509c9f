"""The report step: execute the valuation notebook with Papermill, publish it with nbconvert.

A run writes ``<output.root>/<run_id>/``::

    valuation.ipynb    the executed notebook (kept when a cell fails, showing the failing cell)
    report.html        self-contained HTML, code hidden, plotly.js embedded once, no network
    results/           result tables (Parquet by default; CSV/JSON by configuration)
    metrics.json       per-step timings and row counts from inside the kernel
    manifest.json      parameters, sources, input hashes, versions, status, error

Everything is built in a hidden ``.<run_id>.partial`` folder and renamed into place at the end, so
a folder under a run id is always complete (its manifest says whether the run succeeded).
"""

from __future__ import annotations

import atexit
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

from wfo_kit import errors
from wfo_kit.config import ResolvedConfig, externalize_secrets, mask_secrets
from wfo_kit.errors import (
    ConfigurationError,
    ExecutionError,
    InfrastructureError,
    NotebookExecutionError,
    WfoError,
)
from wfo_kit.io import atomic_path, write_json, write_text
from wfo_kit.observers import JsonlLog, TerminalProgress, console_log, follow
from wfo_kit.pipeline import check_step_names

TEMPLATES = Path(__file__).parent / "templates"
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


def notebook_path(name: str = "valuation.ipynb") -> Path:
    """The bundled notebook: inside the installed package, or the repository's notebooks/."""
    for candidate in (
        Path(__file__).parent / "notebooks" / name,
        Path(__file__).resolve().parent.parent / "notebooks" / name,
    ):
        if candidate.is_file():
            return candidate
    msg = f"notebook {name} not found beside the wfo_kit package"
    raise ConfigurationError(msg, hint="reinstall wfo_kit")


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


@functools.lru_cache(maxsize=8)
def _check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as exc:
        msg = f"Jupyter kernel {name!r} is not installed"
        hint = f"run `make run` once, or `python -m ipykernel install --sys-prefix --name {name}`"
        raise ConfigurationError(msg, hint=hint) from exc


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
    _check_kernel(config.report.kernel)
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
                _execute(
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


def notebook_parameters(
    config: Any, run_dir: Path, run_id: str = "", sources: dict[str, str] | None = None
) -> dict[str, Any]:
    """Papermill parameters: one dict per configuration section, the run folder, id, sources."""
    return {
        **config.model_dump(mode="json"),
        "run_dir": str(run_dir),
        "run_id": run_id,
        "sources": dict(sources or {}),
    }


def _ipc_kernel_manager() -> type:
    """A kernel manager on Unix-domain sockets instead of TCP ports.

    Why: TCP kernels pick free ports by probing, which races when several run at once (ZMQ
    "Address already in use", papermill issues 511 and 239), and jupyter_client now warns that
    they are unencrypted. IPC sockets live in the temp folder and are removed at shutdown.
    """
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)
            self.ip = str(Path(tempfile.gettempdir()) / f"wfo-kernel-{uuid.uuid4().hex[:12]}")

    return IPCKernelManager


# Warm kernels, kept between runs in one process (a batch worker): starting a kernel and
# importing Polars, Pandera and Plotly in it costs ~2 s a report; a reused kernel pays it once.
# Each run starts from an empty namespace (%reset -f); a kernel that failed is never reused.
_WARM: dict[str, list[Any]] = {}
_WARM_LOCK = threading.Lock()
MAX_KERNEL_REUSE = 25


def _take_kernel(name: str) -> Any:
    from jupyter_client.blocking import BlockingKernelClient
    from jupyter_client.utils import run_sync

    with _WARM_LOCK:
        pool = _WARM.get(name) or []
        km = pool.pop() if pool else None
    if km is not None and not run_sync(km.is_alive)():
        km = None
    if km is None:
        km = _ipc_kernel_manager()(kernel_name=name)
        run_sync(km.start_kernel)()
        km.wfo_runs = 0
        return km
    client = BlockingKernelClient()
    client.load_connection_info(km.get_connection_info())
    client.start_channels()
    try:
        client.execute_interactive("%reset -f", timeout=30, store_history=False)
    finally:
        client.stop_channels()
    return km


# Imports, plus one small valuation of the bundled sample: first calls (Pandera building its
# schemas, Plotly loading its templates) cost more than the imports themselves.
PRELOAD = """
import polars, pandera.polars, plotly.graph_objects, scipy.stats
import wfo_kit.charts, wfo_kit.display, wfo_kit.summary
from wfo_kit.config import load_config as _load
from wfo_kit.pipeline import RunContext as _Ctx, run_pipeline as _run
_ctx = _run(_Ctx(_load()), ["load", "validate", "value"])
wfo_kit.charts.value_per_share_bars(_ctx["valuations"], _ctx["companies"]).to_json()
del _load, _Ctx, _run, _ctx
"""


def prewarm_kernel(name: str = "wfo_kit") -> None:
    """Start a kernel with the report's modules imported and keep it for the next run.

    Batch workers call this as they start, so their first report does not pay kernel start-up
    and imports either.
    """
    import papermill  # noqa: F401 - imported now, not during the first run
    from jupyter_client.blocking import BlockingKernelClient

    _exporter()
    km = _take_kernel(name)
    client = BlockingKernelClient()
    client.load_connection_info(km.get_connection_info())
    client.start_channels()
    try:
        client.execute_interactive(PRELOAD, timeout=120, store_history=False)
    finally:
        client.stop_channels()
    km.wfo_runs -= 1  # warming is not a run
    _give_back_kernel(name, km, healthy=True)


def _give_back_kernel(name: str, km: Any, *, healthy: bool) -> None:
    from jupyter_client.utils import run_sync

    km.wfo_runs += 1
    if healthy and km.wfo_runs < MAX_KERNEL_REUSE:
        with _WARM_LOCK:
            _WARM.setdefault(name, []).append(km)
        return
    with contextlib.suppress(Exception):
        run_sync(km.shutdown_kernel)(now=True)


@atexit.register
def _shutdown_warm_kernels() -> None:
    from jupyter_client.utils import run_sync

    with _WARM_LOCK:
        kernels = [km for pool in _WARM.values() for km in pool]
        _WARM.clear()
    for km in kernels:
        with contextlib.suppress(Exception):
            run_sync(km.shutdown_kernel)(now=True)


def _execute(
    config: Any,
    executed: Path,
    run_dir: Path,
    *,
    run_id: str = "",
    sources: dict[str, str] | None = None,
    reuse_kernel: bool = False,
) -> None:
    template = Path(config.report.notebook) if config.report.notebook else notebook_path()
    if not reuse_kernel:
        _papermill(
            config,
            template,
            executed,
            run_dir,
            run_id,
            sources,
            kernel_manager_class=_ipc_kernel_manager(),
        )
        return
    km = _take_kernel(config.report.kernel)
    healthy = False
    try:
        _papermill(config, template, executed, run_dir, run_id, sources, km=km)
        healthy = True
    except NotebookExecutionError as exc:
        # A cell that raised leaves a sound kernel; a timeout or a dead kernel does not.
        healthy = "cell_index" in (exc.details or {}) and "exec_count" in (exc.details or {})
        raise
    finally:
        _give_back_kernel(config.report.kernel, km, healthy=healthy)


SAVE_INTERVAL_SECONDS = 3.0


@functools.lru_cache(maxsize=1)
def _engine_name() -> str:
    """Register (once) a papermill engine whose intermediate saves are throttled.

    Papermill rewrites the whole output notebook at the start and end of every cell (40 writes
    for our report, ~1.2 s measured); this engine writes at most every few seconds while cells
    run. The final write, which papermill makes in a `finally` also after a failed cell, a
    timeout or a dead kernel, is never skipped, so the stopped cell is always on disk.
    """
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    class ThrottledSaves(NotebookExecutionManager):
        def save(self, **kwargs: Any) -> None:
            finished = self.end_time is not None
            recent = (
                self.last_save_time is not None
                and (self.now() - self.last_save_time).total_seconds() < SAVE_INTERVAL_SECONDS
            )
            if finished or not recent:
                super().save(**kwargs)

    class WfoEngine(NBClientEngine):
        @classmethod
        def execute_notebook(
            cls,
            nb: Any,
            kernel_name: Any,
            output_path: Any = None,
            progress_bar: bool = True,  # noqa: FBT001, FBT002 - papermill's signature
            log_output: bool = False,  # noqa: FBT001, FBT002
            autosave_cell_every: int = 30,
            **kwargs: Any,
        ) -> Any:
            nb_man = ThrottledSaves(
                nb,
                output_path=output_path,
                progress_bar=progress_bar,
                log_output=log_output,
                autosave_cell_every=autosave_cell_every,
            )
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: Any, **kwargs: Any) -> Any:
            # As NBClientEngine does, but the kernel client's channels are always closed at the
            # end: with a reused (not owned) kernel, nbclient leaves them open (14 file
            # descriptors and a thread per report, measured), while its own cleanup option would
            # shut the warm kernel down.
            import inspect

            from jupyter_client.utils import run_sync
            from papermill.clientwrap import PapermillNotebookClient
            from papermill.engines import logger
            from papermill.utils import merge_kwargs, remove_args

            execution_timeout = kwargs.pop("execution_timeout", None)
            start_timeout = kwargs.pop("start_timeout", 60)
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(
                kwargs,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
            )
            client = PapermillNotebookClient(nb_man, **final)
            try:
                return client.execute()
            finally:
                kc = getattr(client, "kc", None)
                if kc is not None and not client.owns_km:
                    stopped = kc.stop_channels()
                    if inspect.isawaitable(stopped):
                        run_sync(lambda: stopped)()
                    client.kc = None

    papermill_engines.register("wfo", WfoEngine)
    return "wfo"


def _papermill(
    config: Any,
    template: Path,
    executed: Path,
    run_dir: Path,
    run_id: str,
    sources: dict[str, str] | None,
    **kernel: Any,
) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        # No `cwd`: papermill changes the process's working directory for it, which is not
        # thread-safe (a Dask worker runs tasks in threads). The notebook uses absolute paths.
        papermill.execute_notebook(
            str(template),
            str(executed),
            parameters=notebook_parameters(config, run_dir, run_id, sources),
            kernel_name=config.report.kernel,
            engine_name=_engine_name(),
            progress_bar=False,
            execution_timeout=config.report.cell_timeout,
            # jupyter_client otherwise waits up to 5 s for a kernel that ignores shutdown.
            shutdown_kernel="immediate",
            **kernel,
        )
    except PapermillExecutionError as exc:
        msg = f"notebook cell {exc.exec_count} raised {exc.ename}: {exc.evalue}"
        error = NotebookExecutionError(
            msg,
            step="report",
            details={
                "cell_index": exc.cell_index,
                "exec_count": exc.exec_count,
                "ename": exc.ename,
                "evalue": exc.evalue,
            },
        )
        # A wfo_kit error raised inside the kernel keeps its meaning: bad input still exits 2.
        inner = getattr(errors, exc.ename, None)
        if isinstance(inner, type) and issubclass(inner, errors.WfoError):
            error.exit_code = inner.exit_code
        raise error from exc
    except Exception as exc:
        # A dead kernel, a cell timeout or a kernel that never started: papermill writes no
        # error banner for these, so we record them ourselves.
        text = " ".join(str(exc).split())
        msg = f"notebook execution stopped: {type(exc).__name__}: {text}"
        cell = mark_stopped_cell(executed, ename=type(exc).__name__, evalue=text)
        raise NotebookExecutionError(
            msg,
            step="report",
            details={"ename": type(exc).__name__, "evalue": text, "cell_index": cell},
        ) from exc


def mark_stopped_cell(executed: Path, *, ename: str, evalue: str) -> int | None:
    """Mark the cell that was running when execution stopped, as papermill does for errors.

    Papermill leaves a timed-out cell marked completed and a dead kernel's cell unmarked; this
    finds the last cell that started, flags it and adds an error output, so the notebook and the
    HTML show where the run stopped. Returns its index (None if no notebook was written).
    """
    import nbformat

    if not Path(executed).is_file():
        return None
    nb = nbformat.read(str(executed), as_version=4)
    started = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    if not started:
        return None
    index = started[-1]
    cell = nb.cells[index]
    cell.metadata.setdefault("papermill", {})["exception"] = True
    cell.metadata["papermill"]["status"] = "failed"
    if cell.cell_type == "code":
        cell.outputs.append(
            nbformat.v4.new_output(
                "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
            )
        )
    with atomic_path(Path(executed)) as tmp:
        nbformat.write(nb, str(tmp))
    return index


@functools.lru_cache(maxsize=1)
def _exporter() -> Any:
    # Building the exporter loads and compiles the templates: once per process, not per report.
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="wfo_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    import plotly.offline

    return plotly.offline.get_plotlyjs()


def export_html(notebook: Path, target: Path, *, failed: WfoError | None = None) -> Path:
    """Publish an executed notebook as self-contained HTML (atomic write).

    plotly.js is embedded once, in the page head, only if the notebook has a chart. A run that
    stopped before papermill wrote the notebook still gets a page saying why.
    """
    import nbformat

    if Path(notebook).is_file():
        nb = nbformat.read(str(notebook), as_version=4)
    else:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("The notebook did not start.")]
    nb.metadata["wfo"] = {
        "status": "failed" if failed else "succeeded",
        "error": failed.one_line() if failed else "",
    }
    has_chart = any(
        "Plotly.newPlot" in "".join(out.get("data", {}).get("text/html", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    resources = {"wfo_plotly_js": _plotly_js() if has_chart else ""}
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return write_text(target, body)


def publish_history(output_root: Path, *, kernel: str = "wfo_kit") -> Path:
    """Execute notebooks/history.ipynb over ``output_root`` and publish it as history.html."""
    import tempfile

    import papermill

    root = Path(output_root).resolve()
    _check_kernel(kernel)
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / "history.ipynb"
        try:
            papermill.execute_notebook(
                str(notebook_path("history.ipynb")),
                str(executed),
                parameters={"output_root": str(root)},
                kernel_name=kernel,
                progress_bar=False,
                shutdown_kernel="immediate",
                kernel_manager_class=_ipc_kernel_manager(),
            )
        except Exception as exc:
            msg = (
                f"history notebook failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            )
            raise NotebookExecutionError(msg, step="report") from exc
        return export_html(executed, root / "history.html")


def _peak_rss_mb(pid: int | str = "self") -> float | None:
    """A process's peak resident memory (VmHWM), in MiB; None where /proc is not available."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


def memory_report() -> dict[str, float | None]:
    """Peak memory of this process and of its warm kernels (for batch statistics)."""
    kernels = []
    with _WARM_LOCK:
        pool = [km for kms in _WARM.values() for km in kms]
    for km in pool:
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None:
            kernels.append(_peak_rss_mb(process.pid))
    values = [k for k in kernels if k is not None]
    return {"worker_peak_mb": _peak_rss_mb(), "kernel_peak_mb": max(values) if values else None}
