"""The validate step: Pandera schemas plus named business rules, quarantine and quality.

Every input row ends up either valid (passed on) or quarantined with a reason; for every table
``rows_in == rows_valid + rows_quarantined``. A row that fails several checks appears once per
failed check in the quarantine table and is counted once in the quality table.

Company-level gaps that are not a bad row (a forecast year missing because its row was quarantined,
no peers for a sector) are not quarantined here: the value step excludes the company from the
methods that need the data and records the reason in the valuations table.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial, reduce
from typing import TypeVar

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.backends.polars.register import register_polars_backends
from pandera.config import ValidationDepth, get_config_context

from wfo_kit.config import ValidationConfig, ValuationConfig
from wfo_kit.effects import apply_precedence
from wfo_kit.errors import SchemaValidationError
from wfo_kit.frames import format_text
from wfo_kit.io import FRACTION, ROW
from wfo_kit.rates import with_discount_rates
from wfo_kit.schemas import (
    INPUT_SCHEMAS,
    Quality,
    Quarantine,
    empty_frame,
    polars_dtypes,
    sign_conventions,
)

QUARANTINE_DTYPES = polars_dtypes(Quarantine)
_Config = TypeVar("_Config", ValidationConfig, ValuationConfig)


@dataclass(frozen=True)
class Rule:
    """A named business rule: rows where ``fails`` is true are quarantined with ``reason``."""

    check: str
    column: str | None
    fails: pl.Expr
    reason: pl.Expr
    #: A scalar condition under which ``fails`` is complete (e.g. "the frame is sorted by the
    #: key"); where it does not hold, ``fallback`` is evaluated instead, in a second pass.
    valid_if: pl.Expr | None = None
    fallback: pl.Expr | None = None
    #: The offending value shown in the quarantine (default: ``column`` as text).
    value: pl.Expr | None = None


@dataclass(frozen=True)
class Checked:
    """What the validate step produces."""

    valid: dict[str, pl.DataFrame]
    quarantine: pl.DataFrame
    quality: pl.DataFrame
    warnings: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={
                "table": pl.String,
                "company_id": pl.String,
                "check": pl.String,
                "reason": pl.String,
            }
        )
    )


def validate_tables(
    tables: dict[str, pl.DataFrame],
    *,
    validation: ValidationConfig | None = None,
    valuation: ValuationConfig | None = None,
) -> Checked:
    """Validate every input table; return valid frames, quarantine, quality and warnings."""
    validation = validation or _default(ValidationConfig)
    valuation = valuation or _default(ValuationConfig)
    company_ids = (
        tables["companies"]["company_id"].drop_nulls().unique()
        if "companies" in tables
        else pl.Series("company_id", [], dtype=pl.String)
    )
    parts, valid, quality = [], {}, []
    for name, frame in tables.items():
        rules = RULES[name](frame, valuation=valuation, company_ids=company_ids)
        valid[name], bad = check_table(frame, table=name, rules=rules)
        parts.append(bad)
        quality.append(_quality_row(name, frame.height, valid[name].height))
    # One row per failed check, sorted by table, row, check and column (ties: checks in order).
    quarantine = (
        pl.concat(parts).sort("table", "row", "check", "column", maintain_order=True)
        if parts
        else empty_frame(Quarantine)
    )
    return Checked(
        valid=valid,
        quarantine=quarantine,
        quality=pl.DataFrame(quality, schema=polars_dtypes(Quality)),
        warnings=spread_warnings(valid.get("companies"), valuation, validation),
    )


@cache
def _default(section: type[_Config]) -> _Config:
    """A section's defaults, built once (the sections are frozen; ValuationConfig() takes ~2 ms)."""
    return section()


def check_table(
    frame: pl.DataFrame, *, table: str, rules: list[Rule], run_pandera: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Schema checks and business rules on one table: (valid rows, quarantine rows).

    The schema's column checks (nullability, uniqueness, bounds, patterns: Pandera's own check
    expressions, see :func:`column_checks`) run in the same Polars pass as the business rules.
    Pandera itself validates the whole frame where a check cannot be expressed that way, where the
    frame's columns or dtypes do not match the schema (Pandera raises the error), and when
    ``run_pandera`` asks for it (the reference the compiled checks are tested against).

    The frame is made contiguous first: a filter over a frame in several chunks can leave empty
    chunks, over which Polars 2.1's ``pl.format`` (every rule's reason) panics.
    """
    frame = frame.rechunk()
    # A null check leaves an integer cell that held a fraction to the whole_number rule
    # (_unexplained): the rule is always there, whatever rules the caller gives.
    given = {(rule.check, rule.column) for rule in rules}
    rules = [
        *rules,
        *(r for r in _whole_number_rules(table, frame) if (r.check, r.column) not in given),
    ]
    checks = None if run_pandera else column_checks(frame, table=table)
    if checks is None:
        schema_bad = schema_failures(frame, table=table)
        rule_bad, failed = rule_failures(frame, rules, table=table)
        if schema_bad.height:
            failed = failed | frame[ROW].is_in(schema_bad["row"].unique().implode())
        return keep_rows(frame, ~failed), pl.concat([schema_bad, rule_bad])
    bad, failed = rule_failures(frame, rules, table=table, checks=checks)
    return keep_rows(frame, ~failed), bad


def keep_rows(frame: pl.DataFrame, keep: pl.Series) -> pl.DataFrame:
    """The valid frame: the rows of ``frame`` where ``keep`` is true, without the loader's helper
    columns (see io). The step cache keeps ``keep`` and rebuilds the valid frame with this."""
    helpers = [c for c in frame.columns if c.startswith(FRACTION)]
    return frame.rechunk().filter(keep).drop(helpers)


def _quality_row(table: str, rows_in: int, rows_valid: int) -> dict[str, object]:
    return {
        "table": table,
        "rows_in": rows_in,
        "rows_valid": rows_valid,
        "rows_quarantined": rows_in - rows_valid,
        "score": rows_valid / rows_in if rows_in else 1.0,
    }


# --------------------------------------------------------------------------------------------
# Pandera schema checks


def schema_failures(frame: pl.DataFrame, *, table: str) -> pl.DataFrame:
    """Run the table's Pandera schema (lazy: every failure) and map failures back to rows."""
    schema = INPUT_SCHEMAS[table]
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _failure_rows(frame, exc.failure_cases, table=table, exc=exc)
    return empty_frame(Quarantine)


class _SelectCapture:
    """Stands in for the LazyFrame a Pandera built-in check selects from.

    Pandera's Polars checks end in ``data.lazyframe.select(<expression>)`` and then collect that
    frame, one collect per check (three per non-nullable column with a bound, ~35 ms for the
    companies table even when it holds no row). Handing the check this object instead returns its
    expression, which then runs in the one pass with the business rules.
    """

    def select(self, *exprs: object) -> pl.Expr | None:
        return exprs[0] if len(exprs) == 1 and isinstance(exprs[0], pl.Expr) else None


def column_checks(frame: pl.DataFrame, *, table: str) -> list[Rule] | None:
    """The table schema's column checks, in Pandera's order, as failure expressions for ``frame``.

    Each rule's ``check`` is the name Pandera gives the failure (``not_nullable``,
    ``field_uniqueness``, ``greater_than(0)``, ...), so its quarantine rows read the same as when
    Pandera runs it. None when Pandera has to validate the frame itself: validation switched off
    or schema-only in Pandera's configuration, a check that is not one expression (element-wise,
    dataframe-wide, a warning), a missing required column or a wrong dtype (Pandera raises that
    schema error).
    """
    config = get_config_context(validation_depth_default=ValidationDepth.SCHEMA_AND_DATA)
    if not config.validation_enabled or config.validation_depth != ValidationDepth.SCHEMA_AND_DATA:
        return None
    if config.use_narwhals_backend:  # another backend, other check functions
        return None
    model = INPUT_SCHEMAS[table]
    compiled = _compiled_checks(model)
    if compiled is None:
        return None
    lazy, dtypes = frame.lazy(), frame.schema
    for name, spec in model.to_schema().columns.items():
        if name not in dtypes:
            if spec.required:
                return None
            continue
        if not spec.dtype.check(dtypes[name], PolarsData(lazy, name)):
            return None
    return [rule for rule in compiled if rule.column in frame.columns]


@cache
def _compiled_checks(model: type) -> tuple[Rule, ...] | None:
    register_polars_backends()  # Pandera's Polars check functions (it registers them lazily)
    schema = model.to_schema()
    settings = (schema.checks, schema.parsers, schema.unique, schema.coerce, schema.strict)
    if any(settings) or schema.ordered or schema.add_missing_columns or schema.drop_invalid_rows:
        return None
    rules = []
    for name, spec in schema.columns.items():
        if spec.regex or spec.coerce or spec.parsers or spec.drop_invalid_rows:
            return None
        if spec.default is not None:
            return None
        column = pl.col(name)
        if not spec.nullable:  # Pandera counts NaN as null in a float column
            present = column.is_not_null()
            if spec.dtype.type in (pl.Float32, pl.Float64):
                present = present & column.is_not_nan()
            rules.append(_column_rule(name, "not_nullable", ~present))
        if spec.unique:
            rules.append(_column_rule(name, "field_uniqueness", column.is_duplicated()))
        for check in spec.checks:
            if check.element_wise or check.raise_warning or check.groupby is not None:
                return None
            if check.n_failure_cases is not None:
                return None
            try:
                passes = _check_function(check)(PolarsData(_SelectCapture(), name))
            except Exception:  # a check that needs a real frame: Pandera runs it
                return None
            if not isinstance(passes, pl.Expr):
                return None
            # Pandera's null handling: with ignore_na a null outcome passes, otherwise it fails.
            fails = passes.not_().fill_null(False) if check.ignore_na else ~passes.fill_null(False)
            label = check.error if check.error is not None else check.name or str(check)
            rules.append(_column_rule(name, label, fails))
    return tuple(rules)


def _check_function(check: pa.Check) -> Callable[[PolarsData], object]:
    """Pandera's own function for ``check`` (not a copy), with the check's arguments.

    As Pandera does when it runs a check, a built-in is looked up again by name: its registry
    may have been rebuilt since the check was made (a backend registered later).
    """
    function = check._check_fn
    name = getattr(function, "__name__", None)
    if name is not None and check.is_builtin_check(name):
        function = check.get_builtin_check_fn(name)
    return partial(function, **check._check_kwargs)


def _column_rule(column: str, check: str, fails: pl.Expr) -> Rule:
    # The reason is written by _failure_rows from Pandera's check name, as for Pandera's own
    # failure cases; the expression only finds the rows.
    return Rule(check, column, fails, reason=pl.lit(None, pl.String))


def _column_cases(failing: pl.DataFrame, checks: list[Rule], flags: list[str]) -> pl.DataFrame:
    """Pandera-style failure cases (index, column, check) of the failing rows' column checks,
    in Pandera's order: by column and check as in the schema, then by row."""
    names = pl.DataFrame(
        {
            "flag": flags,
            "column": [c.column for c in checks],
            "check": [c.check for c in checks],
        }
    )
    return (
        failing.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("index"), *flags)
        .unpivot(on=flags, index="index", variable_name="flag", value_name="failed")
        .filter(pl.col("failed"))
        .join(names, on="flag", how="left", maintain_order="left")
        .select("index", "column", "check", pl.lit(None, pl.String).alias("failure_case"))
    )


def _failure_rows(
    frame: pl.DataFrame, cases: pl.DataFrame, *, table: str, exc: Exception | None = None
) -> pl.DataFrame:
    row_level = cases.filter(pl.col("index").is_not_null())
    if row_level.height < cases.height:
        first = cases.filter(pl.col("index").is_null()).row(0, named=True)
        msg = (
            f"{table}: schema check {first['check']} failed on {first['column']}: "
            f"{first['failure_case']}"
        )
        raise SchemaValidationError(
            msg, table=table, column=first["column"], details=cases
        ) from exc
    row_level = _unexplained(row_level, frame)
    has_company = "company_id" in frame.columns
    signs = sign_conventions(INPUT_SCHEMAS[table])
    # Rows sharing each duplicated value, found once per column (not once per failure: that was
    # quadratic in the number of duplicates).
    duplicates: dict[tuple[str, object], list[int]] = {}
    unique_failures = row_level.filter(pl.col("check") == "field_uniqueness")
    for column in unique_failures["column"].unique().to_list():
        groups = (
            frame.filter(pl.col(column).is_duplicated()).group_by(column).agg(pl.col(ROW).sort())
        )
        for value, found in groups.iter_rows():
            duplicates[(column, value)] = found
    index = row_level["index"].cast(pl.Int64)
    row_numbers = frame[ROW].gather(index).to_list()
    company_ids = (
        frame["company_id"].gather(index).to_list() if has_company else [None] * index.len()
    )
    rows = []
    for case, value, row, company in zip(
        row_level.select("column", "check").iter_rows(),
        _case_values(frame, row_level),
        row_numbers,
        company_ids,
        strict=True,
    ):
        column, check = case
        wrong_sign = column in signs and check.startswith("greater_than") and value < 0
        rows.append(
            {
                "table": table,
                "row": row,
                "company_id": company,
                "column": column,
                "check": "sign" if wrong_sign else _check_name(check),
                "value": None if value is None else str(value),
                "reason": _sign_reason(column, signs[column], value)
                if wrong_sign
                else _reason(column, check, value, duplicates.get((column, value), [])),
            }
        )
    return pl.DataFrame(rows, schema=QUARANTINE_DTYPES)


def _case_values(frame: pl.DataFrame, cases: pl.DataFrame) -> list[object]:
    """The offending cell of each failure case: gathered once per column, not looked up per case
    (a Series per lookup cost ~50 us each, 35 ms for 600 cases)."""
    values: list[object] = cases["failure_case"].to_list()
    positions = cases.select(pl.int_range(pl.len()).alias("case"), "column", "index")
    for column in positions["column"].unique(maintain_order=True).to_list():
        if column not in frame.columns:  # a dataframe-wide case: Pandera's text is all there is
            continue
        of_column = positions.filter(pl.col("column") == column)
        cells = frame[column].gather(of_column["index"].cast(pl.Int64)).to_list()
        for case, cell in zip(of_column["case"].to_list(), cells, strict=True):
            values[case] = cell
    return values


def _unexplained(cases: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """Drop the null failures of integer cells that held a fraction: a rule reports those."""
    for helper in (c for c in frame.columns if c.startswith(FRACTION)):
        rows = frame.select(
            pl.int_range(pl.len(), dtype=pl.Int64).filter(pl.col(helper).is_not_null())
        )
        cases = cases.filter(
            ~(
                (pl.col("column") == helper.removeprefix(FRACTION))
                & (pl.col("check") == "not_nullable")
                & pl.col("index").cast(pl.Int64).is_in(rows.to_series().implode())
            )
        )
    return cases


_BOUNDS = {
    "greater_than": ">",
    "greater_than_or_equal_to": ">=",
    "less_than": "<",
    "less_than_or_equal_to": "<=",
}


def _check_name(check: str) -> str:
    return {"not_nullable": "not_null", "field_uniqueness": "unique"}.get(
        check, check.split("(")[0]
    )


def _number(value: float) -> str:
    """A number as a person would type it: 30 for 30.0, 12.5 as is."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _sign_reason(column: str, convention: str, value: float) -> str:
    return f"{column} is {convention}; enter {_number(-value)}, not {_number(value)}"


def _reason(column: str, check: str, value: object, same_rows: list[int]) -> str:
    name, _, arg = check.partition("(")
    arg = arg.rstrip(")")
    if check == "not_nullable":
        if isinstance(value, float) and value != value:
            return f"{column} is NaN, not a number"
        return f"{column} is missing"
    if check == "field_uniqueness":
        return f"{column} {value!r} is not unique (rows {', '.join(map(str, same_rows))})"
    if name in _BOUNDS:
        return f"{column} must be {_BOUNDS[name]} {arg}, got {value}"
    if name == "isin":
        return f"{column} must be one of {arg}, got {value!r}"
    if name == "str_matches":
        return f"{column} must match {arg}, got {value!r}"
    return f"{column} fails {check}: {value!r}"


# --------------------------------------------------------------------------------------------
# Business rules (vectorized Polars expressions)


def rule_failures(
    frame: pl.DataFrame, rules: list[Rule], *, table: str, checks: list[Rule] | None = None
) -> tuple[pl.DataFrame, pl.Series]:
    """Quarantine rows for every rule (one per row and failed rule), and the failed-row mask.

    ``checks`` are the schema's column checks (:func:`column_checks`): they run in the same pass
    and their rows are written as Pandera's failures are (:func:`_failure_rows`), before the rules'.
    All rules are evaluated in one Polars pass; reasons are only built for the failing rows.
    """
    checks = checks or []
    everything = [*checks, *rules]
    if not everything or frame.height == 0:
        return empty_frame(Quarantine), pl.repeat(False, frame.height, eager=True).alias("failed")
    flags = [f"__rule{i}" for i in range(len(everything))]
    failing, failed = _failing_rows(frame, everything, flags)
    if failing is None:
        return empty_frame(Quarantine), failed
    check_flags, rule_flags = flags[: len(checks)], flags[len(checks) :]
    column_bad = (
        _failure_rows(failing, _column_cases(failing, checks, check_flags), table=table)
        if checks
        else empty_frame(Quarantine)
    )
    bad = pl.concat([column_bad, _rule_rows(failing, rules, rule_flags, table=table)])
    return pl.concat([bad, _unreported(failing, bad, everything, flags, table=table)]), failed


def _unreported(
    failing: pl.DataFrame, bad: pl.DataFrame, rules: list[Rule], flags: list[str], *, table: str
) -> pl.DataFrame:
    """A quarantine row for each failing row that no failure above reports, naming the checks
    it failed: a row leaves the valid table only with a reason.

    None is expected (a null check on an integer cell that held a fraction is left to the
    whole_number rule, which :func:`check_table` always adds): this keeps any other way a check
    could go unreported from dropping a row silently.
    """
    silent = failing.filter(~pl.col(ROW).is_in(bad["row"].implode())).rechunk()
    if silent.height == 0:
        return empty_frame(Quarantine)
    named = [
        pl.when(pl.col(flag)).then(pl.lit(f"{r.check} ({r.column})" if r.column else r.check))
        for r, flag in zip(rules, flags, strict=True)
    ]
    company = pl.col("company_id") if "company_id" in silent.columns else pl.lit(None, pl.String)
    failed = pl.concat_str(named, separator=", ", ignore_nulls=True)
    return silent.select(
        pl.lit(table).alias("table"),
        pl.col(ROW).alias("row"),
        company.alias("company_id"),
        pl.lit(None, pl.String).alias("column"),
        pl.lit("unreported").alias("check"),
        pl.lit(None, pl.String).alias("value"),
        pl.concat_str([pl.lit("failed "), failed]).alias("reason"),
    ).cast(QUARANTINE_DTYPES)


def _failing_rows(
    frame: pl.DataFrame, rules: list[Rule], flags: list[str]
) -> tuple[pl.DataFrame | None, pl.Series]:
    """The failed-row mask, and the failing rows with one boolean column per rule (``flags``);
    None for the rows when no row fails."""
    # One pass over the frame gives every rule's flag (a bitmap: 125 kB per rule at 1e6 rows);
    # the mask is their union and the failing rows keep their flags, so no rule runs twice.
    # (pl.any_horizontal over ~80 rule expressions cost ~10 ms of planning per call, and
    # re-evaluating the rules on the failing rows as much again; or-ing the flags is ~0.1 ms each.)
    conditions = {
        f"__valid{i}": rule.valid_if for i, rule in enumerate(rules) if rule.valid_if is not None
    }
    found = (
        frame.lazy()
        .select(
            *[
                rule.fails.fill_null(False).alias(flag)
                for rule, flag in zip(rules, flags, strict=True)
            ],
            *[expr.alias(name) for name, expr in conditions.items()],
        )
        .collect(engine="in-memory")
    )
    for name in conditions:
        rule_index = int(name.removeprefix("__valid"))
        rule, flag = rules[rule_index], flags[rule_index]
        if not found[name][0] and rule.fallback is not None:  # the fast form is incomplete here
            complete = frame.select(rule.fallback.fill_null(False)).to_series()
            found = found.with_columns(complete.alias(flag))
    failed = reduce(operator.or_, (found.get_column(flag) for flag in flags)).alias("failed")
    if not failed.any():
        return None, failed
    # `found` may come in several chunks; keep the few failing rows contiguous, so that no empty
    # chunk reaches `pl.format` (see check_table).
    failing = frame.filter(failed).hstack(found.select(flags).filter(failed)).rechunk()
    return failing, failed


def _rule_rows(
    failing: pl.DataFrame, rules: list[Rule], flags: list[str], *, table: str
) -> pl.DataFrame:
    """One quarantine row per failing row and failed business rule."""
    if not rules or failing.height == 0:
        return empty_frame(Quarantine)
    company = pl.col("company_id") if "company_id" in failing.columns else pl.lit(None, pl.String)
    # The failing rows are few; one lazy query over them builds every rule's rows (a separate
    # eager query per rule paid Polars' planning overhead 20+ times, ~25 ms per table).
    failing_lazy = failing.lazy()
    failed = failing.select(pl.col(flags).any()).row(0)
    parts = []
    for rule, flag, any_failed in zip(rules, flags, failed, strict=True):
        if not any_failed:  # most rules fail no row: no query for them
            continue
        value = (
            rule.value
            if rule.value is not None
            else pl.col(rule.column).cast(pl.String)
            if rule.column
            else pl.lit(None, pl.String)
        )
        parts.append(
            failing_lazy.filter(pl.col(flag)).select(
                pl.lit(table).alias("table"),
                pl.col(ROW).alias("row"),
                company.alias("company_id"),
                pl.lit(rule.column, pl.String).alias("column"),
                pl.lit(rule.check).alias("check"),
                value.alias("value"),
                rule.reason.alias("reason"),
            )
        )
    if not parts:
        return empty_frame(Quarantine)
    return pl.concat(parts).cast(QUARANTINE_DTYPES).collect()


def duplicate_rule(first: str, second: str, *, check: str, reason: pl.Expr) -> Rule:
    """Rows whose (first, second) key repeats another row's; all copies are marked.

    Input files are usually sorted by company and year; then duplicates are neighbours and a
    shift comparison finds them (measured 6x faster than hashing at 1e6 rows). Whether the frame
    is sorted is checked in the same pass; if it is not, the rule hashes the keys instead.
    """
    a, b = pl.col(first), pl.col(second)
    a_prev, b_prev = a.shift(1), b.shift(1)
    same = (a == a_prev) & (b == b_prev)
    return Rule(
        check=check,
        column=second,
        fails=(same | same.shift(-1)).fill_null(False),
        reason=reason,
        valid_if=((a > a_prev) | ((a == a_prev) & (b >= b_prev))).fill_null(True).all(),
        fallback=pl.struct(first, second).is_duplicated(),
    )


def duplicated(frame: pl.DataFrame, first: str, second: str) -> pl.Expr:
    """The duplicate-key mask of :func:`duplicate_rule` as one expression for ``frame``."""
    rule = duplicate_rule(first, second, check="", reason=pl.lit(""))
    ordered = frame.select(rule.valid_if).item()
    return rule.fails if ordered else rule.fallback


@cache  # rules of the table's contract alone: built once (expressions are immutable)
def _finite_rules(table: str) -> tuple[Rule, ...]:
    floats = [c for c, t in polars_dtypes(INPUT_SCHEMAS[table]).items() if t == pl.Float64]
    return tuple(
        Rule(
            check="finite",
            column=c,
            fails=pl.col(c).is_not_null() & ~pl.col(c).is_finite(),
            reason=format_text("{} must be a finite number, got {}", pl.lit(c), pl.col(c)),
        )
        for c in floats
    )


def _column_rules(table: str, frame: pl.DataFrame) -> list[Rule]:
    """Rules each table gets from its column kinds: finite floats, whole integers, no blank text."""
    return [*_finite_rules(table), *_whole_number_rules(table, frame), *_blank_rules(table)]


def _whole_number_rules(table: str, frame: pl.DataFrame) -> list[Rule]:
    """An integer column given a number that is not whole (2023.5): never truncated to 2023.

    The loader leaves the cell null and keeps the number in a helper column (io.FRACTION).
    """
    integers = [c for c, t in polars_dtypes(INPUT_SCHEMAS[table]).items() if t.is_integer()]
    return [
        Rule(
            check="whole_number",
            column=c,
            fails=pl.col(f"{FRACTION}{c}").is_not_null(),
            reason=format_text(
                "{} must be a whole number, got {}", pl.lit(c), pl.col(f"{FRACTION}{c}")
            ),
            value=pl.col(f"{FRACTION}{c}").cast(pl.String),
        )
        for c in integers
        if f"{FRACTION}{c}" in frame.columns
    ]


@cache
def _blank_rules(table: str) -> tuple[Rule, ...]:
    """A required text column that is empty or only whitespace (a name of '   ').

    Columns with a content check of their own (a pattern, a list of values) already fail there.
    """
    columns = INPUT_SCHEMAS[table].to_schema().columns
    required = [
        name
        for name, spec in columns.items()
        if spec.dtype.type == pl.String and not spec.nullable and not spec.checks
    ]
    return tuple(
        Rule(
            check="not_blank",
            column=c,
            # company_id repeats on a company's consecutive rows: trimmed once per run
            fails=per_run(c, _blank) if c == "company_id" else _blank(pl.col(c)),
            reason=pl.lit(f"{c} is empty or only whitespace"),
        )
        for c in required
    )


def _blank(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars() == ""


def _number_text(number: pl.Expr) -> pl.Expr:
    """:func:`_number` as an expression: 30 for 30.0, 12.5 as is."""
    whole = number.is_finite() & (number == number.floor())
    as_integer = pl.when(whole).then(number.cast(pl.Int64, strict=False).cast(pl.String))
    return pl.coalesce(as_integer, number.cast(pl.String))


def per_run(column: str, fails: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """``fails(pl.col(column))`` for a rule that depends on the cell's value alone, evaluated once
    per run of equal values and spread back to the run's rows.

    A company's rows (its years, items, flows) are usually consecutive, so ``company_id`` holds
    ~10x fewer runs than rows: hashing or trimming each run's id once, then gathering, costs about
    half as much CPU at 1e6 rows (the run ids are shared by every such rule in the pass). Any order
    gives the same flags (runs of one row at worst).
    """
    values = pl.col(column).rle().struct.field("value")
    return fails(values).gather(pl.col(column).rle_id())


def _known_company(company_ids: pl.Series) -> Rule:
    return Rule(
        check="known_company",
        column="company_id",
        fails=per_run("company_id", lambda ids: ~ids.is_in(company_ids.implode())),
        reason=format_text("company_id {} is not in the companies table", pl.col("company_id")),
    )


def _company_rules(
    frame: pl.DataFrame, *, valuation: ValuationConfig, company_ids: pl.Series
) -> list[Rule]:
    # r > g is not a rule on the row: it matters only to the Gordon DCF, on the rate that method
    # uses (the row's, the configured default or the WACC); wfo_kit.dcf excludes the company from
    # that method alone, with the reason, and spread_warnings says so at validation.
    return _column_rules("companies", frame)


def _financials_rules(
    frame: pl.DataFrame, *, valuation: ValuationConfig, company_ids: pl.Series
) -> list[Rule]:
    needed = ["ebit", "depreciation", "capex", "change_nwc"]
    missing = pl.concat_str(
        [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in needed],
        separator=", ",
        ignore_nulls=True,
    )
    return [
        *_column_rules("financials", frame),
        _known_company(company_ids),
        duplicate_rule(
            "company_id",
            "year",
            check="unique_company_year",
            reason=format_text(
                "company {} has more than one row for year {}", pl.col("company_id"), pl.col("year")
            ),
        ),
        Rule(
            check="fcff_inputs",
            column=None,
            fails=pl.col("is_forecast")
            & pl.col("fcff").is_null()
            & pl.any_horizontal([pl.col(c).is_null() for c in needed]),
            reason=format_text(
                "forecast row needs fcff, or ebit, depreciation, capex and change_nwc "
                "(missing: {})",
                missing,
            ),
        ),
    ]


def _peers_rules(
    frame: pl.DataFrame, *, valuation: ValuationConfig, company_ids: pl.Series
) -> list[Rule]:
    return _column_rules("peers", frame)


def _balance_sheet_rules(
    frame: pl.DataFrame, *, valuation: ValuationConfig, company_ids: pl.Series
) -> list[Rule]:
    tolerance = valuation.asset.reconcile_tolerance
    computed = pl.col("book_value") + pl.col("fair_value_adjustment")
    return [
        *_column_rules("balance_sheet", frame),
        _known_company(company_ids),
        Rule(
            check="reconciles",
            column="adjusted_value",
            fails=(computed - pl.col("adjusted_value")).abs() > tolerance,
            reason=format_text(
                "book value {} + adjustment {} = {} does not reconcile with the stated "
                "adjusted value {} (tolerance {})",
                pl.col("book_value"),
                pl.col("fair_value_adjustment"),
                computed.round(6),
                pl.col("adjusted_value"),
                pl.lit(tolerance),
            ),
        ),
        Rule(
            check="sign",
            column="book_value",
            fails=(pl.col("side") == "liability") & (pl.col("book_value") < 0),
            reason=format_text(
                "book_value of a liability is a positive claim; enter {}, not {}",
                _number_text(-pl.col("book_value")),
                _number_text(pl.col("book_value")),
            ),
        ),
        Rule(
            check="liability_priority",
            column="priority",
            fails=(pl.col("side") == "liability") & pl.col("priority").is_null(),
            reason=pl.lit("a liability needs a priority (administrative, secured or unsecured)"),
        ),
    ]


def _dated_flows_rules(
    frame: pl.DataFrame, *, valuation: ValuationConfig, company_ids: pl.Series
) -> list[Rule]:
    return [*_column_rules("dated_flows", frame), _known_company(company_ids)]


RULES: dict[str, Callable[..., list[Rule]]] = {
    "companies": _company_rules,
    "financials": _financials_rules,
    "peers": _peers_rules,
    "balance_sheet": _balance_sheet_rules,
    "dated_flows": _dated_flows_rules,
}


def spread_warnings(
    companies: pl.DataFrame | None, valuation: ValuationConfig, validation: ValidationConfig
) -> pl.DataFrame:
    """Companies whose discount rate (the one the DCF uses) is not above, or is close to, g."""
    schema = {"table": pl.String, "company_id": pl.String, "check": pl.String, "reason": pl.String}
    if companies is None or companies.height == 0:
        return pl.DataFrame(schema=schema)
    companies = apply_precedence(companies, valuation=valuation)
    rate = pl.col("discount_rate")
    growth = pl.col("terminal_growth").fill_null(pl.lit(valuation.terminal_growth, pl.Float64))
    not_above = rate <= growth
    return (
        with_discount_rates(companies, valuation=valuation)
        .filter((rate - growth) < validation.spread_warning)
        .select(
            pl.lit("companies").alias("table"),
            "company_id",
            pl.when(not_above)
            .then(pl.lit("rate_not_above_growth"))
            .otherwise(pl.lit("narrow_spread"))
            .alias("check"),
            pl.when(not_above)
            .then(
                format_text(
                    "discount rate {} is not above terminal growth {}: the Gordon DCF cannot "
                    "value this company",
                    rate,
                    growth,
                )
            )
            .otherwise(
                format_text(
                    "discount rate {} is within {} of terminal growth {}: value is very sensitive",
                    rate,
                    pl.lit(validation.spread_warning),
                    growth,
                )
            )
            .alias("reason"),
        )
    )
