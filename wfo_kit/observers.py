"""Observers: subscribers to run events (the observer pattern as a callback protocol).

An observer is any callable ``observer(event, fields)``. Events: ``run_started``, ``run_finished``,
``run_failed``, ``step_started``, ``step_finished``, ``step_failed``, ``step_retrying``,
``step_fell_back``. ``fields`` always holds ``event``, ``time`` (epoch seconds) and ``run_id``.

Shipped: :class:`JsonlLog` (one JSON object per line, the run's ``log.jsonl``),
:func:`console_log` (the ``wfo_kit`` logger, with levels), :class:`Metrics` (per step and per run
figures), :class:`TerminalProgress` (one line on a terminal, a single summary line otherwise) and
:class:`NotebookProgress` (an ipywidgets bar).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

LOGGER = logging.getLogger("wfo_kit")

LEVELS = {
    "run_started": logging.INFO,
    "run_finished": logging.INFO,
    "run_failed": logging.ERROR,
    "step_started": logging.DEBUG,
    "step_finished": logging.INFO,
    "step_failed": logging.ERROR,
    "step_retrying": logging.WARNING,
    "step_fell_back": logging.WARNING,
}


class JsonlLog:
    """Append every event to a JSON-lines file, flushed per line (readable while a run goes on)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        line = json.dumps(fields, default=str, separators=(",", ":"))
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def read_events(path: Path) -> list[dict[str, Any]]:
    """All events of a JSON-lines log (a torn last line, from a crash, is skipped)."""
    events = []
    if not Path(path).is_file():
        return events
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def follow(path: Path, stop: Any, poll: float = 0.2) -> Iterator[dict[str, Any]]:
    """Yield events appended to ``path`` until ``stop.is_set()`` (a threading.Event)."""
    offset = 0
    while True:
        finished = stop.is_set()
        if Path(path).is_file():
            with Path(path).open("r", encoding="utf-8") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete, _, _ = chunk.rpartition("\n")
            if complete:
                offset += len(complete.encode("utf-8")) + 1
                for line in complete.splitlines():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
        if finished:
            return
        time.sleep(poll)


def console_log(event: str, fields: dict[str, Any]) -> None:
    """Human-readable logging through the ``wfo_kit`` logger (configure it as you like)."""
    level = LEVELS.get(event, logging.INFO)
    if not LOGGER.isEnabledFor(level):
        return
    step = fields.get("step")
    detail = ""
    if event == "step_finished":
        detail = f" in {fields.get('seconds', 0):.3f}s, rows out {fields.get('rows_out')}"
        if fields.get("cache") in {"memory", "disk"}:
            detail += f" (from the step cache, {fields['cache']})"
    elif event in {"step_failed", "run_failed"}:
        detail = f": {(fields.get('error') or {}).get('message', '')}"
    elif event == "step_retrying":
        detail = f" (attempt {fields.get('attempt')}, waiting {fields.get('wait'):.2f}s)"
    elif event == "step_fell_back":
        detail = f" -> {fields.get('fallback')}"
    LOGGER.log(level, "%s%s%s", event.replace("_", " "), f" {step}" if step else "", detail)


class Metrics:
    """Collects per-step and per-run figures from events."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.retries = 0
        self.failures = 0
        self.fallbacks = 0
        self.started: float | None = None
        self.finished: float | None = None
        self.status = "running"
        self.companies = 0
        self.quality_score: float | None = None

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        if event == "run_started":
            self.started = fields["time"]
        elif event in {"run_finished", "run_failed"}:
            self.finished = fields["time"]
            self.status = "succeeded" if event == "run_finished" else "failed"
        elif event == "step_finished":
            self.steps.append(
                {
                    k: fields.get(k)
                    for k in (
                        "step",
                        "seconds",
                        "attempts",
                        "rows_in",
                        "rows_out",
                        "rows_quarantined",
                        "max_rss_mb",
                        "cache",
                    )
                }
            )
            if fields.get("companies") is not None:
                self.companies = fields["companies"]
            if fields.get("quality_score") is not None:
                self.quality_score = fields["quality_score"]
        elif event == "step_retrying":
            self.retries += 1
        elif event == "step_failed":
            self.failures += 1
        elif event == "step_fell_back":
            self.fallbacks += 1

    def summary(self, status: str | None = None) -> dict[str, Any]:
        """Per-run figures; ``status`` overrides the one seen so far (for the final event)."""
        seconds = (self.finished or time.time()) - (self.started or time.time())
        attempts = sum(s.get("attempts") or 1 for s in self.steps) + self.failures
        return {
            "status": status or self.status,
            "seconds": seconds,
            "steps": self.steps,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "error_rate": self.failures / attempts if attempts else 0.0,
            "quality_score": self.quality_score,
            "companies": self.companies,
            "companies_per_second": self.companies / seconds if seconds > 0 else None,
        }


class TerminalProgress:
    """A one-line progress display: redrawn in place on a terminal; elsewhere one final line."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "wfo") -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.label = label
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.current = ""

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        if event == "step_started":
            self.current = str(fields.get("step"))
        elif event == "step_finished":
            self.done = min(self.done + 1, self.total)
        elif event in {"run_finished", "run_failed"}:
            self.close("done" if event == "run_finished" else "failed")
            return
        if self.tty:
            self._draw()

    def _draw(self, status: str = "") -> None:
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        text = f"\r{self.label} [{bar}] {self.done}/{self.total} {status or self.current}"
        self.stream.write(text.ljust(72))
        self.stream.flush()

    def close(self, status: str) -> None:
        if self.tty:
            self._draw(status)
            self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self.done}/{self.total} steps, {status}\n")
        self.stream.flush()


class NotebookProgress:
    """An ipywidgets progress bar for interactive notebooks (not for published reports)."""

    def __init__(self, total: int) -> None:
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(min=0, max=max(total, 1), description="pipeline")
        self.label = ipywidgets.Label("")
        display(ipywidgets.HBox([self.bar, self.label]))

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        if event == "step_started":
            self.label.value = f"{fields.get('step')} ..."
        elif event == "step_finished":
            self.bar.value += 1
            self.label.value = f"{fields.get('step')} done in {fields.get('seconds', 0):.2f}s"
        elif event in {"step_failed", "run_failed"}:
            self.bar.bar_style = "danger"
            self.label.value = str((fields.get("error") or {}).get("message", "failed"))
        elif event == "run_finished":
            self.bar.bar_style = "success"


def quiet_stopped_cells() -> None:
    """Keep asyncio's "Task exception was never retrieved" off the terminal of a stopped run.

    A run stopped by Ctrl-C or SIGTERM leaves nbclient's cell task unawaited, and asyncio printed
    its DeadKernelError traceback as the process exited, after our one line. The run's own report
    and manifest say what happened. Called by the commands that execute notebooks in their own
    process (`wfo run`, `wfo rerun`) and by batch workers, never on import.
    """
    import logging

    logger = logging.getLogger("asyncio")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def quiet_library_logs() -> None:
    """Keep Papermill's and nbclient's log records off the terminal.

    They log through the ``papermill`` logger, which has no handler, so Python's last-resort
    handler printed lines such as "Kernel died while waiting for execute reply" beside our own
    one-line error. What they say is in the run's error (and so its log and manifest). Called by
    the CLI and by batch workers, never on import.
    """
    import logging

    for name in ("papermill", "traitlets", "nbclient"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
