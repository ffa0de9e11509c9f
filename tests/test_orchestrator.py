"""The orchestrator core: registry, the step wrapper (retry, fallback, classification), events."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from wfo_kit import pipeline
from wfo_kit.config import RetryPolicy, load_config
from wfo_kit.errors import (
    ConfigurationError,
    DataFormatError,
    ExecutionError,
    InfrastructureError,
)
from wfo_kit.observers import JsonlLog, Metrics, TerminalProgress, read_events
from wfo_kit.pipeline import (
    RunContext,
    backoff_wait,
    check_step_names,
    classify,
    run_pipeline,
    run_step,
)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def __call__(self, event: str, fields: dict) -> None:
        self.seen.append((event, fields.get("step")))


def test_events_arrive_in_order() -> None:
    recorder = Recorder()
    run_pipeline(RunContext(load_config(), observers=[recorder]))
    steps = ["load", "validate", "value", "output"]
    expected = [("run_started", None)]
    for step in steps:
        expected += [("step_started", step), ("step_finished", step)]
    expected.append(("run_finished", None))
    assert recorder.seen == expected


def test_unknown_step_is_a_configuration_error_with_suggestion() -> None:
    config = load_config(overrides={"pipeline": {"steps": ["load", "valdate"]}})
    with pytest.raises(ConfigurationError) as exc:
        check_step_names(config)
    assert (
        exc.value.message == "unknown step 'valdate' in pipeline.steps (did you mean 'validate'?)"
    )
    assert "known steps: load, load_fallback, validate, value, output" in exc.value.hint
    with pytest.raises(ConfigurationError, match="unknown step 'nope'"):
        run_step(RunContext(load_config()), "nope")


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch):
    calls = {"n": 0}

    def step(ctx: RunContext) -> dict[str, pl.DataFrame]:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError("disk briefly unavailable")  # classified retryable
        return {"flaky_out": pl.DataFrame({"x": [1, 2, 3]})}

    monkeypatch.setitem(pipeline.STEPS, "flaky", step)
    return calls


def test_retryable_step_fails_twice_then_succeeds(flaky: dict) -> None:
    waits: list[float] = []
    recorder = Recorder()
    config = load_config(overrides={"pipeline": {"retry": {"attempts": 3, "jitter": 0.0}}})
    ctx = RunContext(config, observers=[recorder], sleep=waits.append)
    run_step(ctx, "flaky")
    assert flaky["n"] == 3
    assert waits == [0.5, 1.0]  # exponential backoff
    assert [e for e in recorder.seen if e[0] == "step_retrying"] == [("step_retrying", "flaky")] * 2
    assert ctx["flaky_out"].height == 3
    finished = [e for e in ctx.events if e["event"] == "step_finished"][0]
    assert finished["attempts"] == 3


def test_retry_gives_up_after_the_configured_attempts(flaky: dict) -> None:
    config = load_config(overrides={"pipeline": {"step_retry": {"flaky": {"attempts": 2}}}})
    ctx = RunContext(config, sleep=lambda _s: None)
    with pytest.raises(InfrastructureError, match="disk briefly unavailable") as exc:
        run_step(ctx, "flaky")
    assert isinstance(exc.value.__cause__, OSError)
    assert flaky["n"] == 2
    assert ctx.errors[0]["class"] == "InfrastructureError"


def test_non_retryable_error_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def bad(ctx: RunContext) -> dict:
        calls["n"] += 1
        raise ValueError("a bug")

    monkeypatch.setitem(pipeline.STEPS, "bad", bad)
    ctx = RunContext(load_config(), sleep=lambda _s: None)
    with pytest.raises(ExecutionError, match="step 'bad' failed: ValueError: a bug"):
        run_step(ctx, "bad")
    assert calls["n"] == 1


def test_fallback_step_runs_when_the_step_fails(tmp_path: Path) -> None:
    sample = load_config().data.companies.path
    config = load_config(
        overrides={
            "data": {"companies": {"path": str(tmp_path / "gone.csv"), "fallback": sample}},
            "pipeline": {"fallbacks": {"load": "load_fallback"}},
        }
    )
    recorder = Recorder()
    ctx = RunContext(config, observers=[recorder])
    run_step(ctx, "load")
    assert ctx["input_companies"].height == 41
    assert ("step_failed", "load") in recorder.seen
    assert ("step_fell_back", "load") in recorder.seen
    assert ("step_finished", "load_fallback") in recorder.seen


def test_classification_keeps_the_cause() -> None:
    assert isinstance(classify(OSError("x"), step="s"), InfrastructureError)
    assert classify(OSError("x"), step="s").retryable
    assert isinstance(classify(pl.exceptions.ComputeError("x"), step="s"), DataFormatError)
    assert not classify(KeyError("x"), step="s").retryable
    original = DataFormatError("bad file")
    assert classify(original, step="load") is original
    assert original.step == "load"


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_seconds=1.0, multiplier=3.0, max_backoff_seconds=5.0, jitter=0.0)
    assert [backoff_wait(policy, a) for a in (1, 2, 3)] == [1.0, 3.0, 5.0]
    jittered = RetryPolicy(backoff_seconds=1.0, jitter=0.5)
    waits = [backoff_wait(jittered, 1) for _ in range(200)]
    assert min(waits) >= 0.5
    assert max(waits) <= 1.5
    assert len(set(waits)) > 1


def test_metrics_and_jsonl_log(tmp_path: Path) -> None:
    ctx = run_pipeline(RunContext(load_config(), run_dir=tmp_path))
    summary = ctx.metrics.summary()
    assert summary["status"] == "succeeded"
    assert summary["companies"] == 40
    assert summary["quality_score"] == pytest.approx(
        (41 + 320 + 36 + 360 - 4) / (41 + 320 + 36 + 360)  # C033 (r <= g) is no bad row
    )
    validate = next(s for s in summary["steps"] if s["step"] == "validate")
    assert validate["rows_in"] == validate["rows_out"] + validate["rows_quarantined"]
    events = read_events(tmp_path / "log.jsonl")
    assert [e["event"] for e in events][0] == "run_started"
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["metrics"]["status"] == "succeeded"
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"][0]["step"] == "load"


def test_terminal_progress_writes_one_line_when_not_a_terminal(tmp_path: Path) -> None:
    import io

    stream = io.StringIO()
    run_pipeline(RunContext(load_config(), observers=[TerminalProgress(4, stream=stream)]))
    assert stream.getvalue() == "wfo: 4/4 steps, done\n"


def test_read_events_skips_a_torn_last_line(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "log.jsonl")
    log("run_started", {"event": "run_started"})
    with (tmp_path / "log.jsonl").open("a") as handle:
        handle.write('{"event": "step_sta')
    assert [e["event"] for e in read_events(tmp_path / "log.jsonl")] == ["run_started"]


def test_metrics_error_rate_counts_failures() -> None:
    metrics = Metrics()
    metrics("run_started", {"time": 0.0})
    metrics("step_finished", {"step": "a", "seconds": 1.0, "attempts": 1})
    metrics("step_failed", {"step": "b"})
    assert metrics.summary()["error_rate"] == 0.5


def test_console_log_uses_levels(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from wfo_kit.observers import console_log

    caplog.set_level(logging.DEBUG, logger="wfo_kit")
    run_pipeline(RunContext(load_config(), observers=[console_log]))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("DEBUG", "step started load") in messages
    assert any(
        level == "INFO" and text.startswith("step finished validate in ")
        for level, text in messages
    )


@pytest.mark.parametrize(
    ("broken", "column", "message"),
    [
        (pl.col("value_per_share") * float("nan"), "value_per_share", "non-finite value"),
        (pl.col("low") + float("inf"), "low", "non-finite value"),
        (pl.lit("bogus"), "status", "breaks its schema at column 'status'"),
    ],
    ids=["nan", "infinity", "schema"],
)
def test_result_tables_are_checked_against_their_schema_in_every_run(
    monkeypatch: pytest.MonkeyPatch, broken: pl.Expr, column: str, message: str
) -> None:
    def value_then_break(ctx: RunContext) -> dict[str, pl.DataFrame]:
        produced = pipeline.value_step(ctx)
        produced["valuations"] = produced["valuations"].with_columns(broken.alias(column))
        return produced

    monkeypatch.setitem(pipeline.STEPS, "value", value_then_break)
    recorder = Recorder()
    ctx = RunContext(load_config(), observers=[recorder])
    with pytest.raises(ExecutionError, match=message) as exc:
        run_pipeline(ctx)
    assert (exc.value.table, exc.value.column, exc.value.step) == ("valuations", column, "value")
    assert "valuations" not in ctx.frames  # nothing of the broken step is passed on
    assert ("step_failed", "value") in recorder.seen


def test_the_configured_steps_are_the_pipeline_everywhere(tmp_path: Path) -> None:
    config = load_config(overrides={"pipeline": {"steps": ["load", "validate", "value"]}})
    recorder = Recorder()
    ctx = run_pipeline(RunContext(config, run_dir=tmp_path, observers=[recorder]))
    assert [s for e, s in recorder.seen if e == "step_finished"] == ["load", "validate", "value"]
    assert not (tmp_path / "results").exists()  # no output step configured: nothing written
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"][-1]["step"] == "value"
    assert "blend" in ctx.frames


def test_a_panic_in_native_code_is_an_internal_execution_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from polars.exceptions import PanicException

    def panics(ctx: RunContext) -> dict:
        raise PanicException("assertion failed: i < self.len()")

    monkeypatch.setitem(pipeline.STEPS, "panics", panics)
    recorder = Recorder()
    ctx = RunContext(load_config(), observers=[recorder], sleep=lambda _s: None)
    with pytest.raises(ExecutionError) as exc:
        run_step(ctx, "panics")
    assert exc.value.message == (
        "step 'panics': internal error in native code (Polars panic): "
        "assertion failed: i < self.len()"
    )
    assert isinstance(exc.value.__cause__, PanicException)
    assert not exc.value.retryable
    assert ("step_failed", "panics") in recorder.seen
    assert ctx.errors[0]["class"] == "ExecutionError"
    assert isinstance(classify(PanicException("x"), step="s"), ExecutionError)


def test_interrupts_are_not_classified(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(ctx: RunContext) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setitem(pipeline.STEPS, "interrupted", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_step(RunContext(load_config()), "interrupted")
