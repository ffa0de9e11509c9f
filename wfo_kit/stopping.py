"""Stops (Ctrl-C, SIGTERM) held while something must not be left half done.

A run claims ``.<run_id>.partial``, runs, and renames the folder into place once its final
manifest is written. A KeyboardInterrupt raised between the claim and the rename left a partial
folder that looked like a crashed process: a batch pool that loses a worker sends SIGTERM to its
other workers, and a run that had just succeeded was reported as "the worker process died during
the run". A kernel launched while a stop came could be left running with no one knowing its pid.

:class:`HeldSignals` holds SIGINT and SIGTERM for a block. Inside :meth:`HeldSignals.let_through`
(the run itself, a notification that may wait on the network) they act at once, what was held
first, and the caller catches what they raise; what is held when the block ends is delivered
then. Python runs signal handlers in the main thread only, and only there can they be set: in
another thread nothing is held.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

#: What a user, ``timeout``, a container runtime or a pool sends to stop a process.
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class HeldSignals:
    """SIGINT and SIGTERM held for a block (see the module's docstring)."""

    def __init__(self) -> None:
        self.held: list[int] = []
        self.found: dict[int, Any] = {}  # the handlers the block found, put back at the end

    def _hold(self, signum: int, _frame: Any) -> None:
        self.held.append(signum)

    def __enter__(self) -> HeldSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in HELD_SIGNALS:
            handler = signal.getsignal(signum)
            # None: installed outside Python, it could not be put back; SIG_IGN: nothing to hold
            if handler is not None and handler is not signal.SIG_IGN:
                self.found[signum] = handler
        try:
            _install(dict.fromkeys(self.found, self._hold))
        except BaseException:  # a stop that came before the block: no hold is left behind
            _install(self.found)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        _install(self.found)
        self._deliver()

    def _deliver(self) -> None:
        """Raise what was held, each to the handler the block found (the first error raised)."""
        held, self.held = list(dict.fromkeys(self.held)), []
        _each(held, signal.raise_signal)

    @contextlib.contextmanager
    def let_through(self) -> Iterator[None]:
        """Stops act at once inside this block, what was held first."""
        if not self.found:
            yield
            return
        try:
            _install(self.found)
            self._deliver()
            yield
        finally:
            _install(dict.fromkeys(self.found, self._hold))


def _install(handlers: dict[int, Any]) -> None:
    """Install every handler, even if a pending signal's handler raises on the way.

    ``signal.signal`` first runs the handlers of signals that are pending, which may raise
    before the new handler is set: it is then set again, and the error raised once all are in.
    """

    def install(signum: int) -> None:
        try:
            signal.signal(signum, handlers[signum])
        finally:
            if signal.getsignal(signum) is not handlers[signum]:
                signal.signal(signum, handlers[signum])

    _each(list(handlers), install)


def _each(items: list[int], action: Any) -> None:
    """``action`` on every item; the first error is raised once all have been tried."""
    first: BaseException | None = None
    for item in items:
        try:
            action(item)
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first
