"""OpenTelemetry traces of runs: one span per run, one child span per step (the ``otel`` extra).

:func:`trace_events` turns a run's events (``log.jsonl``, or ``RunContext.events``) into spans
with the times the events recorded, so the steps that ran inside the notebook's kernel are traced
as exactly as those of the calling process. ``wfo run`` calls it at the end of each run when
``opentelemetry`` is installed; spans go to the globally configured tracer provider (set up by the
application, or by ``opentelemetry-instrument`` from the ``OTEL_*`` environment variables), which
is a no-op until one is configured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Step figures copied onto the step's span as ``wfo.<name>`` attributes.
STEP_ATTRIBUTES = ("seconds", "attempts", "rows_in", "rows_out", "rows_quarantined",
                   "max_rss_mb", "quality_score", "companies")  # fmt: skip


def _ns(fields: dict[str, Any]) -> int | None:
    stamp = fields.get("time")
    return int(float(stamp) * 1e9) if isinstance(stamp, int | float) else None


def trace_events(events: Iterable[dict[str, Any]], tracer: Any = None) -> int:
    """Spans for one run's events; returns how many were made.

    ``tracer`` defaults to ``opentelemetry.trace.get_tracer("wfo_kit")``. A step that failed gets
    an error status and its message; retries and fallbacks are span events.
    """
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    tracer = tracer or trace.get_tracer("wfo_kit")
    events = list(events)
    if not events:
        return 0
    first = events[0]
    root = tracer.start_span(
        "wfo.run", start_time=_ns(first), attributes={"wfo.run_id": str(first.get("run_id", ""))}
    )
    # `wfo run` logs its own steps (report, publish) around the kernel's run, which announces
    # itself too: the run ends at the last run_finished/run_failed, and a step that starts while
    # another is open (the kernel's steps inside `report`) is its child.
    open_steps: dict[str, Any] = {}
    made, ended = 1, None
    for fields in events:
        event, step, at = str(fields.get("event", "")), fields.get("step"), _ns(fields)
        if event == "step_started" and step:
            parent = list(open_steps.values())[-1] if open_steps else root
            open_steps[step] = tracer.start_span(
                f"wfo.step.{step}", context=trace.set_span_in_context(parent), start_time=at,
                attributes={"wfo.step": str(step)},
            )  # fmt: skip
            made += 1
        elif event in ("step_finished", "step_failed") and step in open_steps:
            span = open_steps.pop(step)
            for key in STEP_ATTRIBUTES:
                if isinstance(fields.get(key), int | float):
                    span.set_attribute(f"wfo.{key}", fields[key])
            if event == "step_failed":
                message = (fields.get("error") or {}).get("message", "")
                span.set_status(Status(StatusCode.ERROR, message))
            span.end(end_time=at)
        elif event in ("step_retrying", "step_fell_back") and step in open_steps:
            attributes = {k: str(v) for k, v in fields.items() if k in ("attempt", "fallback")}
            open_steps[step].add_event(event, attributes=attributes, timestamp=at)
        elif event in ("run_finished", "run_failed"):
            ended = fields
    end = _ns(ended) if ended else _ns(events[-1])
    for span in reversed(open_steps.values()):  # a step that never reported its end
        span.end(end_time=end)
    if ended is not None and ended.get("event") == "run_failed":
        message = (ended.get("error") or {}).get("message", "")
        root.set_status(Status(StatusCode.ERROR, message))
    root.end(end_time=end)
    return made
