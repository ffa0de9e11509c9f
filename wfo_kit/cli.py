"""The ``wfo`` command line.

Errors are one readable line on stderr (``wfo: error: ...``) and an exit code from
:mod:`wfo_kit.errors`: 2 for bad input or usage, 1 for a failed run, 3 for infrastructure.
``--debug`` shows the traceback. Heavy imports happen inside the commands, so ``wfo --help``
is fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from wfo_kit import __version__
from wfo_kit.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, WfoError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"wfo: error: {message} (see `{self.prog} --help`)\n")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("params", help="parameters file (YAML or JSON)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set valuation.terminal_growth=0.025 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wfo",
        description="Company valuation workflows: load -> validate -> value -> output -> report.",
    )
    parser.add_argument("--version", action="version", version=f"wfo_kit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="value the companies and publish the HTML report",
        description="Execute notebooks/valuation.ipynb with Papermill for one parameters file "
        "and publish it as self-contained HTML under <output.root>/<run_id>/.",
    )
    _add_config_options(run)
    run.add_argument("--output", type=Path, help="output root folder (default: output.root)")
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
    validate.add_argument("--quarantine", type=Path, help="CSV file for the quarantine table")

    config = commands.add_parser("config", help="inspect the effective configuration")
    config_commands = config.add_subparsers(
        dest="config_command", metavar="SUBCOMMAND", parser_class=_Parser
    )
    show = config_commands.add_parser("show", help="print the effective configuration")
    _add_config_options(show)
    show.add_argument("--sources", action="store_true", help="say where each value came from")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return COMMANDS[args.command](args)
    except WfoError as exc:
        if args.debug:
            raise
        print(f"wfo: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wfo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        text = " ".join(str(exc).split())
        print(
            f"wfo: internal error: {type(exc).__name__}: {text} (rerun with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _resolve(args: argparse.Namespace):  # noqa: ANN202
    from wfo_kit.config import resolve_config

    return resolve_config(args.params, sets=args.sets)


def cmd_run(args: argparse.Namespace) -> int:
    from wfo_kit.publish import run_report

    resolved = _resolve(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = run_report(
        resolved,
        params_file=args.params,
        output_root=args.output,
        log=None if progress else (lambda msg: print(f"wfo: {msg}", file=sys.stderr)),
        progress=progress,
    )
    if result.error is not None:
        log = result.run_dir / "log.jsonl"
        print(
            f"wfo: error: {result.error.one_line()} (report: {result.report}; log: {log})",
            file=sys.stderr,
        )
        return result.error.exit_code
    print(result.report)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    import polars as pl

    from wfo_kit.io import load_tables, write_frame
    from wfo_kit.pipeline import check_step_names
    from wfo_kit.validate import validate_tables

    config = _resolve(args).config
    check_step_names(config)
    checked = validate_tables(
        load_tables(config.data), validation=config.validation, valuation=config.valuation
    )
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(checked.quality)
    target = (
        args.quarantine or Path(config.output.root) / f"quarantine-{Path(args.params).stem}.csv"
    )
    write_frame(checked.quarantine, target)
    print(f"quarantine: {checked.quarantine.height} failed check(s) written to {target}")
    worst = checked.quality["score"].min() if checked.quality.height else 1.0
    if worst is not None and worst < config.validation.fail_below:
        print(
            f"wfo: error: data quality {worst:.3f} is below validation.fail_below "
            f"{config.validation.fail_below}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
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


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "config": cmd_config}


if __name__ == "__main__":
    sys.exit(main())
