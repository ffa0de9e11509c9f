"""OpenTelemetry spans from the real pipeline's events, read back from the SDK's memory exporter."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfo_kit.config import load_config
from wfo_kit.errors import WfoError
from wfo_kit.pipeline import RunContext, run_pipeline, run_steps

sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from wfo_kit.tracing import trace_events  # noqa: E402

QUICK = {"valuation": {"monte_carlo": {"enabled": False}, "sensitivity": {"enabled": False}}}


@pytest.fixture
def exporter() -> tuple[InMemorySpanExporter, object]:
    memory = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory, provider.get_tracer("test")


def test_one_span_per_step_under_the_run_with_the_step_figures(exporter: tuple) -> None:
    memory, tracer = exporter
    ctx = run_pipeline(RunContext(load_config(overrides=QUICK), run_id="r1"), ["load", "validate"])
    assert trace_events(ctx.events, tracer) == 3
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert set(spans) == {"wfo.run", "wfo.step.load", "wfo.step.validate"}
    run = spans["wfo.run"]
    assert run.attributes["wfo.run_id"] == "r1"
    for name in ("wfo.step.load", "wfo.step.validate"):
        assert spans[name].parent.span_id == run.context.span_id
        assert run.start_time <= spans[name].start_time <= spans[name].end_time <= run.end_time
    validate = spans["wfo.step.validate"]
    finished = next(
        e for e in ctx.events if e["event"] == "step_finished" and e["step"] == "validate"
    )
    assert validate.attributes["wfo.rows_quarantined"] == finished["rows_quarantined"] > 0
    assert validate.end_time == int(finished["time"] * 1e9)  # the time the event recorded


def test_failed_steps_are_errors_and_inner_steps_nest(exporter: tuple, tmp_path: Path) -> None:
    memory, tracer = exporter
    config = load_config(overrides={"data": {"companies": str(tmp_path / "missing.csv")}})
    ctx = RunContext(config, run_id="r2")
    ctx.emit("run_started", steps=["report"])
    ctx.emit("step_started", step="report")  # as `wfo run` logs around the kernel's steps
    with pytest.raises(WfoError):
        run_steps(ctx, ["load"])
    ctx.emit("step_failed", step="report", error={"message": "cell raised"})
    ctx.emit("run_failed", error={"message": "cell raised"})
    trace_events(ctx.events, tracer)
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert spans["wfo.step.load"].parent.span_id == spans["wfo.step.report"].context.span_id
    assert spans["wfo.step.load"].status.status_code is StatusCode.ERROR
    assert "missing.csv" in spans["wfo.step.load"].status.description
    assert spans["wfo.run"].status.status_code is StatusCode.ERROR
