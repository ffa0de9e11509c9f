"""The run queue of ``wfo serve``: durable, in the output folder, shared by every server on it.

A run accepted over HTTP is written at once to ``<output root>/.<run id>.queued/manifest.json``
(status ``queued``, with everything needed to run it): the queue is the output folder, so a server
that dies loses no accepted run, and several servers over one output folder share one queue. A
dispatcher thread per server takes the oldest waiting run when one of its workers is free, by
renaming its folder to ``.<run id>.partial`` (:func:`wfo_kit.runs.claim_queued_run`): ``rename``
is atomic, so exactly one server runs each run, once. The worker then runs it in that folder,
which it renames to ``<run id>`` when it ends (:func:`wfo_kit.runs.run_report`).

Workers are :mod:`wfo_kit.batch`'s: spawned processes initialized by ``_worker_init`` (a warm
kernel each, imports paid once) executing :func:`wfo_kit.batch.run_job`, handed a run only when
one is free. At most ``capacity`` runs wait, counted over the whole folder (beyond:
:class:`QueueFullError`, a 429; two servers accepting at the same instant may pass the bound by
one each).

Recovery, at start and every few seconds: a ``.partial`` run on this host whose process is gone
(its server or worker was killed) is finished as ``interrupted`` with the reason; waiting runs of
a dead server are simply taken by the next dispatcher. Cancelling a waiting run claims it and
records it as interrupted; a running run is stopped by SIGTERM to its worker (it publishes its
report marked INTERRUPTED); a run running on another server gets a cancel request
(``.<run id>.cancel``) that its server's dispatcher acts on.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import json
import logging
import multiprocessing
import os
import platform
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from wfo_kit.batch import Job, _finalize_orphan, _worker_init, run_job
from wfo_kit.history import _alive

log = logging.getLogger("wfo_kit.serve")

TicketState = Literal["queued", "starting", "running"]
#: How often a dispatcher looks for runs queued by other servers, and for orphans.
POLL_SECONDS = 0.5
SWEEP_SECONDS = 5.0
#: A claimed run whose claim manifest was never written (its claimer died in between).
STALE_CLAIM_SECONDS = 60.0
#: The Job fields a queued run's manifest records, to run it from the folder alone.
JOB_FIELDS = ("params_file", "sets", "confine", "owner", "rerun_of", "accept_changed_inputs")


class QueueFullError(Exception):
    """As many runs wait as the queue may hold (a 429 with Retry-After)."""

    def __init__(self, capacity: int, retry_after: int) -> None:
        super().__init__(f"the run queue is full ({capacity} runs waiting)")
        self.capacity, self.retry_after = capacity, retry_after


def _warm_worker() -> int:
    """The first task of each worker: what a run pays once per process, paid before the first
    run (its modules; resolving a configuration imports scipy.stats, which takes seconds)."""
    from wfo_kit.config import resolve_config
    from wfo_kit.kernels import check_notebook
    from wfo_kit.publish import notebook_path

    resolve_config()
    check_notebook(notebook_path())
    return os.getpid()


@dataclass
class Ticket:
    """A run this server accepted or claimed and that has not finished here yet."""

    job: Job
    submitted: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    state: TicketState = "queued"
    future: cf.Future | None = None
    cancelled_by: str | None = None

    @property
    def run_id(self) -> str:
        return self.job.run_id

    @property
    def owner(self) -> str | None:
        return self.job.owner


# ------------------------------------------------------------------------------ on the disk
def enqueue(root: Path, job: Job, submitted: dt.datetime) -> None:
    """Write a waiting run to ``root/.<run id>.queued`` (built aside, then renamed into place,
    so that no reader or dispatcher sees it half-written)."""
    from wfo_kit.io import write_json

    staging = root / ".wfo-staging" / f"{job.run_id}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    manifest = {
        "run_id": job.run_id,
        "status": "queued",
        "submitted": submitted.isoformat(),
        **{name: getattr(job, name) for name in JOB_FIELDS},
        "host": platform.node(),
        "pid": os.getpid(),
    }
    write_json(staging / "manifest.json", manifest)
    target = root / f".{job.run_id}.queued"
    if target.exists() or (root / job.run_id).exists():
        msg = f"run id {job.run_id} is taken"
        raise FileExistsError(msg)
    os.rename(staging, target)


def queued_ids(root: Path) -> list[str]:
    """Run ids waiting under ``root``, oldest submission first (by name: ids start with their
    submission time; ties by the recorded submission time)."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(root):
            name = entry.name
            if name.startswith(".") and name.endswith(".queued") and len(name) > 8:
                found.append(name[1:-7])
    return sorted(found, key=lambda run_id: (run_id.partition("-")[0], _submitted(root, run_id)))


def _submitted(root: Path, run_id: str) -> str:
    manifest = _read_json(root / f".{run_id}.queued" / "manifest.json")
    return str(manifest.get("submitted") or "")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def job_of(manifest: dict[str, Any], run_id: str, root: Path) -> Job:
    """The job a queued run's manifest describes (its folder already claimed)."""
    fields = {name: manifest.get(name) for name in JOB_FIELDS}
    return Job(
        params_file=str(fields["params_file"] or ""),
        run_id=run_id,
        output_root=str(root),
        sets=tuple(fields["sets"] or ()),
        confine=fields["confine"],
        owner=fields["owner"],
        claimed=True,
        rerun_of=fields["rerun_of"],
        accept_changed_inputs=bool(fields["accept_changed_inputs"]),
    )


class RunQueue:
    """This server's dispatcher and worker pool over the queue in ``output_root``."""

    def __init__(
        self,
        output_root: Path,
        *,
        workers: int = 1,
        capacity: int = 16,
        kernel: str = "wfo_kit",
        prewarm: bool = True,
        retry_after: int = 10,
        scheduler: str | None = None,
    ) -> None:
        self.root = Path(output_root).resolve()
        self.workers, self.capacity, self.kernel = workers, capacity, kernel
        self.scheduler = scheduler
        self._client: Any = None
        self.prewarm, self.retry_after = prewarm, retry_after
        self.server_id = f"{platform.node()}:{os.getpid()}"
        self._cond = threading.Condition()
        self._submit_lock = threading.Lock()  # one capacity check and write at a time, here
        self._active: dict[str, Ticket] = {}  # claimed by this server: starting or running
        self._pool: cf.Executor | None = None
        self._broken = False
        self._stopping = False
        self._warm: list[cf.Future] = []
        self._thread = threading.Thread(target=self._dispatch, name="wfo-dispatch", daemon=True)

    # ---------------------------------------------------------------------------------- life
    def start(self) -> None:
        """Finish what a dead server left running, start the workers, then take queued runs."""
        self.recover()
        self._pool = self._new_pool()
        self._thread.start()

    def _new_pool(self) -> cf.Executor:
        if self.scheduler:
            return self._dask_executor()
        pool = cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded server
            initializer=_worker_init,
            initargs=(self.kernel,),
        )
        if self.prewarm:  # start every worker (and its warm kernel) now, not on the first run
            self._warm = [pool.submit(_warm_worker) for _ in range(self.workers)]
        return pool

    def _dask_executor(self) -> cf.Executor:
        """Runs on a Dask cluster: as many at once as it has threads (``workers`` at least)."""
        try:
            from distributed import Client
        except ImportError as exc:
            from wfo_kit.errors import ConfigurationError

            msg = "a Dask scheduler was given but dask[distributed] is not installed"
            raise ConfigurationError(msg, hint="pip install 'wfo_kit[dask]'") from exc
        if self._client is None:
            self._client = Client(self.scheduler, timeout=30, set_as_default=False)
            self.workers = max(self.workers, sum(self._client.nthreads().values()))
        return self._client.get_executor(pure=False)

    @property
    def ready(self) -> bool:
        """Whether the workers are up (warm) and the pool is sound."""
        return not self._broken and all(f.done() and not f.exception() for f in self._warm)

    def stop(self, grace: float = 15.0) -> None:
        """Stop: waiting runs stay queued on disk (the next server takes them); running ones
        are asked to stop and end interrupted, with their report."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)  # no run is claimed from now on
        with self._cond:
            active = list(self._active.values())
        for ticket in active:
            ticket.cancelled_by = ticket.cancelled_by or "the server stopping"
        for ticket in active:
            with contextlib.suppress(LookupError):
                self._signal(ticket, wait=0.0)
        futures = [t.future for t in active if t.future is not None]
        _, not_done = cf.wait(futures, timeout=grace)
        if self._pool is not None:
            if not_done:
                for pid in self._worker_pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if isinstance(self._pool, cf.ProcessPoolExecutor):
                self._pool.shutdown(wait=not not_done, cancel_futures=True)
            else:  # a Dask client's executor: its runs are the cluster's to finish
                self._pool.shutdown(wait=False)
        if self._client is not None:
            self._client.close()
        for ticket in active:  # whatever did not end by itself is recorded here
            if ticket.run_id in self._active:
                self._finish(ticket, None, "the server stopped during the run")

    def recover(self) -> list[str]:
        """Finish runs left ``.partial`` by a process that is gone (a killed server or worker)
        as interrupted, with the reason; return their ids. Runs of live processes, and of other
        hosts (which cannot be checked from here), are left alone."""
        recovered = []
        with contextlib.suppress(FileNotFoundError):
            names = [e.name for e in os.scandir(self.root) if e.name.endswith(".partial")]
            for name in names:
                run_id = name[1:-8]
                with self._cond:
                    if run_id in self._active:
                        continue
                if self._orphaned(self.root / name):
                    reason = "its server or worker process stopped during the run (killed?)"
                    with contextlib.suppress(OSError):
                        _finalize_orphan(self.root, run_id, "interrupted", reason)
                        recovered.append(run_id)
        for run_id in recovered:
            log.warning("run %s: found orphaned, recorded as interrupted", run_id)
        return recovered

    @staticmethod
    def _orphaned(folder: Path) -> bool:
        manifest = _read_json(folder / "manifest.json")
        status, host = manifest.get("status"), manifest.get("host")
        if host is not None and host != platform.node():
            return False
        if status in ("succeeded", "failed", "interrupted"):
            return False  # it ended; only its rename failed: `wfo runs` shows it incomplete
        if status == "running":
            return not _alive(manifest.get("pid"), host)
        try:  # claimed, its claim manifest not written yet (or its claimer died meanwhile)
            age = time.time() - folder.stat().st_mtime
        except OSError:
            return False
        return age > STALE_CLAIM_SECONDS and not _alive(manifest.get("pid"), host)

    # ------------------------------------------------------------------------------- submit
    def submit(self, job: Job) -> Ticket:
        """Record a waiting run in the output folder (429 when ``capacity`` runs wait)."""
        with self._submit_lock:
            if self._stopping:
                msg = "the server is stopping"
                raise QueueFullError(0, self.retry_after) from RuntimeError(msg)
            if len(queued_ids(self.root)) >= self.capacity:
                raise QueueFullError(self.capacity, self.retry_after)
            ticket = Ticket(job)
            enqueue(self.root, job, ticket.submitted)
        with self._cond:
            self._cond.notify_all()
        return ticket

    def tickets(self) -> list[Ticket]:
        """Runs this server has claimed and not finished."""
        with self._cond:
            return list(self._active.values())

    def ticket(self, run_id: str) -> Ticket | None:
        with self._cond:
            return self._active.get(run_id)

    def counts(self) -> dict[str, int]:
        """Runs waiting (in the whole folder) and running on this server."""
        with self._cond:
            running = len(self._active)
        return {"queued": len(queued_ids(self.root)), "running": running}

    # ------------------------------------------------------------------------------- cancel
    def cancel(self, run_id: str, by: str) -> Literal["cancelled", "cancelling"]:
        """Cancel a waiting run at once, stop a running one (SIGTERM to its worker, or a cancel
        request to the server running it).

        Raises ``LookupError`` when the run is not (or no longer) waiting or running.
        """
        from wfo_kit.runs import claim_queued_run

        if claim_queued_run(self.root, run_id) is not None:
            manifest = _read_json(self.root / f".{run_id}.partial" / "manifest.json")
            self._record_unstarted(
                job_of(manifest, run_id, self.root),
                manifest,
                "interrupted",
                f"cancelled by {by} before it started",
            )
            return "cancelled"
        with self._cond:
            active = self._active.get(run_id)
        if active is not None:
            active.cancelled_by = by
            self._signal(active, wait=5.0)
            return "cancelling"
        partial = self.root / f".{run_id}.partial"
        if partial.is_dir() and not self._orphaned(partial):  # running on another server
            from wfo_kit.io import write_text

            write_text(self.root / f".{run_id}.cancel", by)
            if partial.is_dir():
                return "cancelling"
        raise LookupError(run_id)

    def _signal(self, ticket: Ticket, *, wait: float) -> None:
        """SIGTERM to the worker running ``ticket`` (found by the pid in its partial manifest)."""
        partial = self.root / f".{ticket.run_id}.partial" / "manifest.json"
        deadline = time.monotonic() + wait
        while True:
            pid = _manifest_pid(partial)
            if pid is not None and pid in self._worker_pids():
                os.kill(pid, signal.SIGTERM)
                return
            if ticket.future is not None and ticket.future.done():
                raise LookupError(ticket.run_id)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if ticket.future is not None and ticket.future.cancel():
            return  # still inside the pool's own queue: it will not start
        raise LookupError(ticket.run_id)

    def _worker_pids(self) -> set[int]:
        processes = getattr(self._pool, "_processes", None) or {}
        return {p.pid for p in list(processes.values()) if p.pid is not None}

    def _cancel_requests(self) -> None:
        """Act on cancel requests other servers left for runs running here."""
        for ticket in self.tickets():
            request = self.root / f".{ticket.run_id}.cancel"
            if ticket.cancelled_by is None and request.is_file():
                with contextlib.suppress(OSError):
                    ticket.cancelled_by = request.read_text(encoding="utf-8").strip() or "?"
                with contextlib.suppress(LookupError):
                    self._signal(ticket, wait=0.0)

    # ----------------------------------------------------------------------------- dispatch
    def _dispatch(self) -> None:
        last_sweep = time.monotonic()
        while True:
            with self._cond:
                if self._stopping:
                    return
                full = len(self._active) >= self.workers
            self._cancel_requests()  # also while every worker is busy: that is when they come
            if time.monotonic() - last_sweep > SWEEP_SECONDS:
                last_sweep = time.monotonic()
                self.recover()
            ticket = None if full else self._claim_next()
            if ticket is None:
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(timeout=POLL_SECONDS)
                continue
            self._start(ticket)

    def _claim_next(self) -> Ticket | None:
        """Claim the oldest waiting run this server can take (None: none left)."""
        from wfo_kit.io import write_json
        from wfo_kit.runs import claim_queued_run

        for run_id in queued_ids(self.root):
            partial = claim_queued_run(self.root, run_id)
            if partial is None:
                continue  # another server took it first
            manifest = _read_json(partial / "manifest.json")
            claim = {**manifest, "status": "running", "claimed_by": self.server_id}
            claim.update(host=platform.node(), pid=os.getpid())
            try:
                write_json(partial / "manifest.json", claim)
            except Exception:  # the run is ours all the same: its end is recorded with the reason
                log.exception("run %s: cannot write its claim", run_id)
            submitted = manifest.get("submitted")
            ticket = Ticket(
                job_of(manifest, run_id, self.root),
                submitted=dt.datetime.fromisoformat(submitted)
                if isinstance(submitted, str)
                else dt.datetime.now(dt.UTC),
                state="starting",
            )
            with self._cond:
                self._active[run_id] = ticket
            return ticket
        return None

    def _start(self, ticket: Ticket) -> None:
        with self._cond:
            if self._broken:  # a worker died: a fresh pool for the runs to come
                old, self._pool, self._broken = self._pool, self._new_pool(), False
                if isinstance(old, cf.ProcessPoolExecutor):
                    old.shutdown(wait=False, cancel_futures=True)
            pool = self._pool
        assert pool is not None
        try:
            ticket.future = pool.submit(run_job, ticket.job)
        except (cf.BrokenExecutor, RuntimeError) as exc:
            self._broken = True
            self._finish(ticket, None, f"the worker pool could not take the run: {exc}")
            return
        ticket.state = "running"
        ticket.future.add_done_callback(lambda f, t=ticket: self._on_done(t, f))

    def _on_done(self, ticket: Ticket, future: cf.Future) -> None:
        outcome: dict[str, Any] | None = None
        reason = None
        try:
            outcome = future.result()
        except cf.CancelledError:
            reason = f"cancelled by {ticket.cancelled_by or 'the server'} before it started"
        except cf.process.BrokenProcessPool:
            self._broken = True
            reason = "the worker process died during the run"
        except Exception as exc:  # a worker-side crash outside run_job's own handling
            reason = f"the worker failed outside the run: {type(exc).__name__}: {exc}"
        self._finish(ticket, outcome, reason)

    def _finish(self, ticket: Ticket, outcome: dict[str, Any] | None, reason: str | None) -> None:
        try:
            if (self.root / f".{ticket.run_id}.partial").is_dir():
                # The worker ended without finishing the folder (refused the run before it
                # started, or died): the folder is finished here, with the reason.
                status = "interrupted" if ticket.cancelled_by else "failed"
                why = reason or (outcome or {}).get("reason") or "the run stopped"
                _finalize_orphan(self.root, ticket.run_id, status, why)
        except Exception:  # never lose the dispatcher over bookkeeping
            log.exception("run %s: cannot record its end", ticket.run_id)
        finally:
            (self.root / f".{ticket.run_id}.cancel").unlink(missing_ok=True)
            with self._cond:
                self._active.pop(ticket.run_id, None)
                self._cond.notify_all()

    def _record_unstarted(
        self, job: Job, manifest: dict[str, Any], status: str, reason: str
    ) -> None:
        """Finish a claimed run that never ran: manifest and a stand-in report with the reason."""
        from wfo_kit.io import write_json

        partial = self.root / f".{job.run_id}.partial"
        write_json(
            partial / "manifest.json",
            {
                "run_id": job.run_id,
                "status": "running",
                "submitted": manifest.get("submitted"),
                "started": manifest.get("submitted"),
                "params_file": job.params_file or None,
                "rerun_of": job.rerun_of,
                "owner": job.owner,
                "host": platform.node(),
                "pid": os.getpid(),
            },
        )
        _finalize_orphan(self.root, job.run_id, status, reason)


def _manifest_pid(path: Path) -> int | None:
    try:
        pid = json.loads(path.read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None
