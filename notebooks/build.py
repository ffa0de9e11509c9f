"""Write the committed notebooks from this file (python notebooks/build.py).

Notebooks are thin: a `parameters` cell of literals, then calls into wfo_kit, then displays.
Keeping their source here makes them reviewable as code; a test checks the .ipynb files match.
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent
KERNEL = {"name": "wfo_kit", "display_name": "Python (wfo_kit)", "language": "python"}


def md(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_markdown_cell(text.strip())


def code(text: str, *tags: str) -> nbf.NotebookNode:
    cell = nbf.v4.new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# One dict per section of wfo_kit.config.Config (a test checks the names against the model).
SECTIONS = "".join(
    f"{name} = {{}}\n"
    for name in (
        "data",
        "validation",
        "valuation",
        "output",
        "report",
        "pipeline",
        "security",
        "cache",
    )
)

VALUATION = [
    code(
        """
# Parameters. `wfo run` injects the run's effective configuration below this cell: one dict per
# section of wfo_kit.config.Config. Empty dicts mean the defaults; an empty `data`: the bundled
# sample's four tables.
"""
        + SECTIONS
        + """run_dir = ""  # folder for result tables and log.jsonl; empty: results are shown, not written
run_id = ""
sources = {}  # where each configuration value came from (filled in by `wfo run`)
""",
        "parameters",
    ),
    code("""
import polars as pl

import wfo_kit as wfo
from wfo_kit import charts
from wfo_kit import display as show

config = wfo.Config.model_validate({"data": data or wfo.sample_data(), "validation": validation,
                                    "valuation": valuation, "output": output, "report": report,
                                    "pipeline": pipeline, "security": security,
                                    "cache": cache})
ctx = wfo.start_run(config, run_dir=run_dir or None, run_id=run_id or None,
                    interactive=not run_dir, sources=sources or None)
show.setup(interactive=not run_dir)
show.heading(config.report.title, 1)
"""),
    md("""
## Executive summary

Value per share by method and the blended range (weights renormalised over the methods that
could value each company). Money is in each company's currency and the input units.
"""),
    code("""
wfo.run_steps(ctx)  # the configured pipeline.steps, in order (the one pipeline definition)
valued = "valuations" in ctx.frames
if valued:
    names = show.masked(ctx["input_companies"].unique("company_id", keep="first").select(
        "company_id", "name", "sector", "currency"
    ), config.report)  # what charts may show of each company
    detail_ids = show.selected_companies(ctx["valuations"], config.report)
    show.table(
        wfo.portfolio_summary(ctx["valuations"], ctx["blend"], names),
        config.report,
        caption="Value per share by method and blended range",
    )
else:
    names, detail_ids = None, []
    show.note(f"pipeline.steps ({', '.join(config.pipeline.steps)}) do not include `value`: "
              "there are no values to show.")
"""),
    code("""
if valued:
    show.show(charts.football_field(ctx["valuations"], ctx["blend"], names, detail_ids))
    show.show(charts.value_per_share_bars(ctx["valuations"], names))
"""),
    md("""
## DCF detail

Free cash flow to the firm, discounted per `docs/conventions.md`; the terminal value's share of
enterprise value and the implied exit multiple are the first things to check.
"""),
    code("""
if "dcf_detail" in ctx.frames:
    show.table(ctx["dcf_detail"].filter(pl.col("company_id").is_in(detail_ids)).select(
        "company_id", "discount_rate", "terminal_growth", "spread", "horizon", "pv_explicit",
        "terminal_value", "pv_terminal", "enterprise_value", "terminal_share",
        "implied_exit_multiple", "equity_value", "value_per_share"), config.report)
    flows = ctx.frames.get("fcff", ctx.frames.get("driver_forecast"))
    show.note("Free cash flow to the firm by forecast year:")
    show.table(wfo.fcff_by_year(flows, detail_ids), config.report)
    for company_id in detail_ids[:3]:
        if company_id in ctx["equity_bridge"]["company_id"]:
            show.show(charts.bridge_waterfall(ctx["equity_bridge"], company_id))
else:
    show.note("DCF is not among the configured methods.")
"""),
    md("""
## Sensitivity

Value per share when the discount rate and terminal growth (or the exit multiple) move; choose the
company in the chart's menu.
"""),
    code("""
if "sensitivity" in ctx.frames:
    show.show(charts.sensitivity_heatmap(ctx["sensitivity"], names, detail_ids))
    show.show(charts.sensitivity_heatmap(
        ctx["sensitivity"], names, detail_ids, grid="rate_x_exit_multiple"
    ))
"""),
    md("""
## Scenarios and Monte Carlo
"""),
    code("""
if "scenarios" in ctx.frames:
    show.show(charts.scenario_bars(ctx["scenarios"], ctx["scenario_summary"], names, detail_ids))
if "simulation" in ctx.frames:
    show.show(charts.simulation_histogram(
        ctx["simulation_draws"], ctx["simulation"], names, detail_ids
    ))
    show.table(ctx["simulation"].filter(pl.col("company_id").is_in(detail_ids)), config.report)
"""),
    md("""
## Comparable companies

Peer multiples per sector (or per target where the peers table names targets); peers whose
denominator is not positive are excluded, with the reason.
"""),
    code("""
if "comparables_detail" in ctx.frames:
    detail = ctx["comparables_detail"].filter(pl.col("company_id").is_in(detail_ids))
    show.table(detail, config.report)
    show.table(ctx["peer_multiples"].filter(pl.col("reason").is_not_null()), config.report)
"""),
    md("""
## Asset-based value and liquidation
"""),
    code("""
if "asset_values" in ctx.frames:
    show.table(ctx["asset_values"].filter(pl.col("company_id").is_in(detail_ids)), config.report)
    for company_id in detail_ids[:3]:
        if company_id in ctx["liquidation_waterfall"]["company_id"]:
            show.show(charts.liquidation_waterfall(ctx["liquidation_waterfall"], company_id))
"""),
    md("""
## Data quality and quarantine

Every input row is either valid or quarantined with a reason: for each table, rows in = valid +
quarantined. `row` is the 1-based data row of the source (in a CSV file: line `row + 1`).
Companies that could not be valued by a method are listed with the reason below.
"""),
    code("""
given = wfo.shared_sources(wfo.given_tables(config.data), sources)  # no absolute paths
show.table(pl.DataFrame(given, schema=["table", "source"], orient="row"),
           config.report, caption="Input tables given, and where from (a table not given is "
           "absent: the methods that need it value no company)")
if "quality" in ctx.frames:
    show.table(ctx["quality"], config.report, caption="Data quality per input table")
    show.table(ctx["quarantine"], config.report, rows=1000, caption="Quarantined rows")
    show.table(ctx["warnings"], config.report, caption="Warnings")
if valued:
    not_valued = ctx["valuations"].filter(pl.col("status") == "excluded")
    show.table(
        not_valued.select("company_id", "method", "reason"),
        config.report,
        rows=1000,
        caption="Companies a method could not value",
    )
"""),
    md("""
## Run metadata
"""),
    code("""
wfo.finish_run(ctx)
show.table(
    wfo.run_metadata(ctx, sources=sources),
    config.report,
    rows=1000,
    caption="Parameters (with their source), settings that apply to none or only some "
    "companies (effect.*), input hashes, versions, step timings",
)
"""),
]


EXPLORE = [
    code(
        """
# Parameters: same sections as the valuation notebook (empty: the bundled sample).
"""
        + SECTIONS
        + """""",
        "parameters",
    ),
    md("""
# Valuation explorer

Pick a company and move the assumptions: the DCF, the football field and the sensitivity grid are
re-valued at once (vectorized; no notebook re-run). Run the cells top to bottom in JupyterLab.
"""),
    code("""
import wfo_kit as wfo
from wfo_kit import explore

config = wfo.Config.model_validate({"data": data or wfo.sample_data(), "validation": validation,
                                    "valuation": valuation, "output": output, "report": report,
                                    "pipeline": pipeline, "security": security,
                                    "cache": cache})
ctx = wfo.run_pipeline(wfo.RunContext(config), ["load", "validate", "value"])
explorer = explore.Explorer(ctx)
explorer.widget
"""),
]


HISTORY = [
    code(
        """
# Parameters: the folder holding the run folders (each with a manifest.json).
output_root = "outputs"
""",
        "parameters",
    ),
    code("""
import plotly.express as px
import polars as pl

from wfo_kit import display as show
from wfo_kit.history import run_history, step_durations

show.setup()
show.heading("Run history", 1)
runs = run_history(output_root)
steps = step_durations(output_root)
show.note(f"{runs.height} runs under {output_root}")
"""),
    md("""
## Runs per day and outcome
"""),
    code("""
if runs.height:
    per_day = (
        runs.with_columns(pl.col("started").dt.date().alias("day"))
        .group_by("day", "status").len().sort("day")
    )
    show.show(px.bar(per_day, x="day", y="len", color="status",
                     title="Runs per day"))
    rates = runs.group_by("status").len().with_columns(
        (pl.col("len") / pl.col("len").sum()).alias("share"))
    show.table(rates)
"""),
    md("""
## Step durations, data quality and throughput
"""),
    code("""
if steps.height:
    show.show(px.box(steps, x="step", y="seconds", points="all",
                     title="Step durations (seconds)"))
if runs.filter(pl.col("quality_score").is_not_null()).height:
    ordered = runs.sort("started").filter(pl.col("quality_score").is_not_null())
    show.show(px.line(ordered, x="started", y="quality_score", markers=True,
                      title="Data quality score over time"))
    show.show(px.line(ordered, x="started", y="companies_per_second", markers=True,
                      title="Throughput (companies per second, whole run)"))
show.table(runs.select("run_id", "status", "started", "seconds", "companies", "valued",
                       "quality_score", "error"), rows=200)
"""),
]


def build(cells: list[nbf.NotebookNode]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    nbf.validate(nb)
    return nb


NOTEBOOKS = {"valuation.ipynb": VALUATION, "explore.ipynb": EXPLORE, "history.ipynb": HISTORY}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nbf.write(build(cells), HERE / name)


if __name__ == "__main__":
    main()
