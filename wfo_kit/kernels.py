"""Notebook execution: Papermill on warm Jupyter kernels.

Starting a kernel and importing Polars, Pandera and Plotly in it costs ~2 s a report; a batch
worker keeps its kernels warm between runs (each run starts from an empty namespace, a kernel that
failed is never reused). Kernels talk over Unix-domain sockets, so parallel runs never race for TCP
ports, and a throttled Papermill engine saves the notebook at most every few seconds while cells
run (always at the end, also after a failure), so the stopped cell is always on disk.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wfo_kit import errors
from wfo_kit.errors import ConfigurationError, NotebookExecutionError
from wfo_kit.io import atomic_path
from wfo_kit.publish import html_exporter, notebook_path
from wfo_kit.stopping import HeldSignals


@functools.lru_cache(maxsize=8)
def check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as exc:
        msg = f"Jupyter kernel {name!r} is not installed"
        hint = f"run `make run` once, or `python -m ipykernel install --sys-prefix --name {name}`"
        raise ConfigurationError(msg, hint=hint) from exc


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


def check_notebook(path: Path) -> None:
    """Refuse a report notebook that is not a readable Jupyter notebook, before anything runs.

    The error names the file and why, never its content (a parameters file pointing
    ``report.notebook`` at another file must not copy that file into a message or a log).
    """
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except OSError as exc:
        msg = f"report.notebook {path} cannot be read: {exc.strerror or type(exc).__name__}"
        raise ConfigurationError(msg, column="report.notebook") from None
    except Exception as exc:  # NotJSONError, a bad schema, ...: say what, not the content
        msg = f"report.notebook {path} is not a Jupyter notebook ({type(exc).__name__})"
        raise ConfigurationError(msg, column="report.notebook") from None
    if not isinstance(nb.get("cells"), list):
        msg = f"report.notebook {path} is not a Jupyter notebook (no cells)"
        raise ConfigurationError(msg, column="report.notebook")


def skip_unused_imports() -> None:
    """For a process of wfo's own (the ``wfo`` command, a batch worker), never the library's.

    nbformat validates notebooks with jsonschema, whose optional "iri" format check imports
    rfc3987-syntax, which builds a Lark grammar as it is imported: 1.3 s of CPU in every process
    that imports Papermill or nbconvert (measured with ``python -X importtime``). No schema
    wfo_kit or nbformat checks uses that format; jsonschema leaves the check out when the import
    fails, as it does when the package is not installed.
    """
    import sys

    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def ipc_kernel_manager() -> type:
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
            self.client_factory = _ready_client_class()

    return IPCKernelManager


@functools.lru_cache(maxsize=1)
def _ready_client_class() -> type:
    """The kernel client of our kernels, readied without the closing 0.2 s of silence.

    jupyter_client's ``wait_for_ready`` ends by reading IOPub until nothing arrives for 0.2 s:
    every report (warm kernel or cold; nbclient waits for each run's new client) waited that
    long, idle, before its first cell (0.2 s of a 0.9 s warm report, measured). This client is
    ready, as ``wait_for_ready`` is up to that flush, once the kernel has answered a kernel_info
    request on the shell channel and a message has come on IOPub: both channels are connected.
    What is left on IOPub (the request's idle status) is never read as a cell's: nbclient reads
    only a cell's own messages, by parent id.
    """
    from jupyter_client.asynchronous import AsyncKernelClient

    class ReadyKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            await _until_ready(self, timeout=float("inf") if timeout is None else timeout)

        def start_channels(self, *args: Any, **kwargs: Any) -> None:
            with HeldSignals():  # as in _quick_client: never a channel set half started
                super().start_channels(*args, **kwargs)

        def stop_channels(self) -> None:  # nbclient's own clean-up too (kernels it owns)
            close_client(self, stop=super().stop_channels)

    return ReadyKernelClient


# Warm kernels, kept between runs in one process (a batch worker): starting a kernel and
# importing Polars, Pandera and Plotly in it costs ~2 s a report; a reused kernel pays it once.
# Each run starts from an empty namespace (%reset -f); a kernel that failed is never reused.
_WARM: dict[str, list[Any]] = {}
_WARM_LOCK = threading.Lock()
#: Kernels started and reused by this process (runs record theirs; metrics export them).
KERNEL_COUNTS = {"starts": 0, "reuses": 0}
MAX_KERNEL_REUSE = 25


#: Our kernels keep no IPython history: a headless run never reads it, and two warm kernels
#: writing ~/.ipython's history.sqlite each report (a thread, a lock) only cost CPU.
KERNEL_ARGUMENTS = ["--HistoryManager.enabled=False"]


def _take_kernel(name: str) -> Any:
    from jupyter_client.utils import run_sync

    with _WARM_LOCK:
        pool = _WARM.get(name) or []
        km = pool.pop() if pool else None
    if km is not None and not run_sync(km.is_alive)():
        km = None
    if km is None:
        km = ipc_kernel_manager()(kernel_name=name)
        try:
            # Held: a stop between the launch and the manager knowing the process would leave a
            # kernel no one can shut down. Delivered once it is started, then shut down here.
            with HeldSignals():
                run_sync(km.start_kernel)(extra_arguments=KERNEL_ARGUMENTS)
        except BaseException:  # stopped or failed while starting: no kernel left over
            _discard_kernel(km)
            raise
        km.wfo_runs = 0
        KERNEL_COUNTS["starts"] += 1
        return km
    if getattr(km, "wfo_fresh", False):  # started for this run (start_kernel_early): no reset
        km.wfo_fresh = False
        client, asked = km.wfo_early
        # The run would wait for these imports anyway (its cells queue behind them); a slow or
        # failed import shows in the run itself.
        with contextlib.suppress(Exception):
            _await_reply(client, asked, timeout=120)
        close_client(client)
        KERNEL_COUNTS["starts"] += 1
        return km
    run_code(km, RESET, timeout=30)
    KERNEL_COUNTS["reuses"] += 1
    return km


# %reset ends in a full garbage collection, which scans every object of the imported libraries
# (about 1 s per report here). Freezing what is alive after it (gc.freeze) leaves the next reset
# only what the last report allocated: about 0.02 s. No name is bound in the emptied namespace.
RESET = "%reset -f\n__import__('gc').freeze()"


def _await_reply(client: Any, asked: str, *, timeout: float) -> None:
    """Wait for the kernel's reply to request ``asked`` (not another client's)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            msg = f"no reply from the kernel in {timeout} s"
            raise TimeoutError(msg)
        reply = client.get_shell_msg(timeout=left)
        if reply["parent_header"].get("msg_id") == asked:
            return


#: How long closing a kernel client may take before it is left to the process's exit.
CLOSE_CLIENT_SECONDS = 5.0


def close_client(
    kc: Any, *, within: float = CLOSE_CLIENT_SECONDS, stop: Callable[[], Any] | None = None
) -> None:
    """Stop a kernel client's channels, waiting ``within`` seconds at most.

    Why: when a stop (SIGTERM, Ctrl-C) lands inside an exchange with a kernel, ``stop_channels``
    can block for ever in zmq's context termination. Seen: a batch worker stopped by its pool
    hung in ``Context.term`` and the whole batch with it (jupyter_client issue 771 reports the
    same hang). The channels are stopped in a daemon thread; one still blocked after ``within``
    is left behind, and the process's exit does not wait for it. ``stop``: the closing call
    (``kc.stop_channels`` by default; our client's own override passes its parent's).
    """
    import inspect

    from jupyter_client.utils import run_sync

    def close() -> None:
        stopped = (stop or kc.stop_channels)()
        if inspect.isawaitable(stopped):
            run_sync(lambda: stopped)()

    _within(within, close, keep=kc)


def _within(seconds: float, action: Callable[[], Any], *, keep: Any) -> None:
    """``action`` in a daemon thread, waited for ``seconds`` at most; its errors are dropped.

    ``keep`` (what the action closes) stays referenced while the action is still blocked: were
    it collected, its ``__del__`` would try the same close, and hang, wherever that happened.
    """

    def run() -> None:
        with contextlib.suppress(Exception):
            action()

    closing = threading.Thread(target=run, name="wfo-close-kernel-resources", daemon=True)
    closing.start()
    closing.join(seconds)
    if closing.is_alive():
        _UNCLOSED_CLIENTS.append(keep)


_UNCLOSED_CLIENTS: list[Any] = []  # what a close left blocked (see _within)


def _quick_client(km: Any) -> Any:
    """A client of ``km``'s for a short exchange (a reset, a warm-up, early imports).

    It opens no heartbeat channel: that channel's thread creates its socket after
    start_channels returns, and a client closed a few milliseconds later (a reset takes ~20 ms)
    could close the context under it; the thread then died with a traceback in the worker's log
    ("Too many open files" from zmq, seen once in the suite). The run's own nbclient client
    watches the kernel's liveness.
    """
    from jupyter_client.blocking import BlockingKernelClient

    with HeldSignals():  # a stop inside start_channels left a context whose close hung for ever
        client = BlockingKernelClient()
        client.load_connection_info(km.get_connection_info())
        client.start_channels(hb=False)
    return client


def run_code(km: Any, code: str, *, timeout: float) -> None:
    """Execute ``code`` on a running kernel through a client of its own, closed afterwards.

    Used to give a reused kernel an empty namespace (``%reset -f``, about 20 ms). A stop is held
    until it is done: one that landed inside the exchange left a zmq context whose termination
    hung for ever, later, wherever Python collected it (seen in a batch worker stopped by its
    pool).
    """
    with HeldSignals():
        client = _quick_client(km)
        try:
            client.execute_interactive(code, timeout=timeout, store_history=False)
        finally:
            close_client(client)


# Imports, plus one small valuation of the bundled sample: first calls (Pandera building its
# schemas, Plotly loading its templates) cost more than the imports themselves. No scipy.stats:
# the Monte Carlo's shocks come from the step cache once any run has stored them (see
# risk.simulation_shocks); a kernel imports it only to draw shocks not stored yet.
PRELOAD = """
import polars, pandera.polars, plotly.graph_objects
import wfo_kit.charts, wfo_kit.display, wfo_kit.summary
from wfo_kit.config import load_config as _load
from wfo_kit.pipeline import RunContext as _Ctx, run_pipeline as _run
_ctx = _run(_Ctx(_load()), ["load", "validate", "value"])
_fig = wfo_kit.charts.value_per_share_bars(_ctx["valuations"], _ctx["companies"])
wfo_kit.display.figure_bundle(_fig)
del _load, _Ctx, _run, _ctx, _fig
__import__("gc").collect()
__import__("gc").freeze()  # the libraries are for keeps: later resets need not scan them
"""


# What a run's first cell imports anyway; a kernel started early imports it while the caller
# is still busy. Names are not bound: the notebook starts from an empty namespace.
EARLY_MODULES = (
    "polars",
    "pandera.polars",
    "wfo_kit.pipeline",
    "wfo_kit.charts",
    "wfo_kit.display",
    "wfo_kit.summary",
)


def _imports(modules: tuple[str, ...]) -> str:
    """Code that imports ``modules`` and binds no name."""
    return f"for _m in {modules!r}: __import__('importlib').import_module(_m)\ndel _m"


def import_early(name: str, modules: tuple[str, ...]) -> None:
    """Have the kernel started early (:func:`start_kernel_early`) import ``modules`` too, after
    its first imports; nothing when no such kernel is waiting. ``wfo run`` asks for scipy.stats
    when the Monte Carlo's shocks are not in the step cache (the run then draws them)."""
    with _WARM_LOCK:
        early = [km for km in _WARM.get(name, []) if getattr(km, "wfo_fresh", False)]
    for km in early:
        client, _ = km.wfo_early
        with contextlib.suppress(Exception):  # best effort, as the start itself
            km.wfo_early = (client, client.execute(_imports(modules), silent=True))


def start_kernel_early(name: str = "wfo_kit") -> None:
    """Start the next run's kernel now and have it import the report's libraries, not waiting.

    ``wfo run`` calls this as soon as its configuration is read: the kernel starts and imports
    (about 2 s) while the command imports Papermill and nbconvert and hashes the inputs, instead
    of after. The run then takes this kernel (``reuse_kernel=True``), with no reset; its requests
    queue behind the imports on the kernel's shell channel. A process that has a warm kernel
    already starts none. Best effort: any failure here leaves the run to start its kernel as
    usual and to report a real problem itself.
    """
    with _WARM_LOCK:
        if _WARM.get(name):
            return  # a kernel is warm already: the run takes that one
    try:
        check_kernel(name)
        km = _take_kernel(name)
        client = _quick_client(km)
        asked = client.execute(_imports(EARLY_MODULES), silent=True, store_history=False)
    except Exception:  # see the docstring: best effort
        return
    # The client stays open until the run takes the kernel, which waits for the reply: closing
    # it sooner drops a request the kernel, still starting, has not read (linger=0).
    km.wfo_early = (client, asked)
    km.wfo_fresh = True
    KERNEL_COUNTS["starts"] -= 1  # counted again when the run takes it
    km.wfo_runs -= 1  # starting is not a run
    _give_back_kernel(name, km, healthy=True)


def prewarm_kernel(name: str = "wfo_kit") -> None:
    """Start a kernel with the report's modules imported and keep it for the next run.

    Batch workers call this as they start, so their first report does not pay kernel start-up
    and imports either. The kernel imports while this process imports Papermill and builds its
    HTML exporter (both about 2 s, measured): the two overlap instead of adding up.
    """
    km = _take_kernel(name)
    client = None
    try:
        client = _quick_client(km)
        asked = client.execute(PRELOAD, store_history=False)
        import papermill  # noqa: F401 - imported now, not during the first run

        html_exporter()
        _await_reply(client, asked, timeout=120)
        close_client(client)
        km.wfo_runs -= 1  # warming is not a run
        _give_back_kernel(name, km, healthy=True)
    except BaseException:  # stopped or failed while warming: the kernel is shut down, not kept
        if client is not None:
            close_client(client)
        _discard_kernel(km)  # kept already (a stop at the very end) or not: shut down
        raise


def _give_back_kernel(name: str, km: Any, *, healthy: bool) -> None:

    km.wfo_runs += 1
    if healthy and km.wfo_runs < MAX_KERNEL_REUSE:
        with _WARM_LOCK:
            if not _WARM:  # the first kernel kept: shut the pool down when the process exits
                atexit.register(shutdown_warm_kernels)
            _WARM.setdefault(name, []).append(km)
        return
    _close_early_client(km)
    _discard_kernel(km)


def shutdown_warm_kernels() -> None:
    with _WARM_LOCK:
        kernels = [km for pool in _WARM.values() for km in pool]
        _WARM.clear()
    for km in kernels:
        _close_early_client(km)
        _discard_kernel(km)


def _discard_kernel(km: Any) -> None:
    """Shut a kernel down; kill its process when its manager cannot.

    A manager whose start was stopped midway (SIGTERM in a warming batch worker) fails its own
    shutdown (an asyncio InvalidStateError, seen): the kernel it had launched would live on
    until it noticed that its parent had gone.
    """
    from jupyter_client.utils import run_sync

    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:
        process = getattr(getattr(km, "provisioner", None), "process", None)
        with contextlib.suppress(Exception):
            # Launched in a session of its own: its process group is the kernel and whatever
            # it started. Never this process's own group.
            if os.getpgid(process.pid) == process.pid != os.getpgid(0):
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait(timeout=10)
        for cleanup in (km.cleanup_connection_file, km.cleanup_ipc_files, km._close_control_socket):
            with contextlib.suppress(Exception):
                cleanup()
        if getattr(km, "_created_context", False):  # its zmq context, as its shutdown would
            _within(CLOSE_CLIENT_SECONDS, lambda: km.context.destroy(linger=0), keep=km.context)


def _close_early_client(km: Any) -> None:
    """Close the client of a kernel started early that no run took (its sockets, its fds)."""
    early = getattr(km, "wfo_early", None)
    if early is not None and getattr(km, "wfo_fresh", False):
        km.wfo_fresh = False
        close_client(early[0])  # never raises: a failed close is a closed client here


def execute_notebook(
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
        KERNEL_COUNTS["starts"] += 1
        _papermill(
            config,
            template,
            executed,
            run_dir,
            run_id,
            sources,
            kernel_manager_class=ipc_kernel_manager(),
            extra_arguments=KERNEL_ARGUMENTS,
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
                    close_client(kc)
                    client.kc = None

    papermill_engines.register("wfo", WfoEngine)
    return "wfo"


async def _until_ready(kc: Any, *, timeout: float) -> None:
    """Ask kernel_info until its reply has come on shell and a message on IOPub."""
    from queue import Empty

    from nbclient.util import ensure_async

    deadline = time.monotonic() + timeout
    while True:
        asked = kc.kernel_info()
        try:
            while True:
                reply = await ensure_async(kc.shell_channel.get_msg(timeout=1))
                if reply["parent_header"].get("msg_id") == asked:
                    break
            # Any IOPub message proves that channel connected (a SUB socket misses what is
            # published before it has): the request's own busy status, or an older message.
            # None within 0.2 s (wait_for_ready's own wait): ask again.
            await ensure_async(kc.iopub_channel.get_msg(timeout=0.2))
        except Empty:
            pass
        else:
            kc._handle_kernel_info_reply(reply)
            return
        if not await ensure_async(kc.is_alive()):
            msg = "Kernel died before replying to kernel_info"
            raise RuntimeError(msg)
        if time.monotonic() > deadline:
            msg = f"Kernel didn't respond in {timeout} seconds"
            raise RuntimeError(msg)


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
        msg = f"notebook cell {exc.exec_count} raised {exc.ename}: {_short(exc.evalue)}"
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
        raise _stopped_error(exc, executed, timeout=config.report.cell_timeout) from exc


MAX_MESSAGE = 300


def _short(text: str, limit: int = MAX_MESSAGE) -> str:
    """One line of at most ``limit`` characters; the whole text stays in the error's details."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _stopped_error(exc: Exception, executed: Path, *, timeout: int) -> errors.WfoError:
    """A dead kernel, a cell timeout, a kernel that never started, or a disk that failed.

    Papermill writes no error banner for these, so the cell that was running is marked here.
    The CLI line stays short; the exception's full text goes to the run's log and manifest.
    """
    ename = type(exc).__name__
    text = " ".join(str(exc).split())
    cell = mark_stopped_cell(executed, ename=ename, evalue=text)
    at = f"at cell {cell}" if cell is not None else "before the first cell"
    where = f"cell {cell}" if cell is not None else "start-up"
    details = {"ename": ename, "evalue": text, "cell_index": cell}
    if ename == "CellTimeoutError":  # checked first: nbclient derives it from TimeoutError
        msg = (
            f"notebook execution stopped: {where} ran longer than report.cell_timeout "
            f"({timeout} s) ({ename})"
        )
        return errors.StepTimeoutError(msg, step="report", details=details)
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
        msg = f"notebook execution stopped {at}: {exc.strerror or _short(text)}"
        return errors.InfrastructureError(msg, step="report", details=details)
    if ename == "DeadKernelError":
        msg = f"notebook execution stopped: the kernel died during {where} ({ename})"
        return NotebookExecutionError(msg, step="report", details=details)
    msg = f"notebook execution stopped {at}: {ename}: {_short(text)}"
    return NotebookExecutionError(msg, step="report", details=details)


def mark_stopped_cell(executed: Path, *, ename: str, evalue: str) -> int | None:
    """Mark the cell that was running when execution stopped, as papermill does for errors.

    Papermill leaves a timed-out cell marked completed and a dead kernel's cell unmarked; this
    finds the last cell that started, flags it and adds an error output, so the notebook and the
    HTML show where the run stopped. Returns its index (None if no notebook was written).
    """
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # missing, or cut short by a full disk: nothing to mark
        return None
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
    try:
        with atomic_path(Path(executed)) as tmp:
            nbformat.write(nb, str(tmp))
    except errors.InfrastructureError:
        return None  # the disk refuses the write; the notebook keeps papermill's last save
    return index


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
