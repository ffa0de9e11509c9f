"""A bounded queue feeding the batch workers: runs execute in worker processes, never here.

The pool is :mod:`wfo_kit.batch`'s: spawned processes initialized by ``_worker_init`` (a warm
kernel each, imports paid once) executing :func:`wfo_kit.batch.run_job`. A dispatcher thread
hands a run to the pool only when a worker is free, so a waiting run can still be cancelled; at
most ``capacity`` runs wait (beyond that :class:`~wfo_kit.serve.problems.QueueFullError`, a 429).

The run folders stay the source of truth: a run is known here only until its worker has claimed
its folder and finished. A run that never gets that far (cancelled while waiting, refused by its
worker before it started, the server stopping) still gets a folder, claimed with
:func:`wfo_kit.runs.claim_run_folder` and finished with a stand-in report saying why.

Cancelling a running run sends its worker SIGTERM: the run publishes its report marked
INTERRUPTED and finalizes its folder (the batch worker's own handling of Ctrl-C).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import datetime as dt
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from wfo_kit.batch import Job, _finalize_orphan, _worker_init, run_job

log = logging.getLogger("wfo_kit.serve")

TicketState = Literal["queued", "starting", "running"]


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
    """A run accepted by this server and not finished yet."""

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


class RunQueue:
    """Waiting runs (at most ``capacity``) and the worker pool that executes them."""

    def __init__(
        self,
        output_root: Path,
        *,
        workers: int = 1,
        capacity: int = 16,
        kernel: str = "wfo_kit",
        prewarm: bool = True,
        retry_after: int = 10,
    ) -> None:
        self.root = Path(output_root).resolve()
        self.workers, self.capacity, self.kernel = workers, capacity, kernel
        self.prewarm, self.retry_after = prewarm, retry_after
        self._cond = threading.Condition()
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._active: dict[str, Ticket] = {}  # starting or running, by run id
        self._pool: cf.ProcessPoolExecutor | None = None
        self._broken = False
        self._stopping = False
        self._warm: list[cf.Future] = []
        self._thread = threading.Thread(target=self._dispatch, name="wfo-dispatch", daemon=True)

    # ---------------------------------------------------------------------------------- life
    def start(self) -> None:
        self._pool = self._new_pool()
        self._thread.start()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        pool = cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded server
            initializer=_worker_init,
            initargs=(self.kernel,),
        )
        if self.prewarm:  # start every worker (and its warm kernel) now, not on the first run
            self._warm = [pool.submit(_warm_worker) for _ in range(self.workers)]
        return pool

    @property
    def ready(self) -> bool:
        """Whether the workers are up (warm) and the pool is sound."""
        return not self._broken and all(f.done() and not f.exception() for f in self._warm)

    def stop(self, grace: float = 15.0) -> None:
        """Stop: waiting runs are recorded as interrupted, running ones are asked to stop."""
        with self._cond:
            self._stopping = True
            waiting = list(self._waiting)
            self._waiting.clear()
            active = list(self._active.values())
            self._cond.notify_all()
        for ticket in waiting:
            self._record_unstarted(ticket, "interrupted", "the server stopped before it started")
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
            self._pool.shutdown(wait=not not_done, cancel_futures=True)
        self._thread.join(timeout=2)

    # ------------------------------------------------------------------------------- submit
    def submit(self, job: Job) -> Ticket:
        """Queue a run (429 when ``capacity`` runs already wait)."""
        with self._cond:
            if self._stopping:
                msg = "the server is stopping"
                raise QueueFullError(0, self.retry_after) from RuntimeError(msg)
            if len(self._waiting) >= self.capacity:
                raise QueueFullError(self.capacity, self.retry_after)
            ticket = Ticket(job)
            self._waiting.append(ticket)
            self._cond.notify_all()
        return ticket

    def tickets(self) -> list[Ticket]:
        """Runs accepted and not finished, waiting ones last."""
        with self._cond:
            return [*self._active.values(), *self._waiting]

    def ticket(self, run_id: str) -> Ticket | None:
        return next((t for t in self.tickets() if t.run_id == run_id), None)

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"queued": len(self._waiting), "running": len(self._active)}

    # ------------------------------------------------------------------------------- cancel
    def cancel(self, run_id: str, by: str) -> Literal["cancelled", "cancelling"]:
        """Cancel a run of this server: a waiting one at once, a running one by SIGTERM.

        Raises ``LookupError`` when the run is not (or no longer) queued or running here.
        """
        with self._cond:
            waiting = next((t for t in self._waiting if t.run_id == run_id), None)
            if waiting is not None:
                self._waiting.remove(waiting)
            active = self._active.get(run_id)
        if waiting is not None:
            waiting.cancelled_by = by
            self._record_unstarted(waiting, "interrupted", f"cancelled by {by} before it started")
            return "cancelled"
        if active is None:
            raise LookupError(run_id)
        active.cancelled_by = by
        self._signal(active, wait=5.0)
        return "cancelling"

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

    # ----------------------------------------------------------------------------- dispatch
    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._waiting or len(self._active) >= self.workers
                ):
                    self._cond.wait(timeout=1.0)
                if self._stopping:
                    return
                ticket = self._waiting.popleft()
                ticket.state = "starting"
                self._active[ticket.run_id] = ticket
                if self._broken:  # a worker died: a fresh pool for the runs to come
                    old, self._pool, self._broken = self._pool, self._new_pool(), False
                    if old is not None:
                        old.shutdown(wait=False, cancel_futures=True)
                pool = self._pool
            assert pool is not None
            try:
                ticket.future = pool.submit(run_job, ticket.job)
            except (cf.BrokenExecutor, RuntimeError) as exc:
                self._broken = True
                self._finish(ticket, None, f"the worker pool could not take the run: {exc}")
                continue
            ticket.state = "running"
            ticket.future.add_done_callback(lambda f, t=ticket: self._on_done(t, f))

    def _on_done(self, ticket: Ticket, future: cf.Future) -> None:
        outcome: dict[str, Any] | None = None
        reason = None
        try:
            outcome = future.result()
        except cf.CancelledError:
            reason = f"cancelled by {ticket.cancelled_by} before it started"
        except cf.process.BrokenProcessPool:
            self._broken = True
            reason = "the worker process died during the run"
        except Exception as exc:  # a worker-side crash outside run_job's own handling
            reason = f"the worker failed outside the run: {type(exc).__name__}: {exc}"
        self._finish(ticket, outcome, reason)

    def _finish(self, ticket: Ticket, outcome: dict[str, Any] | None, reason: str | None) -> None:
        try:
            if (self.root / f".{ticket.run_id}.partial").is_dir():
                status = "interrupted" if ticket.cancelled_by else "failed"
                _finalize_orphan(self.root, ticket.run_id, status, reason or "the run stopped")
            elif not (self.root / ticket.run_id).is_dir():
                # Refused by its worker before it claimed a folder (or never handed over).
                status = (outcome or {}).get("status") or "failed"
                if ticket.cancelled_by:
                    status = "interrupted"
                    reason = reason or f"cancelled by {ticket.cancelled_by} before it started"
                why = reason or (outcome or {}).get("reason") or "the run did not start"
                self._record_unstarted(ticket, status, why)
        except Exception:  # never lose the dispatcher over bookkeeping
            log.exception("run %s: cannot record its end", ticket.run_id)
        finally:
            with self._cond:
                self._active.pop(ticket.run_id, None)
                self._cond.notify_all()

    def _record_unstarted(self, ticket: Ticket, status: str, reason: str) -> None:
        """A folder for a run that never ran: manifest and a stand-in report with the reason."""
        from wfo_kit.io import write_json
        from wfo_kit.runs import claim_run_folder

        partial = claim_run_folder(self.root, ticket.run_id)
        write_json(
            partial / "manifest.json",
            {
                "run_id": ticket.run_id,
                "status": "running",
                "started": ticket.submitted.isoformat(),
                "params_file": ticket.job.params_file,
                "owner": ticket.owner,
                "pid": os.getpid(),
            },
        )
        _finalize_orphan(self.root, ticket.run_id, status, reason)


def _manifest_pid(path: Path) -> int | None:
    try:
        pid = json.loads(path.read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None
