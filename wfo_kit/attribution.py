"""Why a blended value moved between two runs: sequential attribution.

The change in each company's blended value per share (run A -> run B) is split into its causes by
re-valuing with the library's own steps (:func:`wfo_kit.validate.validate_tables`, then
:func:`wfo_kit.value.value_companies`, exactly as the pipeline's validate and value steps call
them) while the differences between the runs are applied one at a time, in this order
(:data:`ORDER`, documented in docs/conventions.md):

1. **input tables**, in the data contract's order (companies, financials, peers, balance_sheet):
   each table whose content differs is replaced by run B's;
2. **parameters**: each differing setting of ``valuation`` and ``validation`` (one leaf each,
   e.g. ``valuation.discount_rate``; a list such as ``valuation.methods`` is one setting), in
   alphabetical order of its key, except the blend weights; a change that on its own makes an
   invalid configuration (``terminal: exit_multiple`` before its multiple) is applied together
   with the next one, and named ``a + b``;
3. **method weights** (``valuation.blend``), last.

Each part is the value after the step minus the value before it, so the parts telescope to the
total. Values are compared in whole cents (rounded half to even), so the parts sum *exactly* to the
total change in cents. Sensitivity grids, scenarios and Monte Carlo never enter the blend, so
they are switched off in the re-valuation (their settings' parts are 0).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from pydantic import ValidationError as PydanticValidationError

from wfo_kit.config import ValidationConfig, ValuationConfig, _flatten
from wfo_kit.errors import ConfigurationError, DataError
from wfo_kit.schemas import INPUT_SCHEMAS

#: The order in which differences are applied (see the module docstring).
ORDER = ("input tables", "parameters", "method weights")
#: Configuration sections that can change a value (data is compared as table content).
VALUE_SECTIONS = ("validation", "valuation")
_BLEND = "valuation.blend"
# Risk analyses do not enter the blend: off in the re-valuation, which is then about 10x faster.
_RISK_OFF = {"sensitivity": {"enabled": False}, "monte_carlo": {"enabled": False}}
_MISSING = object()


@dataclass(frozen=True)
class Step:
    """One cause: its label, kind (input, parameter, weights) and what it changes."""

    cause: str
    kind: str
    tables: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


def blended_values(
    tables: dict[str, pl.DataFrame], *, validation: ValidationConfig, valuation: ValuationConfig
) -> pl.DataFrame:
    """company_id, base: the blended value per share, re-valued through validate and value."""
    from wfo_kit.validate import validate_tables
    from wfo_kit.value import value_companies

    valuation = valuation.model_copy(
        update={
            "sensitivity": valuation.sensitivity.model_copy(update={"enabled": False}),
            "monte_carlo": valuation.monte_carlo.model_copy(update={"enabled": False}),
            "scenarios": [],
        }
    )
    checked = validate_tables(tables, validation=validation, valuation=valuation)
    out = value_companies(
        checked.valid,
        valuation=valuation,
        universe=tables["companies"]["company_id"],
        quarantine=checked.quarantine,
    )
    return out["blend"].select("company_id", "base")


def plan_steps(
    tables_a: dict[str, pl.DataFrame],
    tables_b: dict[str, pl.DataFrame],
    settings_a: dict[str, Any],
    settings_b: dict[str, Any],
) -> list[Step]:
    """The differences between two runs as single steps, in :data:`ORDER`.

    ``settings_*`` hold the ``validation`` and ``valuation`` sections as plain data.
    """
    steps = [
        Step(f"input: {name}", "input", tables=(name,))
        for name in INPUT_SCHEMAS
        if not _same_table(tables_a.get(name), tables_b.get(name))
    ]
    flat_a, flat_b = _flatten(settings_a), _flatten(settings_b)
    changed = sorted(
        k for k in set(flat_a) | set(flat_b) if flat_a.get(k, _MISSING) != flat_b.get(k, _MISSING)
    )
    steps += [Step(k, "parameter", keys=(k,)) for k in changed if not _is_blend(k)]
    weights = tuple(k for k in changed if _is_blend(k))
    if weights:
        steps.append(Step("method weights", "weights", keys=weights))
    return steps


def _is_blend(key: str) -> bool:
    return key == _BLEND or key.startswith(_BLEND + ".")


def _same_table(a: pl.DataFrame | None, b: pl.DataFrame | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.schema == b.schema and a.equals(b)


def attribute(
    tables_a: dict[str, pl.DataFrame],
    tables_b: dict[str, pl.DataFrame],
    settings_a: dict[str, Any],
    settings_b: dict[str, Any],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split each company's change in blended value (A -> B) into its causes.

    Returns ``(parts, values)``. ``parts``: one row per company and cause: ``step`` (1, 2, ...
    in :data:`ORDER`), ``cause``, ``kind``, ``change`` (per share, in whole cents); null where a
    company has no blended value before or after that step (``note`` says which). ``values``:
    company_id, ``base_a`` and ``base_b`` re-valued, ``change`` (cents), ``note``. For every
    company valued in both runs and at every step, the parts sum exactly to ``change``.
    """
    states = _states(tables_a, tables_b, settings_a, settings_b)
    frames = [values for _, values in states]
    ids = pl.concat([f["company_id"] for f in frames]).unique().sort()
    cents = np.column_stack([_cents(f, ids) for f in frames])  # companies x (steps + 1)
    parts_cents = np.diff(cents, axis=1)
    rows = []
    for i, (step, _) in enumerate(states[1:]):
        rows.append(
            pl.DataFrame(
                {
                    "company_id": ids,
                    "step": i + 1,
                    "cause": step.cause,
                    "kind": step.kind,
                    "change": parts_cents[:, i] / 100.0,
                }
            )
        )
    schema = {"company_id": pl.String, "step": pl.Int32, "cause": pl.String, "kind": pl.String,
              "change": pl.Float64}  # fmt: skip
    parts = (
        pl.concat(rows).cast(schema).with_columns(pl.col("change").fill_nan(None))
        if rows
        else pl.DataFrame(schema=schema)
    )
    gaps = _gaps(cents, [s.cause for s, _ in states])
    values = pl.DataFrame(
        {
            "company_id": ids,
            "base_a": cents[:, 0] / 100.0,
            "base_b": cents[:, -1] / 100.0,
            "change": (cents[:, -1] - cents[:, 0]) / 100.0,
            "note": gaps,
        },
        schema_overrides={"note": pl.String},
    ).with_columns(pl.col(c).fill_nan(None) for c in ("base_a", "base_b", "change"))
    return parts.sort("company_id", "step"), values


def _cents(values: pl.DataFrame, ids: pl.Series) -> np.ndarray:
    """Blended values of ``ids`` in whole cents (NaN where a company has none)."""
    joined = pl.DataFrame({"company_id": ids}).join(
        values, on="company_id", how="left", maintain_order="left"
    )
    base = joined["base"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return np.round(base * 100.0)


def _gaps(cents: np.ndarray, labels: list[str]) -> list[str | None]:
    """Per company: why its parts are not all defined (no value in a run, or after a step)."""
    notes: list[str | None] = []
    for row in np.isnan(cents):
        if not row.any():
            notes.append(None)
        elif row[0] and row[-1]:
            notes.append("no blended value in either run")
        elif row[0]:
            notes.append("no blended value in run A")
        elif row[-1]:
            notes.append("no blended value in run B")
        else:
            first = labels[int(np.argmax(row))]
            notes.append(f"no blended value after {first}: its parts are not defined")
    return notes


def _states(
    tables_a: dict[str, pl.DataFrame],
    tables_b: dict[str, pl.DataFrame],
    settings_a: dict[str, Any],
    settings_b: dict[str, Any],
) -> list[tuple[Step, pl.DataFrame]]:
    """Blended values at the start and after each (group of) step(s)."""
    tables, settings = dict(tables_a), copy.deepcopy(settings_a)
    start = Step("run A", "start")
    states = [(start, _revalue(tables, settings))]
    pending: list[Step] = []
    steps = plan_steps(tables_a, tables_b, settings_a, settings_b)
    flat_b = _flatten(settings_b)
    for position, step in enumerate(steps):
        for name in step.tables:
            if name in tables_b:
                tables[name] = tables_b[name]
            else:
                tables.pop(name, None)
        for key in step.keys:
            _set_path(settings, key, flat_b.get(key, _MISSING))
        pending.append(step)
        last = position == len(steps) - 1
        try:
            values = _revalue(tables, settings)
        except (PydanticValidationError, ConfigurationError):
            if last:
                raise
            continue  # invalid alone: applied together with the next change
        states.append((_merge(pending), values))
        pending = []
    return states


def _merge(steps: list[Step]) -> Step:
    if len(steps) == 1:
        return steps[0]
    kinds = {s.kind for s in steps}
    return Step(
        " + ".join(s.cause for s in steps),
        kinds.pop() if len(kinds) == 1 else "combined",
        tables=tuple(t for s in steps for t in s.tables),
        keys=tuple(k for s in steps for k in s.keys),
    )


def _revalue(tables: dict[str, pl.DataFrame], settings: dict[str, Any]) -> pl.DataFrame:
    return blended_values(
        tables,
        validation=ValidationConfig.model_validate(settings.get("validation") or {}),
        valuation=ValuationConfig.model_validate(settings.get("valuation") or {}),
    )


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or, for ``_MISSING``, remove) one leaf of a nested dict by its dotted key."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            if value is _MISSING:
                return
            child = node[part] = {}
        node = child
    if value is _MISSING:
        node.pop(leaf, None)
    else:
        node[leaf] = copy.deepcopy(value)


def value_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The sections of a run's recorded configuration that can change a value."""
    return {s: copy.deepcopy(config.get(s) or {}) for s in VALUE_SECTIONS}


# --------------------------------------------------------------------------------------------
# From run folders: each run's recorded inputs and effective configuration


@dataclass(frozen=True)
class Attribution:
    """The outcome for two runs: the parts, or why there are none (``reason``)."""

    parts: pl.DataFrame | None
    values: pl.DataFrame | None
    reason: str | None = None


def run_inputs(manifest: dict[str, Any], label: str) -> dict[str, pl.DataFrame]:
    """The input tables a run read, loaded again and checked against its manifest.

    Raises :class:`~wfo_kit.errors.DataError` naming the tables whose source changed since the
    run (their recorded SHA-256 differs from the file's now): re-valuing them would attribute
    the edit of a file to the wrong run.
    """
    from wfo_kit.config import MASK, Config
    from wfo_kit.io import load_tables
    from wfo_kit.pipeline import frame_sha256
    from wfo_kit.runs import source_sha256

    config = manifest.get("config")
    if not isinstance(config, dict) or not manifest.get("inputs_sha256"):
        msg = f"run {label} has no recorded configuration and input hashes"
        raise DataError(msg)
    if MASK in json.dumps(config.get("data")):
        msg = f"run {label} read a database whose URL held a literal password, which no file keeps"
        raise DataError(msg)
    try:
        data = Config.model_validate({"data": config.get("data") or {}}).data
    except PydanticValidationError as exc:
        msg = f"run {label}'s data sources are not valid for this wfo_kit: {exc}".splitlines()[0]
        raise DataError(msg) from exc
    recorded = manifest["inputs_sha256"]
    changed = []
    for name, source in data:
        if source is not None and recorded.get(name) != source_sha256(source):
            changed.append(name)
    if changed:
        msg = (
            f"the input files of run {label} changed since it ran ({', '.join(changed)}): its "
            "values cannot be re-created, so the change is not attributed"
        )
        raise DataError(msg)
    tables = load_tables(data)
    read = manifest.get("inputs_read") or {}
    differ = [n for n, f in tables.items() if n in read and read[n] != frame_sha256(f)]
    if differ:
        msg = (
            f"run {label} read other content than its sources hold now ({', '.join(differ)}: a "
            "fallback source?), so the change is not attributed"
        )
        raise DataError(msg)
    return tables


def attribute_runs(
    manifests: tuple[dict[str, Any], dict[str, Any]],
    recorded: tuple[pl.DataFrame | None, pl.DataFrame | None],
    labels: tuple[str, str],
) -> Attribution:
    """Attribute the change between two runs from their manifests and recorded blends.

    Each run is re-valued from its recorded inputs and configuration first; if that does not
    give back its recorded blended values (to the cent), nothing is attributed and the reason
    says which company differs (a run made by another wfo_kit version, for instance).
    """
    try:
        tables = [run_inputs(m, label) for m, label in zip(manifests, labels, strict=True)]
        settings = [value_settings(m["config"]) for m in manifests]
        parts, values = attribute(tables[0], tables[1], settings[0], settings[1])
    except (DataError, ConfigurationError) as exc:
        return Attribution(None, None, exc.message)
    except PydanticValidationError as exc:  # a configuration this wfo_kit no longer accepts
        first = str(exc).splitlines()[0]
        return Attribution(None, None, f"a run's configuration is not valid here: {first}")
    for column, blend, label in zip(("base_a", "base_b"), recorded, labels, strict=True):
        problem = _reproduces(values.select("company_id", column), blend, label)
        if problem:
            return Attribution(None, None, problem)
    return Attribution(parts, values)


def _reproduces(values: pl.DataFrame, blend: pl.DataFrame | None, label: str) -> str | None:
    if blend is None:
        return f"run {label} has no recorded blend (results/blend.parquet)"
    column = values.columns[1]
    joined = values.join(
        blend.select("company_id", (pl.col("base") * 100).round().alias("recorded")),
        on="company_id",
        how="full",
        coalesce=True,
    ).with_columns((pl.col(column) * 100).round().alias("now"))
    off = joined.filter(~pl.col("now").eq_missing(pl.col("recorded")))
    if off.height == 0:
        return None
    row = off.row(0, named=True)
    recorded = "none" if row["recorded"] is None else f"{row['recorded'] / 100:.2f}"
    now = "none" if row["now"] is None else f"{row['now'] / 100:.2f}"
    return (
        f"re-valuing run {label} from its recorded inputs and configuration does not give its "
        f"recorded blended values ({row['company_id']}: {recorded} recorded, {now} now; "
        f"{off.height} companies differ): was it valued by another wfo_kit version? "
        "Nothing is attributed"
    )
