"""The pipeline: named step functions, one run context, one wrapper around every step.

A step is ``step(ctx) -> dict[str, DataFrame]``: it reads what earlier steps left in the context
and returns new frames, which the wrapper (:func:`run_step`) stores. The wrapper times the step,
emits events to observers and classifies any exception into the :mod:`wfo_kit.errors` hierarchy.
The notebook calls :func:`run_step` cell by cell; :func:`run_pipeline` runs a list of names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from wfo_kit.config import Config
from wfo_kit.errors import ConfigurationError, ExecutionError, WfoError, did_you_mean
from wfo_kit.io import load_tables, write_json, write_results
from wfo_kit.schemas import INPUT_SCHEMAS
from wfo_kit.validate import validate_tables
from wfo_kit.value import value_companies


class Observer(Protocol):
    """Anything callable with an event name and its fields."""

    def __call__(self, event: str, fields: dict[str, Any]) -> None: ...


@dataclass
class RunContext:
    """Everything one run knows: its configuration, the frames each step produced, its events."""

    config: Config
    run_dir: Path | None = None
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)
    written: dict[str, list[str]] = field(default_factory=dict)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": time.time(), **fields}
        self.events.append(record)
        for observer in self.observers:
            observer(event, record)

    def __getitem__(self, name: str) -> pl.DataFrame:
        try:
            return self.frames[name]
        except KeyError:
            msg = f"no frame {name!r} in this run yet{did_you_mean(name, list(self.frames))}"
            raise KeyError(msg) from None


def load_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    tables = load_tables(ctx.config.data)
    return {f"input_{name}": frame for name, frame in tables.items()}


def validate_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    inputs = {n: ctx.frames[f"input_{n}"] for n in INPUT_SCHEMAS if f"input_{n}" in ctx.frames}
    checked = validate_tables(
        inputs, validation=ctx.config.validation, valuation=ctx.config.valuation
    )
    return {
        **checked.valid,
        "quarantine": checked.quarantine,
        "quality": checked.quality,
        "warnings": checked.warnings,
    }


def value_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    valid = {n: ctx.frames[n] for n in INPUT_SCHEMAS if n in ctx.frames}
    return value_companies(
        valid,
        valuation=ctx.config.valuation,
        universe=ctx.frames["input_companies"]["company_id"],
        quarantine=ctx.frames["quarantine"],
    )


#: Result tables the output step writes, in this order, when present.
RESULT_TABLES = (
    "valuations",
    "blend",
    "dcf_detail",
    "fcff",
    "driver_forecast",
    "equity_bridge",
    "comparables_detail",
    "peer_multiples",
    "asset_lines",
    "asset_values",
    "liquidation_waterfall",
    "sensitivity",
    "scenarios",
    "scenario_summary",
    "simulation",
    "reverse_dcf",
    "quarantine",
    "quality",
    "warnings",
)


def output_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    if ctx.run_dir is None:
        return {}
    frames = {name: ctx.frames[name] for name in RESULT_TABLES if name in ctx.frames}
    ctx.written = write_results(frames, ctx.run_dir / "results", formats=ctx.config.output.formats)
    quality = ctx.frames["quality"].to_dicts() if "quality" in ctx.frames else None
    write_json(ctx.run_dir / "metrics.json", {"steps": ctx.metrics, "quality": quality})
    return {}


STEPS: dict[str, Callable[[RunContext], dict[str, pl.DataFrame]]] = {
    "load": load_step,
    "validate": validate_step,
    "value": value_step,
    "output": output_step,
}

DEFAULT_STEPS = ("load", "validate", "value", "output")


def run_step(ctx: RunContext, name: str) -> RunContext:
    """Run one named step through the wrapper; return the same context, updated."""
    if name not in STEPS:
        msg = f"unknown step {name!r}{did_you_mean(name, list(STEPS))}"
        raise ConfigurationError(msg, step=name, hint=f"known steps: {', '.join(STEPS)}")
    ctx.emit("step_started", step=name)
    start = time.perf_counter()
    try:
        produced = STEPS[name](ctx)
    except WfoError as exc:
        exc.step = exc.step or name
        ctx.emit("step_failed", step=name, error=exc.to_dict())
        raise
    except Exception as exc:
        error = ExecutionError(f"step {name!r} failed: {type(exc).__name__}: {exc}", step=name)
        ctx.emit("step_failed", step=name, error=error.to_dict())
        raise error from exc
    seconds = time.perf_counter() - start
    ctx.frames.update(produced)
    rows = {key: frame.height for key, frame in produced.items()}
    ctx.metrics.append({"step": name, "seconds": seconds, "rows_out": rows})
    ctx.emit("step_finished", step=name, seconds=seconds, rows_out=rows)
    return ctx


def run_pipeline(ctx: RunContext, steps: tuple[str, ...] | list[str] = DEFAULT_STEPS) -> RunContext:
    """Run the named steps in order."""
    ctx.emit("run_started", steps=list(steps))
    try:
        for name in steps:
            run_step(ctx, name)
    except Exception as exc:
        ctx.emit("run_failed", error=str(exc))
        raise
    ctx.emit("run_finished")
    return ctx
