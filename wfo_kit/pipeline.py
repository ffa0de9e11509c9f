"""The pipeline: named step functions, one run context, one wrapper around every step.

A step is ``step(ctx) -> dict[str, DataFrame]``: it reads what earlier steps left in the context
and returns new frames, which the wrapper (:func:`run_step`) stores. The wrapper is the template
method of the architecture: it emits events to observers, times the step, counts rows in, out and
quarantined, retries retryable errors with exponential backoff and jitter, runs the configured
fallback step when the step still fails, and classifies any exception into the
:mod:`wfo_kit.errors` hierarchy. Before a step runs, the frames it needs (:data:`NEEDS`) must be
there (else :class:`~wfo_kit.errors.DependencyError`); validation below ``validation.fail_below``
stops the run (:class:`~wfo_kit.errors.DataQualityError`). The notebook calls :func:`run_step`
cell by cell; :func:`run_pipeline` runs the configured list of names.
"""

from __future__ import annotations

import functools
import random
import resource
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl
from polars.exceptions import PanicException

from wfo_kit.config import Config, RetryPolicy, require_tables
from wfo_kit.effects import report_columns, setting_effects
from wfo_kit.errors import (
    ConfigurationError,
    DataFormatError,
    DataQualityError,
    DependencyError,
    ExecutionError,
    InfrastructureError,
    ResourceError,
    WfoError,
    did_you_mean,
)
from wfo_kit.io import ROW, load_tables, read_table, write_json, write_results
from wfo_kit.observers import JsonlLog, Metrics
from wfo_kit.plugins import STEP_GROUP, plugin, plugin_names
from wfo_kit.schemas import INPUT_SCHEMAS, OUTPUT_SCHEMAS
from wfo_kit.trust import mask_frame
from wfo_kit.validate import keep_rows, spread_warnings, validate_tables
from wfo_kit.value import value_companies

StepFunction = Callable[["RunContext"], dict[str, pl.DataFrame]]


class Observer(Protocol):
    """Anything callable with an event name and its fields."""

    def __call__(self, event: str, fields: dict[str, Any]) -> None: ...


@dataclass
class RunContext:
    """Everything one run knows: its configuration, the frames each step produced, its events.

    With a ``run_dir``, events also go to ``run_dir/log.jsonl``.
    """

    config: Config
    run_dir: Path | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    written: dict[str, list[str]] = field(default_factory=dict)
    #: SHA-256 of each input table as the load step read it (see :func:`frame_sha256`).
    inputs_read: dict[str, str] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    #: Where each configuration value came from (``ResolvedConfig.sources``); None: unknown, and
    #: a value that differs from its default counts as set (see :mod:`wfo_kit.effects`).
    sources: dict[str, str] | None = None
    #: Frame name -> (provenance, the frame) as a cached step produced it (see :func:`cached`).
    provenance: dict[str, tuple[str, pl.DataFrame]] = field(default_factory=dict)
    #: Step -> its step-cache fields for ``step_finished`` (``cache``: memory, disk, miss, off).
    cache_outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep  # injectable, so retry tests need not wait

    def __post_init__(self) -> None:
        self.observers = [self.metrics, *self.observers]
        if self.run_dir is not None:
            self.run_dir = Path(self.run_dir)
            self.observers.append(JsonlLog(self.run_dir / "log.jsonl"))

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": time.time(), "run_id": self.run_id, **fields}
        self.events.append(record)
        for observer in self.observers:
            observer(event, record)

    def __getitem__(self, name: str) -> pl.DataFrame:
        try:
            return self.frames[name]
        except KeyError:
            msg = f"no frame {name!r} in this run yet{did_you_mean(name, list(self.frames))}"
            raise KeyError(msg) from None


# --------------------------------------------------------------------------------------------
# Steps


# The step cache (see :mod:`wfo_kit.cache`): a decorated function's frames are kept under a key
# over the configuration it reads and the content of its inputs. Load and validate are cached
# (reading and checking unchanged inputs again is the slow part of a re-run that changes only
# valuation settings); what depends on valuation settings is computed after, on every run.

#: Name of the small frame that carries ``inputs_read`` through the cache with the load's frames.
_INPUTS_READ = "_inputs_read"


def cached(
    step: str, *, key: Callable[[RunContext], dict[str, Any] | None]
) -> Callable[[StepFunction], StepFunction]:
    """Decorate ``fn(ctx) -> frames`` so its frames come from the step cache when ``key(ctx)``
    (the configuration and input digests the function reads; None: not cacheable) was seen.

    The step's ``step_finished`` event says ``cache``: ``memory`` or ``disk`` (a hit), ``miss``
    or ``off`` (disabled, or inputs not cacheable), with the key and the seconds spent in the
    cache. Each frame is stamped with its provenance, so a later cached step can key on what it
    reads without hashing frames.
    """

    def decorate(fn: StepFunction) -> StepFunction:
        @functools.wraps(fn)
        def through_cache(ctx: RunContext) -> dict[str, pl.DataFrame]:
            from wfo_kit import cache

            settings = ctx.config.cache
            start = time.perf_counter()
            material = key(ctx) if settings.enabled else None
            if material is None:
                ctx.cache_outcomes[step] = {"cache": "off"}
                return fn(ctx)
            digest = cache.step_key(step, material)
            hit = cache.lookup(digest, settings)
            if hit is None:
                frames = fn(ctx)
                cache.store(digest, frames, settings)
            else:
                frames = hit.frames
            ctx.cache_outcomes[step] = {
                "cache": "miss" if hit is None else hit.where,
                "cache_key": digest[:16],
                "cache_seconds": round(time.perf_counter() - start, 6),
            }
            for name, frame in frames.items():
                ctx.provenance[name] = (f"{digest}:{name}", frame)
            return frames

        return through_cache

    return decorate


def stamp_of(ctx: RunContext, name: str) -> str | None:
    """The provenance of frame ``name`` as a cached step left it; None once anything replaced it."""
    stamp = ctx.provenance.get(name)
    return stamp[0] if stamp is not None and ctx.frames.get(name) is stamp[1] else None


def sources_key(ctx: RunContext, *, fallback: bool = False) -> dict[str, Any] | None:
    """What the load step reads: the ``data`` section and the digest of each source."""
    from wfo_kit.cache import source_digest

    digests = {}
    for name in INPUT_SCHEMAS:
        source = getattr(ctx.config.data, name)
        if source is None:
            continue
        digest = source_digest(source.fallback or source if fallback else source)
        if digest is None:
            return None  # not there: the step fails with its own reason, nothing is cached
        digests[name] = digest
    return {"data": ctx.config.data.model_dump(mode="json"), "sources": digests}


@cached("load", key=sources_key)
def _read_inputs(ctx: RunContext) -> dict[str, pl.DataFrame]:
    tables = load_tables(ctx.config.data, security=ctx.config.security)
    return {f"input_{name}": frame for name, frame in tables.items()} | {
        _INPUTS_READ: _inputs_read_frame(tables)
    }


def _inputs_read_frame(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return pl.DataFrame(
        {"table": list(tables), "sha256": [frame_sha256(frame) for frame in tables.values()]},
        schema={"table": pl.String, "sha256": pl.String},
    )


def load_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    frames = _read_inputs(ctx)
    ctx.inputs_read = dict(frames.pop(_INPUTS_READ).iter_rows())
    return frames


def frame_sha256(frame: pl.DataFrame) -> str:
    """SHA-256 of a frame's content as read (columns, dtypes, values, row order).

    Recorded per input table in the run's manifest (``inputs_read``): what a run valued, whatever
    the source (a SQL query's result included), so two runs can be compared later.
    """
    import hashlib

    buffer = frame.rechunk().write_ipc(None, compression="uncompressed")
    return hashlib.sha256(buffer.getbuffer()).hexdigest()


@cached("load_fallback", key=functools.partial(sources_key, fallback=True))
def _read_fallbacks(ctx: RunContext) -> dict[str, pl.DataFrame]:
    require_tables(ctx.config.data)
    tables = {}
    for name in INPUT_SCHEMAS:
        source = getattr(ctx.config.data, name)
        if source is not None:
            tables[name] = read_table(
                source.fallback or source, table=name, security=ctx.config.security
            )
    return {f"input_{name}": frame for name, frame in tables.items()} | {
        _INPUTS_READ: _inputs_read_frame(tables)
    }


def load_fallback_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    """Like load, but each table with a ``fallback`` source is read from it instead."""
    frames = _read_fallbacks(ctx)
    ctx.inputs_read = dict(frames.pop(_INPUTS_READ).iter_rows())
    return frames


def checked_key(ctx: RunContext) -> dict[str, Any] | None:
    """What the table checks read: the loaded frames (by provenance) and the one valuation setting
    a rule uses; None when a frame did not come from a cached load (e.g. set by hand)."""
    inputs = {}
    for name in INPUT_SCHEMAS:
        if f"input_{name}" in ctx.frames:
            inputs[name] = stamp_of(ctx, f"input_{name}")
            if inputs[name] is None:
                return None
    return {"inputs": inputs, "reconcile_tolerance": ctx.config.valuation.asset.reconcile_tolerance}


@cached("validate", key=checked_key)
def _checked_inputs(ctx: RunContext) -> dict[str, pl.DataFrame]:
    """Which rows of each input are valid, quarantine and quality: what depends on the inputs
    alone. The valid rows are kept as one boolean per input row (``keep_<table>``), not as
    frames: a cache entry then costs a bit per row, and the valid frames are one filter away."""
    inputs = _inputs(ctx)
    checked = validate_tables(
        inputs, validation=ctx.config.validation, valuation=ctx.config.valuation
    )
    keep = {
        f"keep_{name}": pl.DataFrame({"keep": inputs[name][ROW].is_in(valid[ROW].implode())})
        for name, valid in checked.valid.items()
    }
    return {**keep, "quarantine": checked.quarantine, "quality": checked.quality}


def _inputs(ctx: RunContext) -> dict[str, pl.DataFrame]:
    return {n: ctx.frames[f"input_{n}"] for n in INPUT_SCHEMAS if f"input_{n}" in ctx.frames}


def validate_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    checked = _checked_inputs(ctx)
    valid = {
        name: keep_rows(frame, checked[f"keep_{name}"]["keep"])
        for name, frame in _inputs(ctx).items()
    }
    # Warnings and the quality bar read validation and valuation settings: every run.
    warnings = spread_warnings(valid.get("companies"), ctx.config.valuation, ctx.config.validation)
    check_quality(checked["quality"], fail_below=ctx.config.validation.fail_below)
    return {
        **valid,
        "quarantine": checked["quarantine"],
        "quality": checked["quality"],
        "warnings": warnings,
    }


def value_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    valid = {n: ctx.frames[n] for n in INPUT_SCHEMAS if n in ctx.frames}
    universe = ctx.frames["input_companies"]["company_id"]
    out = value_companies(
        valid,
        valuation=ctx.config.valuation,
        universe=universe,
        quarantine=ctx.frames["quarantine"],
        shock_cache=ctx.config.cache,
    )
    columns = {c for frame in (*ctx.frames.values(), *out.values()) for c in frame.columns}
    out["setting_effects"] = setting_effects(
        ctx.config,
        sources=ctx.sources,
        companies=valid["companies"],
        balance_sheet=valid.get("balance_sheet"),
        company_ids=universe.drop_nulls().to_list(),
        columns=columns | report_columns(ctx.config.valuation.methods),
    )
    return out


#: Result tables the output step writes, in this order, when present.
RESULT_TABLES = (
    "valuations", "blend", "dcf_detail", "fcff", "driver_forecast", "equity_bridge",
    "comparables_detail", "peer_multiples", "asset_lines", "asset_values",
    "liquidation_waterfall", "sensitivity", "scenarios", "scenario_summary", "simulation",
    "reverse_dcf", "quarantine", "quality", "warnings", "setting_effects",
    "ddm_detail", "fcfe_detail", "fcfe", "diagnostics", "accuracy", "dated_detail",
)  # fmt: skip


def output_step(ctx: RunContext) -> dict[str, pl.DataFrame]:
    if ctx.run_dir is None:
        return {}
    masked = ctx.config.report.masked_columns  # no file of the run holds a masked value
    frames = {
        name: mask_frame(ctx.frames[name], masked) for name in RESULT_TABLES if name in ctx.frames
    }
    ctx.written = write_results(frames, ctx.run_dir / "results", formats=ctx.config.output.formats)
    return {}


STEPS: dict[str, Callable[[RunContext], dict[str, pl.DataFrame]]] = {
    "load": load_step,
    "load_fallback": load_fallback_step,
    "validate": validate_step,
    "value": value_step,
    "output": output_step,
}
#: the built-in step names (a plug-in may not replace one: see wfo_kit.plugins)
BUILTIN_STEPS = tuple(STEPS)


def step_names() -> list[str]:
    """Built-in steps, then plug-in steps (registered in code or installed), for messages."""
    return [*STEPS, *(n for n in plugin_names(STEP_GROUP) if n not in STEPS)]


def step_function(name: str) -> Callable[[RunContext], dict[str, pl.DataFrame]] | None:
    """The step called ``name``: built-in or plug-in (None if unknown)."""
    return STEPS.get(name) or plugin(STEP_GROUP, name)


#: Frames each step reads, and the step that produces them; checked before the step runs.
NEEDS: dict[str, dict[str, str]] = {
    "value": {"input_companies": "load", "companies": "validate", "quarantine": "validate"},
}


def check_quality(quality: pl.DataFrame, *, fail_below: float) -> None:
    """Raise :class:`DataQualityError` when a table's score is below ``fail_below``.

    The score is valid rows / rows in, per table (the ``quality`` table of validation); the error
    names the worst table and carries the whole quality table in ``details``.
    """
    scored = quality.filter(pl.col("score").is_not_null())
    if scored.height == 0 or fail_below <= 0:
        return
    worst = scored.sort("score").row(0, named=True)
    if worst["score"] >= fail_below:
        return
    msg = (
        f"data quality {worst['score']:.3f} of table {worst['table']} is below "
        f"validation.fail_below {fail_below} ({worst['rows_quarantined']} of {worst['rows_in']} "
        "rows quarantined)"
    )
    raise DataQualityError(
        msg,
        step="validate",
        table=worst["table"],
        hint="see the quarantine table for the reasons, or lower validation.fail_below",
        details=quality,
    )


def check_dependencies(ctx: RunContext, name: str) -> None:
    """Raise :class:`DependencyError` when step ``name`` needs frames no earlier step produced."""
    needs = NEEDS.get(name, {})
    missing = [frame for frame in needs if frame not in ctx.frames]
    if not missing:
        return
    ran = {e.get("step") for e in ctx.events if e["event"] == "step_finished"}
    parts = []
    for producer in dict.fromkeys(needs[frame] for frame in missing):
        frames = ", ".join(repr(f) for f in missing if needs[f] == producer)
        if producer in ran:
            parts.append(f"{frames}, which step {producer!r} ran without producing")
        else:
            parts.append(f"{frames} from step {producer!r}: run {producer!r} first")
    msg = f"step {name!r} needs {'; and '.join(parts)}"
    raise DependencyError(
        msg,
        step=name,
        hint=f"frames in this run so far: {', '.join(ctx.frames) or 'none'}",
        details={"missing": missing, "producers": [needs[f] for f in missing]},
    )


def check_step_names(config: Config) -> list[str]:
    """The configured step list, every name checked against :data:`STEPS`."""
    pipeline = config.pipeline
    named = [
        ("pipeline.steps", pipeline.steps),
        ("pipeline.step_retry", list(pipeline.step_retry)),
        ("pipeline.fallbacks", [*pipeline.fallbacks, *pipeline.fallbacks.values()]),
    ]
    known = step_names()
    for where, names in named:
        for name in names:
            if name not in known:
                msg = f"unknown step {name!r} in {where}{did_you_mean(name, known)}"
                raise ConfigurationError(msg, column=where, hint=f"known steps: {', '.join(known)}")
    return list(pipeline.steps)


# --------------------------------------------------------------------------------------------
# The wrapper


def classify(exc: BaseException, *, step: str) -> WfoError:
    """Map any exception into the hierarchy, keeping the original as the cause."""
    if isinstance(exc, WfoError):
        exc.step = exc.step or step
        return exc
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, PanicException):
        # A Rust panic (a bug in native code, not in the data or the configuration) derives from
        # BaseException; it is reported as an internal error, never a retry.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
        msg = f"step {step!r}: internal error in native code (Polars panic): {first}"
        return ExecutionError(msg, step=step)
    if isinstance(exc, MemoryError):
        return ResourceError(f"step {step!r} ran out of memory", step=step)
    if isinstance(exc, OSError):
        return InfrastructureError(f"step {step!r}: {text}", step=step)
    if isinstance(exc, pl.exceptions.PolarsError):
        return DataFormatError(f"step {step!r}: {text}", step=step)
    return ExecutionError(f"step {step!r} failed: {text}", step=step)


def backoff_wait(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped, jittered."""
    base = min(
        policy.backoff_seconds * policy.multiplier ** (attempt - 1), policy.max_backoff_seconds
    )
    spread = base * policy.jitter
    return max(0.0, base + (rng or random).uniform(-spread, spread))


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _row_counts(name: str, ctx: RunContext, produced: dict[str, pl.DataFrame]) -> dict[str, Any]:
    inputs = sum(f.height for k, f in ctx.frames.items() if k.startswith("input_"))
    if name in {"load", "load_fallback"}:
        return {"rows_in": None, "rows_out": inputs, "rows_quarantined": 0}
    if name == "validate":
        quality = produced["quality"]
        return {
            "rows_in": int(quality["rows_in"].sum()),
            "rows_out": int(quality["rows_valid"].sum()),
            "rows_quarantined": int(quality["rows_quarantined"].sum()),
            "quality_score": float(quality["rows_valid"].sum() / max(quality["rows_in"].sum(), 1)),
        }
    if name == "value" and "valuations" in produced:
        valuations = produced["valuations"]
        return {
            "rows_in": ctx.frames["companies"].height if "companies" in ctx.frames else None,
            "rows_out": int((valuations["status"] == "valued").sum()),
            "rows_quarantined": int((valuations["status"] == "excluded").sum()),
            "companies": valuations["company_id"].n_unique(),
        }
    if name == "output":
        return {
            "rows_in": None,
            "rows_out": sum(len(v) for v in ctx.written.values()),
            "rows_quarantined": 0,
        }
    return {
        "rows_in": None,
        "rows_out": sum(f.height for f in produced.values()),
        "rows_quarantined": 0,
    }


def _attempt(ctx: RunContext, name: str) -> tuple[dict[str, pl.DataFrame], int]:
    config = ctx.config.pipeline
    policy = config.step_retry.get(name, config.retry)
    attempt = 1
    while True:
        try:
            return step_function(name)(ctx), attempt  # type: ignore[misc]
        except (Exception, PanicException) as exc:  # a panic is a BaseException, not an Exception
            error = classify(exc, step=name)
            if not error.retryable or attempt >= policy.attempts:
                if error.retryable and attempt > 1:
                    error.message = f"{error.message} (gave up after {attempt} attempts)"
                    error.args = (error.message, *error.args[1:])
                if error is not exc:
                    raise error from exc
                raise
            wait = backoff_wait(policy, attempt)
            after = error.details.get("retry_after") if isinstance(error.details, dict) else None
            if after is not None:  # a server's Retry-After (HTTP 429/503), up to the policy's cap
                wait = max(wait, min(after, policy.max_backoff_seconds))
            ctx.emit("step_retrying", step=name, attempt=attempt, wait=wait, error=error.to_dict())
            ctx.sleep(wait)
            attempt += 1


def run_step(ctx: RunContext, name: str) -> RunContext:
    """Run one named step through the wrapper; return the same context, updated."""
    if name not in STEPS and step_function(name) is None:
        known = step_names()
        msg = f"unknown step {name!r}{did_you_mean(name, known)}"
        raise ConfigurationError(msg, step=name, hint=f"known steps: {', '.join(known)}")
    ctx.emit("step_started", step=name)
    start = time.perf_counter()
    try:
        check_dependencies(ctx, name)
        produced, attempts = _attempt(ctx, name)
    except WfoError as error:
        ctx.emit("step_failed", step=name, error=error.to_dict())
        ctx.errors.append(error.to_dict())
        fallback = ctx.config.pipeline.fallbacks.get(name)
        if fallback is None or fallback == name:
            raise
        ctx.emit("step_fell_back", step=name, fallback=fallback, error=error.to_dict())
        return run_step(ctx, fallback)
    try:
        check_results(produced, step=name)
    except WfoError as error:
        ctx.emit("step_failed", step=name, error=error.to_dict())
        ctx.errors.append(error.to_dict())
        raise
    seconds = time.perf_counter() - start
    ctx.frames.update(produced)
    counts = _row_counts(name, ctx, produced)
    ctx.emit(
        "step_finished",
        step=name,
        seconds=seconds,
        attempts=attempts,
        **ctx.cache_outcomes.pop(name, {}),
        max_rss_mb=round(_max_rss_mb(), 1),
        **counts,
    )
    return ctx


def check_results(produced: dict[str, pl.DataFrame], *, step: str) -> None:
    """Every result table a step produced against its output schema, in every run.

    A violation is a bug in a step, not bad input: the run fails with
    :class:`~wfo_kit.errors.ExecutionError` naming the table and column. Money and rates must be
    finite or null: a value that cannot be computed is null with a reason, never NaN or infinity.
    """
    import pandera.polars as pa

    for table, frame in produced.items():
        schema = OUTPUT_SCHEMAS.get(table)
        if schema is None:
            continue
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            case = exc.failure_cases.row(0, named=True)
            msg = (
                f"result table {table!r} breaks its schema at column {case['column']!r}: "
                f"{case['check']} failed for {case['failure_case']!r} (a bug in step {step!r})"
            )
            raise ExecutionError(
                msg, step=step, table=table, column=case["column"], details=exc.failure_cases
            ) from exc
        floats = [c for c, t in frame.schema.items() if t.is_float()]
        if not floats:
            continue
        counts = frame.select(
            (pl.col(c).is_nan() | pl.col(c).is_infinite()).sum().alias(c) for c in floats
        ).row(0, named=True)
        for column, count in counts.items():
            if count:
                msg = (
                    f"result table {table!r} has {count} non-finite value(s) in column "
                    f"{column!r}: a value that cannot be computed must be null with a reason "
                    f"(a bug in step {step!r})"
                )
                raise ExecutionError(msg, step=step, table=table, column=column)


def run_steps(ctx: RunContext, steps: list[str] | tuple[str, ...] | None = None) -> RunContext:
    """Run the named steps (default: the configured ``pipeline.steps``) in order.

    This is the one definition of the pipeline: the library, the report notebook and the CLI all
    run the configured list through it.
    """
    names = list(steps) if steps is not None else check_step_names(ctx.config)
    for name in names:
        run_step(ctx, name)
    return ctx


def run_pipeline(ctx: RunContext, steps: list[str] | tuple[str, ...] | None = None) -> RunContext:
    """A whole run: ``run_started``, the steps (default: ``config.pipeline.steps``), then
    :func:`finish_run`."""
    names = list(steps) if steps is not None else check_step_names(ctx.config)
    ctx.emit("run_started", steps=names)
    try:
        run_steps(ctx, names)
    except WfoError as exc:
        ctx.emit("run_failed", error=exc.to_dict())
        raise
    return finish_run(ctx)


def start_run(
    config: Config,
    *,
    run_dir: str | Path | None = None,
    run_id: str | None = None,
    interactive: bool = False,
    observers: list[Observer] | None = None,
    sources: dict[str, str] | None = None,
) -> RunContext:
    """A new run context that has announced itself (``run_started``).

    ``interactive`` adds an ipywidgets progress bar (for JupyterLab, not for published reports).
    ``sources`` says where each configuration value came from (for the settings' effects).
    """
    extra = list(observers or [])
    if interactive:
        from wfo_kit.observers import NotebookProgress

        extra.append(NotebookProgress(total=len(config.pipeline.steps)))
    ctx = RunContext(
        config,
        run_dir=Path(run_dir) if run_dir else None,
        run_id=run_id or uuid.uuid4().hex[:12],
        observers=extra,
        sources=sources,
    )
    ctx.emit("run_started", steps=check_step_names(config))
    return ctx


def finish_run(ctx: RunContext) -> RunContext:
    """Announce the end of a run (``run_finished``) with its metrics; with a ``run_dir``, write
    them to ``metrics.json`` (step timings and row counts, data quality)."""
    ctx.emit("run_finished", metrics=ctx.metrics.summary(status="succeeded"))
    if ctx.run_dir is not None:
        quality = ctx.frames["quality"].to_dicts() if "quality" in ctx.frames else None
        effects = ctx.frames.get("setting_effects")
        if effects is None:  # the value step did not run: what the configuration alone decides
            effects = setting_effects(ctx.config, sources=ctx.sources)
        metrics = {
            "steps": ctx.metrics.steps,
            "quality": quality,
            "inputs_read": ctx.inputs_read,
            "setting_effects": effects.to_dicts(),
        }
        write_json(ctx.run_dir / "metrics.json", metrics)
    return ctx
