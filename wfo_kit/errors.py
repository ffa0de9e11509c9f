"""The one error hierarchy of wfo_kit.

Row-level problems are quarantined, never raised; these errors are for run-level problems. Every
class says whether a retry can help (``retryable``) and which exit code the CLI gives
(``exit_code``). Structured fields (``step``, ``table``, ``column``, ``row``, ``hint``) travel with
the error so that logs, manifests and the CLI can show them without parsing the message.

Names avoid Python's built-ins: ``StepTimeoutError`` not ``TimeoutError``, and the system branch is
``PlatformError`` not ``SystemError``.

Each class is raised somewhere (its docstring says where). There is no ``BusinessRuleError``:
business rules are checked per row, and failing rows are quarantined with the reason, not raised.

Exit codes: 0 success, 1 the run failed while executing, 2 bad input or usage (configuration, data
format, validation), 3 infrastructure (disk, kernel, missing tool).
"""

from __future__ import annotations

from typing import Any, ClassVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INFRASTRUCTURE = 3


class WfoError(Exception):
    """Root of every error that wfo_kit raises on purpose."""

    retryable: ClassVar[bool] = False
    exit_code: int = EXIT_FAILED  # class default; an instance may refine it

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        table: str | None = None,
        column: str | None = None,
        row: int | None = None,
        hint: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.table = table
        self.column = column
        self.row = row
        self.hint = hint
        #: The library's own evidence (pandera failure cases, papermill's cell index, ...).
        self.details = details

    def one_line(self) -> str:
        """The message as the CLI prints it: one line, with the hint if there is one."""
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text} (hint: {' '.join(self.hint.split())})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Structured form for logs and manifests."""
        return {
            "class": type(self).__name__,
            "message": self.message,
            "step": self.step,
            "table": self.table,
            "column": self.column,
            "row": self.row,
            "hint": self.hint,
            "retryable": self.retryable,
            "exit_code": self.exit_code,
        }


class ValidationError(WfoError):
    """Input that cannot be validated row by row (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class SchemaValidationError(ValidationError):
    """A table-level schema failure (not one row's): raised by :mod:`wfo_kit.validate`, with
    Pandera's failure cases in ``details``. Failing business rules are row-level: those rows are
    quarantined with the reason, never raised."""


class ExecutionError(WfoError):
    """A run failed while executing (exit 1); raised as such for an unexpected exception in a
    step, with the original as the cause."""

    exit_code = EXIT_FAILED


class StepTimeoutError(ExecutionError):
    """A report notebook cell ran longer than ``report.cell_timeout`` (:mod:`wfo_kit.kernels`)."""

    retryable = True


class ResourceError(ExecutionError):
    """A step ran out of memory (a ``MemoryError``, classified by the step wrapper)."""

    retryable = True


class DependencyError(ExecutionError):
    """A step needs a frame an earlier step did not produce, e.g. ``value`` before ``validate``
    (:func:`wfo_kit.pipeline.run_step`); ``details`` lists the missing frames. Not retried."""


class NotebookExecutionError(ExecutionError):
    """A report notebook cell raised; ``details`` holds the cell index and the error name."""


class DataError(WfoError):
    """The input data cannot be used as given (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class DataQualityError(DataError):
    """A table's data quality score (valid rows / rows in) is below ``validation.fail_below``:
    raised by the validate step of a run, and by ``wfo validate``; ``details`` holds the quality
    table."""


class DataFormatError(DataError):
    """A source cannot be read as the data contract says: a missing file, a missing column, a
    value of the wrong type, a failing SQL query (:mod:`wfo_kit.io`). Not retried."""


class PlatformError(WfoError):
    """The system branch of the architecture's hierarchy."""

    exit_code = EXIT_INFRASTRUCTURE


class ConfigurationError(PlatformError):
    """An invalid parameters file, setting or step name (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class InfrastructureError(PlatformError):
    """Disk, folders, kernels: the environment failed, not the input (exit 3); retried."""

    retryable = True
    exit_code = EXIT_INFRASTRUCTURE


class SourceUnavailableError(InfrastructureError):
    """A source that is there but busy for now: a SQLite database locked by another connection,
    a DuckDB file locked by another process, a transient OS error (EAGAIN, EBUSY, ...). Raised by
    the SQL loader (:mod:`wfo_kit.io`) naming the table; retried by the step wrapper with backoff
    (``pipeline.retry``). The input is not wrong, so it is not a :class:`DataError`."""


def nearest(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The closest known name to a misspelt one, or None when nothing is close."""
    import difflib

    found = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """A ' (did you mean X?)' suffix, or an empty string."""
    best = nearest(name, choices)
    return f" (did you mean {best!r}?)" if best else ""
