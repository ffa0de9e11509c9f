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
import errno
import functools
import getpass
import hashlib
import json
import os
import platform
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from wfo_kit.config import (
    ResolvedConfig,
    TableSource,
    externalize_secrets,
    is_http,
    mask_secrets,
)
from wfo_kit.errors import (
    ConfigurationError,
    DataError,
    ExecutionError,
    InfrastructureError,
    WfoError,
)
from wfo_kit.io import write_frame, write_json, write_text
from wfo_kit.kernels import check_kernel, check_notebook, execute_notebook
from wfo_kit.notify import check_confined_channels
from wfo_kit.observers import JsonlLog, TerminalProgress, console_log, follow
from wfo_kit.pipeline import check_step_names
from wfo_kit.publish import export_html
from wfo_kit.stopping import HeldSignals

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
    error: WfoError | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hashes(
    resolved: ResolvedConfig, fetched: dict[str, Any] | None = None
) -> dict[str, str | None]:
    """SHA-256 of every input source, fallbacks included (``peers.fallback``).

    A file is hashed whole; a SQL source by its database file (with SQLite's and DuckDB's
    write-ahead logs, which hold committed rows not yet in the main file) and its table or query,
    so that a changed table changes the run's content hash and a batch never skips a run with
    stale numbers. What a run actually read is hashed again inside the run (``inputs_read`` in its
    manifest). None: the source does not exist (the run then fails on it with the reason).
    """
    hashes: dict[str, str | None] = {}
    config = resolved.config
    for name, source in config.data:
        node, key = source, name
        while node is not None:
            if node.url is not None and is_http(node.url):
                # An HTTP source is hashed by its response (every page), fetched once per run.
                got = (fetched or {}).get(key) or _fetch(node, key, config)
                hashes[key] = got.sha256
            else:
                hashes[key] = source_sha256(node)
            node, key = node.fallback, f"{key}.fallback"
    return hashes


def _fetch(source: TableSource, table: str, config: Any) -> Any:
    from wfo_kit.httpsource import fetch_retrying

    policy = config.pipeline.step_retry.get("load", config.pipeline.retry)
    return fetch_retrying(source, table=table, policy=policy, security=config.security)


def fetch_http_sources(config: Any) -> dict[str, Any]:
    """Each top-level HTTP source fetched once (with the load step's retry policy)."""
    return {
        name: _fetch(source, name, config)
        for name, source in config.data
        if source is not None and source.url is not None and is_http(source.url)
    }


def snapshot_http_sources(config: Any, fetched: dict[str, Any], folder: Path) -> Any:
    """Write each fetched HTTP table to ``folder/inputs/<table>.parquet`` and return the config
    with those files in place of the URLs: the kernel values exactly what was hashed into the run
    id, and the run folder keeps it."""
    if not fetched:
        return config
    replaced = {}
    for name, got in fetched.items():
        target = folder / "inputs" / f"{name}.parquet"
        try:
            write_frame(got.frame, target)  # atomic: a full disk leaves no half-written snapshot
        except InfrastructureError as exc:
            msg = f"data.{name}: the HTTP response could not be saved in the run: {exc.message}"
            raise InfrastructureError(msg, step="load", table=name, hint=exc.hint) from exc
        fallback = getattr(config.data, name).fallback
        replaced[name] = TableSource(path=str(target), fallback=fallback)
    return config.model_copy(update={"data": config.data.model_copy(update=replaced)})


def source_sha256(
    source: TableSource, *, file_hash: Callable[[Path], str] = file_sha256
) -> str | None:
    """The SHA-256 of one input source (see :func:`input_hashes`): the file, or the database
    file with its write-ahead log, and the table or query. None: the source is not there.
    ``file_hash`` hashes one file (the step cache passes one that remembers its digests)."""
    if source.path is not None:
        path = Path(source.path)
        return file_hash(path) if path.is_file() else None
    database = Path((source.url or "").partition(":///")[2])
    if not database.is_file():
        return None
    digest = hashlib.sha256()
    for part in (database, Path(f"{database}-wal"), Path(f"{database}.wal")):
        if part.is_file():
            digest.update(file_hash(part).encode())
    digest.update(f"\0{source.table}\0{source.query}".encode())
    return digest.hexdigest()


def content_hash(resolved: ResolvedConfig, hashes: dict[str, str | None]) -> str:
    """12 hex digits that change with the configuration, the inputs, the notebook or the version.

    Two runs with the same content hash compute the same numbers; batches use it to skip work
    that already succeeded.
    """
    from wfo_kit import __version__
    from wfo_kit.publish import notebook_path

    config = resolved.config
    notebook = Path(config.report.notebook) if config.report.notebook else notebook_path()
    payload = json.dumps(
        {
            # The step cache changes how fast a run is, never its numbers.
            "config": config.model_dump(mode="json", exclude={"cache"}),
            "inputs": hashes,
            "notebook": file_sha256(notebook) if notebook.is_file() else None,
            "version": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def make_run_id(prefix: str) -> str:
    """``<prefix>-<6 random hex digits>``: unique per invocation, also for two identical runs
    started in the same second (the run folder is then claimed atomically, see
    :func:`claim_run_folder`)."""
    return f"{prefix}-{secrets.token_hex(3)}"


def default_run_prefix(content: str, *, label: str = "run") -> str:
    """``<UTC time>-<label>-<content hash, 8 digits>``, the one scheme of ``wfo run`` and
    ``wfo batch`` (with :func:`make_run_id`'s random suffix): run folders sort by time, say which
    parameters file they ran (``label``, its stem) and group by content.

    Examples
    --------
    >>> default_run_prefix("0d1ae7d3ffff", label="bear")[15:]
    '-bear-0d1ae7d3'
    """
    return f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{run_label(label)}-{content[:8]}"


def renewed_run_id(run_id: str) -> str:
    """A fresh id for the same label and content (a retried run: the old folder is kept).

    Examples
    --------
    >>> renewed_run_id("20261128T205845-bear-0d1ae7d3-3b6f0f")[15:-7]
    '-bear-0d1ae7d3'
    """
    _time, _, rest = run_id.partition("-")
    label, _, content = rest.rpartition("-")[0].rpartition("-")
    return make_run_id(default_run_prefix(content, label=label))


def run_label(name: str | None) -> str:
    """A parameters file's stem as a run id shows it: letters, digits and ``_`` kept, anything
    else (``-``, the id's separator, and ``.``: a run id is a name, never a path) as ``_``, at
    most 40 characters; ``run`` when there is none.

    Examples
    --------
    >>> run_label("my scenario-2.v1"), run_label(None)
    ('my_scenario_2_v1', 'run')
    """
    import re

    return re.sub(r"[^A-Za-z0-9_]", "_", name or "")[:40] or "run"


def claim_run_folder(root: Path, run_id: str) -> Path:
    """Create ``root/.<run_id>.partial`` atomically; refuse a run id that is already taken.

    Nothing is ever deleted or overwritten here: two processes cannot both claim one id (``mkdir``
    is atomic), and a run id that names an existing run is an error, not a replacement.
    """
    partial = root / f".{run_id}.partial"
    hint = "check the output folder and its permissions"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError included: the root (or a parent) is a file
        what = "is not a folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
        msg = f"cannot create the run folder under {root}: {what}"
        raise InfrastructureError(msg, hint=hint) from exc
    try:
        if (root / run_id).exists():
            raise FileExistsError(errno.EEXIST, "exists", str(root / run_id))
        partial.mkdir()
    except FileExistsError as exc:
        msg = f"run id {run_id!r} is already taken under {root}"
        raise ConfigurationError(msg, hint="leave the run id to wfo, or choose a new one") from exc
    except OSError as exc:
        msg = f"cannot create the run folder under {root}: {exc.strerror or exc}"
        raise InfrastructureError(msg, hint=hint) from exc
    return partial


QUEUED_SUFFIX = ".queued"


def claim_queued_run(root: Path, run_id: str) -> Path | None:
    """Take a queued run (``root/.<run_id>.queued``, written by ``wfo serve``) for execution.

    The queued folder is renamed to ``.<run_id>.partial``: ``rename`` is atomic, so of several
    processes claiming one run (servers sharing an output folder) exactly one gets the folder and
    the others get None. The run then goes on as one claimed by :func:`claim_run_folder`.
    """
    partial = root / f".{run_id}.partial"
    try:
        if partial.exists() or (root / run_id).exists():
            return None
        os.rename(root / f".{run_id}{QUEUED_SUFFIX}", partial)
    except OSError:  # gone (another claimer won), or the target appeared meanwhile
        return None
    return partial


def _claimed_folder(root: Path, run_id: str) -> Path:
    """The ``.partial`` folder a run's caller claimed already (see :func:`claim_queued_run`)."""
    partial = root / f".{run_id}.partial"
    if not partial.is_dir():
        msg = f"run {run_id!r} was not claimed under {root} (no .{run_id}.partial folder)"
        raise InfrastructureError(msg, hint="claim the run before running it")
    return partial


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
    rerun_of: str | None = None,
    owner: str | None = None,
    claimed: bool = False,
) -> RunResult:
    """Execute the valuation notebook for one configuration and publish its HTML report.

    Events from this process (run and report/publish steps) and from the kernel (pipeline steps)
    go to the run's ``log.jsonl``; with ``progress`` a one-line progress display follows them.
    ``run_id`` defaults to the UTC time, the content hash and a random suffix; it must not name an
    existing run. The run is built in ``.<run_id>.partial`` (whose manifest says ``running`` with
    this process's id) and renamed into place once its final manifest is written. An interrupted
    run (Ctrl-C, SIGTERM) still gets its report, marked INTERRUPTED, and its folder. A run whose
    folder cannot be finished (disk full, read-only) stays ``.partial``, which ``wfo runs`` lists
    as incomplete, and raises :class:`~wfo_kit.errors.InfrastructureError` (exit code 3).
    ``owner`` (the API user who submitted the run to ``wfo serve``) goes into its manifest.
    ``claimed``: the caller already holds ``.<run_id>.partial`` (:func:`claim_queued_run`).
    """
    config, secret_env = externalize_secrets(resolved.config)
    steps = check_step_names(config)
    check_confined_channels(resolved.sources, confined=config.security.confine is not None)
    check_kernel(config.report.kernel)
    if config.report.notebook:
        check_notebook(Path(config.report.notebook))
    if config.report.pdf:
        from wfo_kit.pdf import find_chromium

        find_chromium()  # no browser: say so before anything runs
    fetched = fetch_http_sources(config)
    hashes = input_hashes(resolved, fetched)
    content = content_hash(resolved, hashes)
    try:
        root = Path(output_root or config.output.root).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop (Python < 3.13)
        msg = f"cannot use the output folder {output_root or config.output.root}: {exc}"
        raise InfrastructureError(msg, hint="check the output folder and its permissions") from exc
    label = Path(params_file).stem if params_file else None
    run_id = run_id or make_run_id(default_run_prefix(content, label=label))
    # Signals are held from the claim until the folder is finished; the run and the parts that
    # may wait on the network let them in, inside a try: a stop is then an interrupted run (or a
    # finished one) with its folder finished, never a folder left half made.
    with HeldSignals() as hold:
        partial = _claimed_folder(root, run_id) if claimed else claim_run_folder(root, run_id)
        started = dt.datetime.now(dt.UTC)
        record = _RunRecord(
            run_id=run_id,
            content_hash=content,
            params_file=str(params_file) if params_file else None,
            started=started,
            resolved=resolved,
            hashes=hashes,
            rerun_of=rerun_of,
            owner=owner,
        )
        problems = record.problems  # bookkeeping that could not be written (disk full, read-only)
        try:
            config = snapshot_http_sources(config, fetched, partial)
        except InfrastructureError as exc:  # the run is finished as failed below, not left running
            record.status, record.error = "failed", exc
        events = JsonlLog(partial / "log.jsonl")
        sinks = _LiveSinks.start(config, partial / "log.jsonl")

        def emit(event: str, **fields: Any) -> None:
            try:
                events(event, {"event": event, "time": time.time(), "run_id": run_id, **fields})
            except OSError as exc:
                problems.append(f"log: {exc.strerror or exc}")

        say = log or (lambda _msg: None)
        audit = root / "audit.jsonl"
        _guarded(problems, "audit", lambda: _audit(audit, record, outcome="started"))
        _guarded(
            problems, "manifest", lambda: write_json(partial / MANIFEST, record.manifest(partial))
        )
        emit(
            "run_started", steps=[*steps, "report", "publish"], params_file=record.params_file or ""
        )
        if record.error is not None:
            return _fail_unstarted(
                root,
                partial,
                record,
                emit=emit,
                finish=lambda: _drain(hold, sinks, partial, problems),
            )
        executed = partial / "valuation.ipynb"
        escaping: BaseException | None = None
        usage = _Usage.now()
        try:
            with hold.let_through():
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
                            # a kernel started earlier cannot see secrets set in the environment
                            reuse_kernel=reuse_kernel and not secret_env,
                        )
                except WfoError as exc:  # a cell raised, timed out, the kernel or disk failed
                    record.error = exc
                    emit("step_failed", step="report", error=exc.to_dict())
                finally:
                    for name in secret_env:
                        os.environ.pop(name, None)
                record.timings["execute"] = time.perf_counter() - tick
                if record.error is None:
                    emit("step_finished", step="report", seconds=record.timings["execute"])
                say("publishing HTML")
                emit("step_started", step="publish")
                tick = time.perf_counter()
                export_html(executed, partial / "report.html", failed=record.error)
                record.timings["export"] = time.perf_counter() - tick
                emit("step_finished", step="publish", seconds=record.timings["export"])
                if config.report.pdf and record.error is None:
                    record.error = _print_pdf(partial, record, say=say, emit=emit)
                record.status = "failed" if record.error else "succeeded"
        except (KeyboardInterrupt, SystemExit) as exc:
            record.status = "interrupted"
            record.error = ExecutionError(f"run interrupted ({type(exc).__name__})", step="report")
            escaping = exc
        except BaseException as exc:  # a native panic (a BaseException) fails the run too
            record.status = "failed"
            record.error = classify_error(exc)
            escaping = exc
        stop: BaseException | None = None  # a stop that came while the run was being finished
        if escaping is not None:
            # The stopped run keeps a report that says so, with the cell that was running marked.
            _guarded(problems, "report", lambda: _publish_stopped(executed, partial, record))
        if record.status == "succeeded":
            emit("run_finished", seconds=sum(record.timings.values()))
        else:
            error = record.error.to_dict() if record.error else None
            emit("run_failed", status=record.status, error=error)
        record.resources = usage.since()
        if record.status in ("succeeded", "failed"):  # an interrupted run ends now, unannounced
            try:
                with hold.let_through():
                    record.notifications = _notify(root, partial, record, emit)
            except (KeyboardInterrupt, SystemExit) as exc:
                stop = exc
                record.notifications = _notification_stopped(exc, emit)
        stop = _drain(hold, sinks, partial, problems) or stop
        final = _close_run(root, partial, record, problems)
        _guarded(problems, "audit", lambda: _audit(audit, record, outcome=record.status))
    if isinstance(escaping, KeyboardInterrupt | SystemExit):
        raise escaping
    if stop is not None:  # asked to stop while the run was being finished: it is finished
        raise stop
    if final is None:
        msg = (
            f"run {run_id} could not be saved ({_first_fatal(problems)}); what it wrote is in "
            f"{partial} and "
            "`wfo runs` lists it as incomplete"
        )
        hint = "free disk space or fix the output folder's permissions"
        raise InfrastructureError(msg, hint=hint) from escaping
    if escaping is not None and record.error is not None:
        if record.error is escaping:
            raise escaping
        raise record.error from escaping
    return RunResult(run_id, final, record.status, final / "report.html", record.error)


def _drain(
    hold: HeldSignals, sinks: _LiveSinks, partial: Path, problems: list[str]
) -> BaseException | None:
    """Let the log sinks send what is left (up to ``DRAIN_SECONDS``) and write the traces; a stop
    acts at once here, and is returned for the caller to raise once the folder is finished."""
    try:
        with hold.let_through():
            sinks.stop(problems)
            _trace(partial, problems)
    except (KeyboardInterrupt, SystemExit) as exc:
        problems.append(f"log sinks and traces: stopped by {type(exc).__name__}")
        return exc
    return None


def _fail_unstarted(
    root: Path, partial: Path, record: _RunRecord, *, emit: Any, finish: Any
) -> NoReturn:
    """Finish a run that failed before its notebook started (its HTTP sources' snapshot could not
    be written) as ``failed``, with a stand-in report, and raise its error (exit code 3)."""
    from wfo_kit.batch import _stand_in_report

    error, problems = record.error, record.problems
    assert error is not None
    emit("run_failed", status="failed", error=error.to_dict())
    stand_in = _stand_in_report(record.run_id, "failed", error.one_line())
    _guarded(problems, "report", lambda: write_text(partial / "report.html", stand_in))
    stop = finish()
    final = _close_run(root, partial, record, problems)
    _guarded(problems, "audit", lambda: _audit(root / "audit.jsonl", record, outcome="failed"))
    if stop is not None:  # asked to stop while the run was being finished: it is finished
        raise stop
    if final is None:
        msg = (
            f"run {record.run_id} could not be saved ({_first_fatal(problems)}); what it wrote is "
            f"in {partial} and `wfo runs` lists it as incomplete"
        )
        hint = "free disk space or fix the output folder's permissions"
        raise InfrastructureError(msg, hint=hint)
    raise error


def _print_pdf(partial: Path, record: _RunRecord, *, say: Any, emit: Any) -> WfoError | None:
    """report.html printed to report.pdf (``report.pdf: true``); the error that failed it."""
    from wfo_kit.pdf import print_pdf

    say("printing report.pdf")
    emit("step_started", step="pdf")
    tick = time.perf_counter()
    try:
        print_pdf(partial / "report.html", partial / "report.pdf")
    except WfoError as exc:
        emit("step_failed", step="pdf", error=exc.to_dict())
        return exc
    record.timings["pdf"] = time.perf_counter() - tick
    emit("step_finished", step="pdf", seconds=record.timings["pdf"])
    return None


MANIFEST = "manifest.json"


@dataclass
class _RunRecord:
    """What the manifest says about one run, filled in as the run goes."""

    run_id: str
    content_hash: str
    params_file: str | None
    started: dt.datetime
    resolved: ResolvedConfig
    hashes: dict[str, str | None]
    rerun_of: str | None = None
    owner: str | None = None
    status: str = "running"
    error: WfoError | None = None
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notifications: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None

    def manifest(self, folder: Path) -> dict[str, Any]:
        metrics = _read_json(folder / "metrics.json") or {"steps": None, "quality": None}
        results = folder / "results"
        error = self.error
        return {
            "run_id": self.run_id,
            "status": self.status,
            "content_hash": self.content_hash,
            "started": self.started.isoformat(),
            "finished": None if self.status == "running" else dt.datetime.now(dt.UTC).isoformat(),
            "params_file": self.params_file,
            "rerun_of": self.rerun_of,
            "user": _user(),
            "owner": self.owner,
            "host": platform.node(),
            "pid": os.getpid(),
            "config": mask_secrets(self.resolved.config.model_dump(mode="json")),
            "sources": self.resolved.sources,
            "inputs_sha256": self.hashes,
            "inputs_read": metrics.get("inputs_read"),
            "versions": package_versions(),
            "timings_seconds": self.timings,
            "steps": metrics.get("steps"),
            "quality": metrics.get("quality"),
            "setting_effects": metrics.get("setting_effects"),
            "headline": _headline(folder),
            "results": sorted(str(p.relative_to(folder)) for p in results.glob("*"))
            if results.is_dir()
            else [],
            "error": error.to_dict() | {"details": error.details} if error else None,
            "problems": list(self.problems),
            "notifications": self.notifications,
            "resources": self.resources,
        }


@dataclass(frozen=True)
class _Usage:
    """CPU time of this process and of its finished children, and kernel counts, at one moment."""

    cpu: float
    starts: int
    reuses: int

    @classmethod
    def now(cls) -> _Usage:
        import resource

        from wfo_kit.kernels import KERNEL_COUNTS

        own, children = (
            resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return cls(cpu, KERNEL_COUNTS["starts"], KERNEL_COUNTS["reuses"])

    def since(self) -> dict[str, Any]:
        """What the run used: CPU seconds (this process, and kernels that exited during the run;
        a kernel kept warm is counted when it exits), peak memory of this process, the kernel."""
        import resource

        later = _Usage.now()
        return {
            "cpu_seconds": round(later.cpu - self.cpu, 3),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "kernel_starts": later.starts - self.starts,
            "kernel_reuses": later.reuses - self.reuses,
        }


@dataclass
class _LiveSinks:
    """The configured log sinks (:mod:`wfo_kit.logsinks`), fed while the run runs.

    A thread in this process follows the run's ``log.jsonl`` (this process's events and the
    kernel's) and forwards each complete new line, so an operator tailing the database or the
    collector sees a long run's steps as they happen. :meth:`stop` lets it read the log once more
    after the last event and waits for it: every event reaches the sinks exactly once (the
    follower keeps a byte offset). The sinks are opened, used and closed in that one thread
    (a SQLite connection belongs to the thread that made it). A failing sink is one line in
    ``problems``, never a failed run.
    """

    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    problems: list[str] = field(default_factory=list)

    #: how long :meth:`stop` waits for the last events to be sent (a slow collector)
    DRAIN_SECONDS: ClassVar[float] = 60.0

    @classmethod
    def start(cls, config: Any, log_path: Path) -> _LiveSinks:
        from wfo_kit.logsinks import SINKS

        live = cls()
        if any(configured(config.logging) for configured, _ in SINKS.values()):
            live.thread = threading.Thread(
                target=live._forward, args=(config.logging, log_path), daemon=True
            )
            live.thread.start()
        return live

    def _forward(self, logging_config: Any, log_path: Path) -> None:
        from wfo_kit.logsinks import open_sinks

        sinks = open_sinks(logging_config)
        try:
            for fields in follow(log_path, self.stopping, poll=0.1):
                sinks(str(fields.get("event", "")), fields)
        except Exception as exc:  # an unreadable log: the sinks miss the rest, the run goes on
            sinks.problems.append(f"log sinks: {type(exc).__name__}: {exc}")
        finally:
            sinks.close()
            self.problems.extend(sinks.problems)

    def stop(self, problems: list[str]) -> None:
        if self.thread is None:
            return
        self.stopping.set()
        self.thread.join(timeout=self.DRAIN_SECONDS)
        if self.thread.is_alive():
            problems.append(f"log sinks: still sending after {self.DRAIN_SECONDS:.0f} s; stopped")
        problems.extend(self.problems)


def _trace(partial: Path, problems: list[str]) -> None:
    """The run's events as OpenTelemetry spans, when the package is installed (``otel`` extra)."""
    import importlib.util

    if importlib.util.find_spec("opentelemetry") is None:
        return
    from wfo_kit.observers import read_events
    from wfo_kit.tracing import trace_events

    try:
        trace_events(read_events(partial / "log.jsonl"))
    except Exception as exc:  # an exporter that fails must not fail the run
        problems.append(f"tracing: {type(exc).__name__}: {exc}")


def _notify(
    root: Path, partial: Path, record: _RunRecord, emit: Callable[..., None]
) -> dict[str, Any] | None:
    """Send the run's notification (:mod:`wfo_kit.notify`); every outcome is logged, none raises."""
    from wfo_kit.notify import gather_facts, notify_run

    config = record.resolved.config
    try:
        facts = gather_facts(
            partial,
            root=root,
            run_id=record.run_id,
            status=record.status,
            error=record.error.one_line() if record.error else None,
            config=mask_secrets(config.model_dump(mode="json")),
        )
        outcome = notify_run(
            config.notify,
            facts,
            run_id=record.run_id,
            report=partial / "report.html",
            final_report=root / record.run_id / "report.html",
        )
    except Exception as exc:  # a notification must never fail the run
        return _notification_failed(f"{type(exc).__name__}: {exc}", emit)
    for delivery in outcome["deliveries"]:
        event = "notification_sent" if delivery["ok"] else "notification_failed"
        emit(event, **delivery)
    for note in outcome["notes"]:
        emit("notification_note", note=note)
    return outcome if (outcome["fired"] or outcome["notes"]) else None


def _notification_failed(error: str, emit: Callable[..., None]) -> dict[str, Any]:
    emit("notification_failed", channel=None, error=error)
    return {"fired": [], "deliveries": [], "notes": [], "error": error}


def _notification_stopped(exc: BaseException, emit: Callable[..., None]) -> dict[str, Any]:
    """The notification outcome of a run stopped while notifying: what was sent is not known."""
    return _notification_failed(f"stopped by {type(exc).__name__} while notifying", emit)


def _first_fatal(problems: list[str]) -> str:
    fatal = [p for p in problems if p.startswith(("manifest:", "report:", "rename:"))]
    return (fatal or problems)[0]


def _guarded(problems: list[str], what: str, action: Callable[[], object]) -> None:
    """Run one bookkeeping action; a failure is recorded, never allowed to lose the run."""
    try:
        action()
    except (OSError, WfoError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        text = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
        problems.append(f"{what}: {text}")


def _publish_stopped(executed: Path, partial: Path, record: _RunRecord) -> None:
    from wfo_kit.kernels import mark_stopped_cell

    error = record.error
    if error is not None and not (error.details or {}).get("cell_index"):
        mark_stopped_cell(executed, ename=type(error).__name__, evalue=error.message)
    export_html(executed, partial / "report.html", failed=error, status=record.status)


def _close_run(root: Path, partial: Path, record: _RunRecord, problems: list[str]) -> Path | None:
    """Write the final manifest and move the run under its final name; None if it cannot be.

    The rename happens only once the manifest is written, so a folder under a run id always has
    its final manifest. A run that cannot get one stays ``.partial`` (its manifest still says
    ``running`` with a process id that is gone: ``wfo runs`` shows it as incomplete).
    """
    _guarded(problems, "manifest", lambda: write_json(partial / MANIFEST, record.manifest(partial)))
    if any(p.startswith(("manifest:", "report:")) for p in problems):
        return None  # a folder without its final manifest or report is not a finished run
    final = root / record.run_id
    try:
        os.rename(partial, final)  # onto nothing: run ids are unique, nothing is replaced
    except OSError as exc:
        problems.append(f"rename: {exc.strerror or exc}")
        return None
    return final


def _audit(path: Path, record: _RunRecord, *, outcome: str) -> None:
    append_audit(
        path,
        command="run",
        params_file=record.params_file,
        config_hash=record.content_hash,
        run_id=record.run_id,
        outcome=outcome,
    )


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


def rerun_config(
    output_root: Path,
    run_id: str,
    *,
    accept_changed_inputs: bool = False,
    confine: str | Path | None = None,
) -> tuple[ResolvedConfig, dict[str, tuple[str | None, str | None]], str | None]:
    """What :func:`rerun` executes: run ``run_id``'s configuration and sources, checked.

    Returns the configuration, the inputs that changed since the run (table -> (old hash, new
    hash)) and the run's parameters file. Raises as :func:`rerun` does.
    """
    from wfo_kit.config import MASK, Config, SecurityConfig, check_confined
    from wfo_kit.history import load_manifest

    root = Path(output_root).resolve()
    manifest = load_manifest(root, run_id)
    if not isinstance(manifest.get("config"), dict) or manifest.get("status") in (
        "queued",
        "running",
        "incomplete",
        "unreadable",
    ):
        msg = f"run {run_id} has no complete manifest to rerun from ({manifest.get('status')})"
        raise ConfigurationError(msg, hint="`wfo runs` shows each run's state")
    if MASK in json.dumps(manifest["config"].get("data")):
        msg = f"run {run_id} read a database whose URL held a literal password, which no file keeps"
        raise ConfigurationError(msg, hint="write the password as ${VAR} in the URL and run again")
    try:
        config = Config.model_validate(manifest["config"])
    except Exception as exc:  # a manifest from another version of the configuration model
        msg = f"run {run_id}'s configuration is not valid for this wfo_kit: {exc}"
        raise ConfigurationError(msg.splitlines()[0]) from exc
    if confine is not None:
        jail = Path(confine).resolve()
        config = config.model_copy(update={"security": SecurityConfig(confine=str(jail))})
        check_confined(config, jail)
    resolved = ResolvedConfig(config=config, sources=manifest.get("sources") or {})
    before = manifest.get("inputs_sha256") or {}
    now = input_hashes(resolved)
    changed = {
        k: (before.get(k), now.get(k))
        for k in sorted({*before, *now})
        if before.get(k) != now.get(k)
    }
    if changed and not accept_changed_inputs:
        names = ", ".join(changed)
        msg = f"the inputs of run {run_id} changed since it ran: {names}"
        raise DataError(
            msg, hint="pass --accept-changed-inputs to value the current data and compare"
        )
    return resolved, changed, manifest.get("params_file")


def rerun(
    output_root: Path,
    run_id: str,
    *,
    accept_changed_inputs: bool = False,
    confine: str | Path | None = None,
    log: Any = None,
    progress: bool = False,
) -> tuple[RunResult, dict[str, tuple[str | None, str | None]]]:
    """Execute a run again from its manifest: the same effective configuration and sources.

    The inputs are hashed again first; if any changed since the run, the rerun is refused with
    the tables named (a :class:`~wfo_kit.errors.DataError`, exit code 2) unless
    ``accept_changed_inputs``. Returns the new run and the inputs that changed (table ->
    (old hash, new hash)). Compare the two with :func:`wfo_kit.history.compare_results`.
    """
    root = Path(output_root).resolve()
    resolved, changed, params_file = rerun_config(
        root, run_id, accept_changed_inputs=accept_changed_inputs, confine=confine
    )
    result = run_report(
        resolved,
        params_file=params_file,
        output_root=root,
        log=log,
        progress=progress,
        rerun_of=run_id,
    )
    return result, changed
