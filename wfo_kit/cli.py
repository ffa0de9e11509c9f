"""The ``wfo`` command line.

Errors are one readable line on stderr (``wfo: error: ...``) and an exit code from
:mod:`wfo_kit.errors`: 2 for bad input or usage, 1 for a failed run, 3 for infrastructure.
``--debug`` shows the traceback. Heavy imports happen inside the commands, so ``wfo --help``
is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from wfo_kit import __version__
from wfo_kit.audit import add_parser as add_audit_parser
from wfo_kit.audit import cmd_audit
from wfo_kit.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INFRASTRUCTURE,
    EXIT_OK,
    WfoError,
)
from wfo_kit.serve.cli import add_parsers as add_serve_parsers
from wfo_kit.serve.cli import cmd_serve, cmd_users

if TYPE_CHECKING:
    import polars as pl

    from wfo_kit.batch import Outcome
    from wfo_kit.config import Config, ResolvedConfig
    from wfo_kit.validate import Checked

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a Unix tool killed by a closed pipe


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"wfo: error: {message} (see `{self.prog} --help`)\n")


def _add_confine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--confine",
        metavar="DIR",
        help="keep every path of the run inside DIR: absolute paths, `..` and links that leave "
        "it are refused (also WFO_SECURITY__CONFINE)",
    )


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("params", help="parameters file (YAML or JSON)")
    _add_confine_option(parser)
    parser.add_argument(
        "--env",
        metavar="NAME",
        help="layer <params stem>.NAME.yaml over the parameters file, below WFO_ variables "
        "(also WFO_ENV)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set valuation.terminal_growth=0.025 (repeatable)",
    )


def _add_metrics_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write Prometheus metrics of the run(s) to PATH (node exporter textfile format, "
        "e.g. /var/lib/node_exporter/wfo.prom), atomically",
    )


def _write_metrics(path: Path | None, root: Path, run_ids: list[str]) -> None:
    """The runs' metrics file; a failure to write it is a note, never the command's failure."""
    if path is None:
        return
    try:
        from wfo_kit.metrics_export import run_manifests, write_metrics_file

        write_metrics_file(path, run_manifests(root, run_ids))
    except ImportError:
        print("wfo: note: --metrics-file needs prometheus_client (pip install 'wfo_kit[ops]')",
              file=sys.stderr)  # fmt: skip
    except OSError as exc:
        print(f"wfo: note: metrics not written to {path}: {exc.strerror or exc}", file=sys.stderr)


def _add_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-cache",
        dest="no_cache",
        action="store_true",
        help="load and validate the inputs again, not from the step cache (cache.enabled=false)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wfo",
        description="Company valuation workflows: load -> validate -> value -> output -> report.",
    )
    parser.add_argument("--version", action="version", version=f"wfo_kit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="log every pipeline event (step started/finished, retries, ...)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="value the companies and publish the HTML report",
        description="Execute notebooks/valuation.ipynb with Papermill for one parameters file "
        "and publish it as self-contained HTML under <output.root>/<run_id>/.",
    )
    _add_config_options(run)
    _add_cache_option(run)
    run.add_argument("--output", type=Path, help="output root folder (default: output.root)")
    _add_metrics_option(run)
    run.add_argument(
        "--pdf",
        action="store_true",
        help="also print the report to report.pdf with headless Chromium (report.pdf: true)",
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one-line progress display (default: when stderr is a terminal)",
    )

    validate = commands.add_parser(
        "validate",
        help="check the input tables; print the quality table",
        description="Load and validate the inputs, print the quality table, write the quarantine "
        "table as CSV. Exit 2 when a table's score is below validation.fail_below.",
    )
    _add_config_options(validate)
    _add_cache_option(validate)
    validate.add_argument("--quarantine", type=Path, help="CSV file for the quarantine table")

    batch = commands.add_parser(
        "batch",
        help="run many parameter files in parallel (resumable)",
        description="Run every parameters file (globs allowed) through the report notebook in "
        "parallel. Finished runs are skipped on a second invocation; failed or interrupted ones "
        "run again. Exit 1 if any run failed.",
    )
    batch.add_argument("params", nargs="+", help="parameters files or globs")
    _add_confine_option(batch)
    _add_cache_option(batch)
    batch.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    batch.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    batch.add_argument("--force", action="store_true", help="re-run runs that already succeeded")
    _add_metrics_option(batch)
    batch.add_argument("--output", type=Path, default=Path("outputs"), help="output root folder")
    batch.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting in every run (repeatable)",
    )
    batch.add_argument(
        "--env",
        metavar="NAME",
        help="layer <params stem>.NAME.yaml over each parameters file, below WFO_ variables "
        "(also WFO_ENV)",
    )

    runs = commands.add_parser("runs", help="list runs, or show one (`wfo runs show RUN_ID`)")
    runs.add_argument("action", nargs="?", choices=["list", "show", "report"], default="list")
    runs.add_argument("run_id", nargs="?", help="run id for `show`")
    runs.add_argument(
        "--status",
        choices=["succeeded", "failed", "interrupted", "running", "incomplete", "unreadable"],
    )
    runs.add_argument("--output", type=Path, default=Path("outputs"), help="output root folder")

    diff = commands.add_parser(
        "diff",
        help="compare two runs: summary, blended values, why they moved, parameters, inputs",
        description="Compare two runs: a summary and the largest moves first, then each "
        "company's change in blended value split into its causes (input tables, then "
        "parameters, then method weights, re-valued one at a time: docs/conventions.md), the "
        "blended values, the parameters and inputs that differ, and values per method.",
    )
    diff.add_argument("run_a")
    diff.add_argument("run_b")
    diff.add_argument("--output", type=Path, default=Path("outputs"), help="output root folder")
    diff.add_argument(
        "--changed-only", action="store_true", help="list only companies whose values changed"
    )
    diff.add_argument(
        "--html",
        nargs="?",
        type=Path,
        const=True,
        default=None,
        metavar="FILE",
        help="also write the comparison as one offline HTML page with a waterfall per company "
        "(default FILE: <output>/diff-RUN_A-RUN_B.html)",
    )

    rerun = commands.add_parser(
        "rerun",
        help="execute a run again from its manifest and compare every result table",
        description="Execute RUN_ID again with its recorded configuration and sources, then "
        "compare "
        "every result table with the original, row order included. Refused (exit 2) when an input "
        "changed since the run, unless --accept-changed-inputs. Exit 1 when the same inputs give "
        "different results.",
    )
    rerun.add_argument("run_id")
    _add_confine_option(rerun)
    rerun.add_argument("--output", type=Path, default=Path("outputs"), help="output root folder")
    rerun.add_argument(
        "--accept-changed-inputs",
        action="store_true",
        help="value the inputs as they are now and show what changed",
    )

    logs = commands.add_parser(
        "logs",
        help="query the log database (logging.database): events by run, level and step",
        description="Print the events the `logging.database` sink stored, oldest first.",
    )
    logs.add_argument(
        "--db",
        default="outputs/logs.sqlite",
        help="the log database: a SQLite path, sqlite:///path or duckdb:///path "
        "(default outputs/logs.sqlite)",
    )
    logs.add_argument("--run", help="only this run id")
    logs.add_argument(
        "--level",
        choices=["debug", "info", "warning", "error", "critical"],
        help="only events at or above this level",
    )
    logs.add_argument("--step", help="only events of this step (load, validate, value, ...)")

    schedule = commands.add_parser(
        "schedule",
        help="add, list or remove cron schedules (run by `wfo scheduler`)",
        description='`wfo schedule add NAME "CRON" PARAMS...`, `wfo schedule list`, '
        "`wfo schedule remove NAME`; stored in <output>/schedules.json.",
    )
    schedule.add_argument("action", choices=["add", "list", "remove"])
    schedule.add_argument("name", nargs="?", help="schedule name (add, remove)")
    schedule.add_argument("cron", nargs="?", help='cron expression, e.g. "0 6 * * 1-5" (UTC)')
    schedule.add_argument("params", nargs="*", help="parameters files the schedule runs")
    schedule.add_argument("--output", type=Path, default=Path("outputs"), help="output root")
    schedule.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting in every run of the schedule (repeatable)",
    )  # fmt: skip
    scheduler = commands.add_parser(
        "scheduler",
        help="run the schedules of an output folder until interrupted",
        description="Start each schedule's runs (`wfo batch ... --force`) when due: a time missed "
        "while the scheduler was down runs once; a schedule whose run still goes is skipped "
        "(logged in <output>/scheduler.jsonl).",
    )
    scheduler.add_argument("--output", type=Path, default=Path("outputs"), help="output root")
    scheduler.add_argument("--once", action="store_true", help="one pass, then exit")

    config = commands.add_parser("config", help="inspect the effective configuration")
    config_commands = config.add_subparsers(
        dest="config_command", metavar="SUBCOMMAND", parser_class=_Parser
    )
    show = config_commands.add_parser("show", help="print the effective configuration")
    _add_config_options(show)
    show.add_argument("--sources", action="store_true", help="say where each value came from")
    add_serve_parsers(commands, _Parser)  # `wfo serve`, `wfo users`
    add_audit_parser(commands)  # `wfo audit`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from wfo_kit.observers import quiet_library_logs

    quiet_library_logs()
    if args.verbose:
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("wfo: %(levelname)s %(message)s"))
        logger = logging.getLogger("wfo_kit")  # ours only, not every library's debug output
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    if getattr(args, "no_cache", False):  # the last layer, so it wins over any file or --set
        args.sets = [*args.sets, "cache.enabled=false"]
    started = time.monotonic()
    with _sigterm_as_ctrl_c():
        code, error = _dispatch(args)
    if args.command != "run":  # a run audits itself (started, then its outcome)
        _audit_command(args, argv, code=code, error=error, seconds=time.monotonic() - started)
    return code


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``timeout``, ``docker stop``, systemd) stops a command as Ctrl-C does.

    Left to its default, it killed ``wfo run`` mid-write: the run stayed ``.partial`` with no
    report. Now a run ends ``interrupted`` with its report and folder, a batch stops its runs, and
    the command exits 130. A handler set by whoever called us is kept (``wfo serve``'s uvicorn
    sets its own).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _dispatch(args: argparse.Namespace) -> tuple[int, str | None]:
    """Run the command; (exit code, the error line if any). Never a traceback unless --debug."""
    try:
        return COMMANDS[args.command](args), None
    except WfoError as exc:
        if args.debug:
            raise
        line = f"wfo: error: {exc.one_line()}"
        print(line, file=sys.stderr)
        return exc.exit_code, line
    except KeyboardInterrupt:
        print("wfo: interrupted", file=sys.stderr)
        return 130, "interrupted"
    except BrokenPipeError:
        # The reader went away (`wfo diff A B | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE, "output pipe closed"
    except OSError as exc:  # a disk or folder problem outside our own handling
        if args.debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        line = f"wfo: error: cannot access{where}: {exc.strerror or exc}"
        print(line, file=sys.stderr)
        return EXIT_INFRASTRUCTURE, line
    except Exception as exc:
        if args.debug:
            raise
        return _internal_error(exc)
    except BaseException as exc:  # a Rust panic in Polars is a BaseException (PanicException)
        if args.debug or not _is_native_panic(exc):
            raise
        return _internal_error(exc, native=True)


def _is_native_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


def _internal_error(exc: BaseException, *, native: bool = False) -> tuple[int, str]:
    text = " ".join(str(exc).split())[:300]
    kind = "a panic in native code (Polars)" if native else type(exc).__name__
    line = f"wfo: internal error: {kind}: {text} (rerun with --debug for the traceback)"
    print(line, file=sys.stderr)
    return EXIT_FAILED, line


def _audit_command(
    args: argparse.Namespace, argv: list[str], *, code: int, error: str | None, seconds: float
) -> None:
    """One line in ``<outputs>/audit.jsonl`` per command: who, where, what, outcome, duration.

    Arguments are recorded with secrets masked. An audit log that cannot be written does not
    fail the command; it is said once on stderr (unless the command already failed on the disk).
    """
    from wfo_kit.errors import InfrastructureError
    from wfo_kit.runs import append_audit

    root = _audit_root(args)
    try:
        append_audit(
            root / "audit.jsonl",
            command=args.command,
            arguments=mask_arguments(argv),
            outcome="succeeded" if code == EXIT_OK else "failed",
            exit_code=code,
            error=error,
            seconds=round(seconds, 3),
        )
    except (OSError, InfrastructureError) as exc:
        if code != EXIT_INFRASTRUCTURE:
            reason = exc.strerror if isinstance(exc, OSError) else exc.message
            print(f"wfo: note: not audited ({root / 'audit.jsonl'}: {reason})", file=sys.stderr)


def _audit_root(args: argparse.Namespace) -> Path:
    """Where a command's audit line goes: its output folder, else the configured one."""
    if getattr(args, "output", None):
        return Path(args.output)
    if getattr(args, "params", None) and isinstance(args.params, str):
        try:
            return Path(_resolve(args).config.output.root)
        except WfoError:
            pass  # the parameters file is broken: the command said so already
    return Path("outputs")


def mask_arguments(argv: list[str]) -> list[str]:
    """Command-line arguments as they may be logged: passwords in URLs and values of secret-looking
    keys (``--set data.peers.password=...``) replaced by ``***``."""
    from wfo_kit.config import MASK, is_secret_key, mask_secrets

    masked = []
    for arg in argv:
        key, sep, _ = arg.partition("=")
        masked.append(f"{key}={MASK}" if sep and is_secret_key(key) else mask_secrets(arg))
    return masked


def _resolve(args: argparse.Namespace, *, notes: bool = False):  # noqa: ANN202
    from wfo_kit.config import literal_credentials, resolve_config

    resolved = resolve_config(
        args.params, sets=args.sets, confine=args.confine, env_name=getattr(args, "env", None)
    )
    if notes:
        for note in literal_credentials(resolved.config):
            print(f"wfo: note: {note}", file=sys.stderr)
    return resolved


def cmd_run(args: argparse.Namespace) -> int:
    from wfo_kit.kernels import import_early, start_kernel_early
    from wfo_kit.observers import quiet_stopped_cells
    from wfo_kit.risk import shocks_stored
    from wfo_kit.runs import run_report

    quiet_stopped_cells()
    if args.pdf:
        args.sets = [*args.sets, "report.pdf=true"]
    resolved = _resolve(args, notes=True)
    # The kernel starts and imports while this process imports Papermill and hashes the inputs
    # (wfo run: 0.93x of the papermill + nbconvert CLIs before, measured by make bench).
    start_kernel_early(resolved.config.report.kernel)
    simulation = resolved.config.valuation.monte_carlo
    if simulation.enabled and not shocks_stored(simulation, resolved.config.cache):
        import_early(resolved.config.report.kernel, ("scipy.stats",))  # the run draws them
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = run_report(
        resolved,
        params_file=args.params,
        output_root=args.output,
        log=None if progress else (lambda msg: print(f"wfo: {msg}", file=sys.stderr)),
        progress=progress,
        verbose=args.verbose,
        reuse_kernel=True,
    )
    _write_metrics(args.metrics_file, result.run_dir.parent, [result.run_id])
    if result.error is not None:
        log = result.run_dir / "log.jsonl"
        print(
            f"wfo: error: {result.error.one_line()} (report: {result.report}; log: {log})",
            file=sys.stderr,
        )
        return result.error.exit_code
    # Notes only on success: a failure stays one line (the run's manifest and report keep them).
    _print_notes(
        _setting_notes(resolved, command="run", run_dir=result.run_dir, output_root=args.output)
    )
    print(result.report)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:

    from wfo_kit.config import given_tables
    from wfo_kit.errors import DataQualityError
    from wfo_kit.io import write_frame
    from wfo_kit.pipeline import RunContext, check_quality, check_step_names, run_step
    from wfo_kit.validate import validate_tables

    resolved = _resolve(args, notes=True)
    config = resolved.config
    check_step_names(config)
    width = max(len(name) for name, _ in given_tables(config.data))
    for name, where in given_tables(config.data):
        print(f"{name:<{width}}  {where}")
    # The load step, through the pipeline's wrapper: a locked source is retried as in a run.
    ctx = run_step(RunContext(config), "load")
    tables = {k.removeprefix("input_"): f for k, f in ctx.frames.items() if k.startswith("input_")}
    checked = validate_tables(tables, validation=config.validation, valuation=config.valuation)
    _print_table(checked.quality)
    target = (
        args.quarantine or Path(config.output.root) / f"quarantine-{Path(args.params).stem}.csv"
    )
    write_frame(checked.quarantine, target)
    print(f"quarantine: {checked.quarantine.height} failed check(s) written to {target}")
    try:
        check_quality(checked.quality, fail_below=config.validation.fail_below)
    except DataQualityError as exc:
        print(f"wfo: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    _print_notes(_validate_notes(config, resolved.sources, checked))  # on success only
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    import json

    from wfo_kit.config import config_sources, mask_secrets

    if args.config_command != "show":
        print("wfo: error: try `wfo config show PARAMS`", file=sys.stderr)
        return EXIT_BAD_INPUT
    resolved = _resolve(args)
    if args.sources:
        rows = config_sources(resolved)
        width = max(len(key) for key, _, _ in rows)
        for key, value, source in rows:
            print(f"{key:<{width}}  {json.dumps(mask_secrets(value))}  [{source}]")
    else:
        print(json.dumps(mask_secrets(resolved.config.model_dump(mode="json")), indent=2))
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from wfo_kit.batch import run_batch

    if args.workers < 1:
        print("wfo: error: --workers must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    tty = sys.stderr.isatty()

    def tick(done: int, total: int, outcome: object) -> None:
        line = f"batch [{done}/{total}] {outcome.status:<11} {outcome.run_id}"  # type: ignore[attr-defined]
        if tty:
            sys.stderr.write("\r" + line.ljust(78))
            sys.stderr.flush()

    try:
        outcomes, manifest = run_batch(
            args.params,
            output_root=args.output,
            workers=args.workers,
            scheduler=args.scheduler,
            force=args.force,
            sets=tuple(args.sets),
            confine=args.confine,
            progress=tick,
            env_name=args.env,
        )
    except KeyboardInterrupt as exc:
        if tty:
            sys.stderr.write("\n")
        print(
            f"wfo: interrupted; finished runs are kept, run the same command again to finish "
            f"the rest (batch manifest: {exc})",
            file=sys.stderr,
        )
        return 130
    if tty:
        sys.stderr.write("\n")
    ran = [o.run_id for o in outcomes if o.status in ("succeeded", "failed")]
    _write_metrics(args.metrics_file, args.output, ran)
    _print_outcomes(outcomes)
    for outcome in outcomes:
        _print_notes(_batch_notes(outcome, args), prefix=f"{Path(outcome.params_file).name}: ")
    statuses = ("succeeded", "skipped", "duplicate", "failed")
    counts = {s: sum(o.status == s for o in outcomes) for s in statuses}
    duplicates = f"{counts['duplicate']} duplicate, " if counts["duplicate"] else ""
    print(
        f"batch: {counts['succeeded']} succeeded, {counts['skipped']} skipped (already done), "
        f"{duplicates}{counts['failed']} failed; manifest: {manifest}"
    )
    for outcome in outcomes:
        if outcome.status == "duplicate":
            print(f"wfo: note: {Path(outcome.params_file).name}: {outcome.reason}", file=sys.stderr)
        if outcome.status == "failed":
            print(f"wfo: error: {outcome.run_id}: {outcome.reason}", file=sys.stderr)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _print_notes(lines: list[str], prefix: str = "") -> None:
    for line in lines:
        print(f"wfo: note: {prefix}{line}", file=sys.stderr)


def _setting_notes(
    resolved: ResolvedConfig,
    *,
    command: str,
    run_dir: Path | None = None,
    output_root: Path | None = None,
) -> list[str]:
    """Lines for the settings that apply to none or only some companies: the run's own (from its
    manifest), else what the configuration alone decides, and what the command ignores.

    Notes never fail a command: a problem computing them is itself one note.
    """
    import json

    from wfo_kit.effects import command_effects, effect_lines, setting_effects

    try:
        effects = None
        if run_dir is not None and (run_dir / "manifest.json").is_file():
            manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
            effects = manifest.get("setting_effects") if isinstance(manifest, dict) else None
        if effects is None:
            effects = setting_effects(resolved.config, sources=resolved.sources).to_dicts()
        ignored = command_effects(resolved, command=command, output_root=output_root)
        return effect_lines(ignored) + effect_lines(effects)
    except (OSError, ValueError, WfoError) as exc:
        return [f"the settings' effects could not be checked: {type(exc).__name__}: {exc}"]


def _validate_notes(config: Config, sources: dict[str, str], checked: Checked) -> list[str]:
    from wfo_kit.effects import effect_lines, setting_effects

    valid = checked.valid
    ids = valid["companies"]["company_id"].to_list() if "companies" in valid else None
    effects = setting_effects(
        config,
        sources=sources,
        companies=valid.get("companies"),
        balance_sheet=valid.get("balance_sheet"),
        company_ids=ids,
    )
    return effect_lines(effects)


def _batch_notes(outcome: Outcome, args: argparse.Namespace) -> list[str]:
    """One batch run's notes: its settings' effects and ``output.root`` (batch uses --output)."""
    from wfo_kit.config import resolve_config

    if outcome.status not in ("succeeded", "skipped"):
        return []  # a failure is its one error line; a duplicate's file is listed with its notes
    try:
        resolved = resolve_config(
            outcome.params_file, sets=list(args.sets), confine=args.confine, env_name=args.env
        )
    except WfoError:
        return []  # an invalid parameters file: its error is printed already
    report = outcome.report
    run_dir = Path(report).parent if report else None
    return _setting_notes(resolved, command="batch", run_dir=run_dir, output_root=args.output)


def _print_outcomes(outcomes: list) -> None:
    import polars as pl

    frame = pl.DataFrame(
        [
            {
                "run_id": o.run_id,
                "params": Path(o.params_file).name,
                "status": o.status,
                "seconds": round(o.seconds, 1),
                "median_value": o.headline,
                "report": o.report,
            }
            for o in outcomes
        ],
        schema={
            "run_id": pl.String,
            "params": pl.String,
            "status": pl.String,
            "seconds": pl.Float64,
            "median_value": pl.Float64,
            "report": pl.String,
        },
    )
    _print_table(frame)


def _print_table(frame: object) -> None:
    """A frame as a plain console table: no shape line, no dtypes, every row."""
    import polars as pl

    with pl.Config(
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_rows=-1,
        fmt_str_lengths=120,
        tbl_width_chars=200,
        tbl_cols=-1,
    ):
        print(frame)


def cmd_runs(args: argparse.Namespace) -> int:
    import json

    from wfo_kit.history import load_manifest, run_history

    if args.action == "show":
        if not args.run_id:
            print("wfo: error: `wfo runs show` needs a RUN_ID", file=sys.stderr)
            return EXIT_BAD_INPUT
        manifest = load_manifest(args.output, args.run_id)
        keep = (
            "run_id",
            "status",
            "started",
            "finished",
            "params_file",
            "rerun_of",
            "owner",
            "user",
            "host",
            "timings_seconds",
            "headline",
            "quality",
            "steps",
            "inputs_sha256",
            "inputs_read",
            "problems",
            "error",
        )
        print(json.dumps({k: manifest.get(k) for k in keep}, indent=2, default=str))
        return EXIT_OK
    if args.action == "report":
        from wfo_kit.publish import publish_history

        print(publish_history(args.output))
        return EXIT_OK
    frame = run_history(args.output, status=args.status).select(
        "run_id", "status", "started", "seconds", "companies", "valued", "quality_score", "error"
    )
    _print_table(frame)
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    import polars as pl

    from wfo_kit.diff_report import attribution_wide, moved
    from wfo_kit.history import diff_attribution, diff_summary, run_diff

    parts = run_diff(args.output, args.run_a, args.run_b)
    summary, largest = diff_summary(parts["blend"])
    attribution = diff_attribution(args.output, args.run_a, args.run_b)
    print(f"diff {args.run_a} -> {args.run_b}: {summary}")
    if largest.height:
        print("largest moves (blended value per share):")
        _print_table(_cents(largest))
    wide = attribution_wide(attribution)
    if wide is None:
        print(f"why the values moved: not attributed: {attribution.reason}")
    else:
        if args.changed_only:
            wide = wide.filter(moved(wide))
        print(
            "why the values moved (change per share split into its causes, applied in this order: "
            "input tables, parameters, method weights; the parts sum to the change):"
        )
        _print_table(wide)
    blend = parts["blend"].filter(pl.col("changed")) if args.changed_only else parts["blend"]
    print("blended values per share (low, base, high):")
    _print_table(_cents(blend.drop("changed")))
    for name, label in (("parameters", "parameters"), ("inputs", "inputs")):
        if parts[name].height:
            print(f"{label} that differ:")
            _print_table(parts[name])
        else:
            print(f"{label}: identical")
    values = parts["values"]
    if args.changed_only:
        a, b = pl.col("value_a"), pl.col("value_b")
        values = values.filter(
            ((b - a).abs() >= 0.005).fill_null(False) | (a.is_null() != b.is_null())
        )
    print(f"values per share per company and method ({args.run_a} -> {args.run_b}):")
    _print_table(_cents(values))
    for row in parts["parameters"].filter(pl.col("effect").is_not_null()).iter_rows(named=True):
        print(
            f"wfo: note: {row['key']} differs ({row['run_a']} -> {row['run_b']}); "
            f"{row['effect']}: {_effect_reason(parts['effects'], row['key'])}",
            file=sys.stderr,
        )
    if args.html is not None:
        import re

        from wfo_kit.diff_report import diff_page, write_diff_html

        # A run id is a folder name, but keep the default file name a plain name whatever it is.
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"diff-{args.run_a}-{args.run_b}.html")
        target = Path(args.output) / name if args.html is True else args.html
        page = diff_page(
            run_a=args.run_a,
            run_b=args.run_b,
            summary=summary,
            largest=largest,
            parts=parts,
            attribution=attribution,
            changed_only=args.changed_only,
        )
        print(f"html: {write_diff_html(target, page)}")
    return EXIT_OK


def _cents(frame: pl.DataFrame) -> pl.DataFrame:
    """Money to the cent and ``change_pct`` as a percentage, for the console."""
    import polars as pl

    floats = [c for c, t in frame.schema.items() if t == pl.Float64 and c != "change_pct"]
    out = frame.with_columns(pl.col(floats).round(2))
    if "change_pct" in out.columns:
        out = out.with_columns((pl.col("change_pct") * 100).round(1)).rename(
            {"change_pct": "change_%"}
        )
    return out


def _effect_reason(effects: pl.DataFrame, key: str) -> str:
    """Why a setting applied to none or only some companies, from the later run's note."""
    for row in effects.iter_rows(named=True):
        if key == row["setting"] or key.startswith(row["setting"] + "."):
            note = row["note_b"] or row["note_a"] or ""
            return note.partition(": ")[2] or note
    return ""


def cmd_rerun(args: argparse.Namespace) -> int:
    from wfo_kit.history import compare_results
    from wfo_kit.observers import quiet_stopped_cells
    from wfo_kit.runs import rerun

    quiet_stopped_cells()
    result, changed = rerun(
        args.output,
        args.run_id,
        accept_changed_inputs=args.accept_changed_inputs,
        confine=args.confine,
        log=lambda msg: print(f"wfo: {msg}", file=sys.stderr),
    )
    if result.error is not None:
        print(f"wfo: error: {result.error.one_line()} (report: {result.report})", file=sys.stderr)
        return result.error.exit_code
    for table, (old, new) in changed.items():
        print(f"input changed: {table}: {(old or 'none')[:12]} -> {(new or 'none')[:12]}")
    comparison = compare_results(result.run_dir.parent / args.run_id, result.run_dir)
    _print_table(comparison)
    same = int((comparison["status"] == "identical").sum())
    print(
        f"rerun {result.run_id} of {args.run_id}: {same} of {comparison.height} result tables "
        f"identical (row order included); report: {result.report}"
    )
    if same < comparison.height and not changed:
        print(
            "wfo: error: the same configuration and inputs gave different results",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    import datetime as dt

    import polars as pl

    from wfo_kit.logsinks import query_logs

    path = args.db.partition(":///")[2] or args.db
    if not Path(path).is_file():
        print(f"wfo: error: no log database at {path} (set logging.database)", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = query_logs(args.db, run_id=args.run, level=args.level, step=args.step)
    frame = pl.DataFrame(
        [
            {
                "time": dt.datetime.fromtimestamp(r["time"], dt.UTC).isoformat(timespec="seconds"),
                **{k: r[k] for k in ("run_id", "level", "logger", "message")},
            }
            for r in rows
        ],
        schema=dict.fromkeys(("time", "run_id", "level", "logger", "message"), pl.String),
    )
    _print_table(frame)
    return EXIT_OK


def cmd_schedule(args: argparse.Namespace) -> int:
    import datetime as dt

    from wfo_kit import schedules

    if args.action == "list":
        now = dt.datetime.now(dt.UTC)
        for name, entry in sorted(schedules.load_schedules(args.output).items()):
            upcoming = schedules.next_time(entry["cron"], now=now).isoformat(timespec="minutes")
            print(f"{name}  {entry['cron']!r}  next {upcoming}  last {entry['last_fired']}  "
                  f"{' '.join(entry['params'])}")  # fmt: skip
        return EXIT_OK
    if not args.name or (args.action == "add" and not args.cron):
        usage = 'add NAME "CRON" PARAMS...' if args.action == "add" else "remove NAME"
        print(f"wfo: error: usage: wfo schedule {usage}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.action == "add":
        schedules.add_schedule(args.output, args.name, args.cron, args.params, sets=args.sets)
        print(f"schedule {args.name} added: {args.cron!r} (UTC); run it with `wfo scheduler`")
    else:
        schedules.remove_schedule(args.output, args.name)
        print(f"schedule {args.name} removed")
    return EXIT_OK


def cmd_scheduler(args: argparse.Namespace) -> int:
    from wfo_kit.schedules import run_scheduler

    print(f"wfo: scheduler on {args.output} (Ctrl-C stops it)", file=sys.stderr)
    run_scheduler(
        args.output, once=args.once, say=lambda line: print(f"wfo: {line}", file=sys.stderr)
    )
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "config": cmd_config,
    "batch": cmd_batch,
    "runs": cmd_runs,
    "diff": cmd_diff,
    "rerun": cmd_rerun,
    "logs": cmd_logs,
    "schedule": cmd_schedule,
    "scheduler": cmd_scheduler,
    "serve": cmd_serve,
    "users": cmd_users,
    "audit": cmd_audit,
}


def console() -> int:
    """The ``wfo`` command: :func:`main` in a process of its own."""
    from wfo_kit.kernels import skip_unused_imports

    skip_unused_imports()
    return main()


if __name__ == "__main__":
    sys.exit(console())
