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
_SECTION_NAMES = "data validation valuation output report pipeline security notify logging cache"
SECTIONS = "".join(f"{name} = {{}}\n" for name in _SECTION_NAMES.split())

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
show.setup(interactive=not run_dir, units=config.report.units)
show.heading(config.report.title, 1)
wfo.run_steps(ctx)  # the configured pipeline.steps, in order (the one pipeline definition)
valued = "valuations" in ctx.frames
if valued:
    names = show.masked(ctx["input_companies"].unique("company_id", keep="first").select(
        "company_id", "name", "sector", "currency", "share_price"
    ), config.report)  # what tables and charts may show of each company
    prices = wfo.price_against_value(ctx["blend"], names, reverse=ctx.frames.get("reverse_dcf"),
                                     flows=ctx.frames.get("fcff"), financials=ctx["financials"])
    currencies = prices["currency"].drop_nulls().unique()
    show.set_currency(currencies[0] if currencies.len() == 1 else "")
    show.headline(wfo.headline(prices, input_companies=ctx["input_companies"],
                               valid_companies=ctx["companies"], financials=ctx["financials"],
                               valuation_date=config.valuation.valuation_date,
                               units=config.report.units))
else:
    names = None
    show.note(f"pipeline.steps ({', '.join(config.pipeline.steps)}) do not include `value`: "
              "there are no values to show.")
"""),
    md("""
## Price against value

Market price per share against the blended value (methods weighted, weights renormalised over the
methods that could value each company), and the free-cash-flow growth the price implies (reverse
DCF: the constant growth from the last actual year that makes the DCF equal the price) next to the
forecast's own growth on the same footing.
"""),
    code("""
if valued:
    show.table(prices, config.report, rows=10_000,
               caption="Market price against blended value (low, base, high), per company")
    show.show(charts.upside_ranking(prices))
    show.table(wfo.portfolio_summary(ctx["valuations"], ctx["blend"], names), config.report,
               rows=10_000, caption="Value per share by method and blended range")
    show.show(charts.value_per_share_bars(ctx["valuations"], names))  # one currency at a time
"""),
    md("""
## Company detail

Every section below shows one company at a time: choose it in the company bar (it stays at the top
of the window while you scroll), or in a chart's own menu.
"""),
    code("""
if valued:
    detail_ids = show.selected_companies(ctx["valuations"], config.report)
    show.company_picker(names, detail_ids,
                        note=show.detail_note(ctx["valuations"], config.report, detail_ids))
    show.show(charts.football_field(ctx["valuations"], ctx["blend"], names, detail_ids,
                                    prices=names))
    why_dcf = charts.reasons_for(ctx["valuations"], "dcf")  # notes where a chart has nothing
else:
    detail_ids = []
"""),
    md("""
### DCF

Free cash flow to the firm, discounted per `docs/conventions.md`; the terminal value's share of
enterprise value and the implied exit multiple are the first things to check.
"""),
    code("""
if "dcf_detail" in ctx.frames:
    picked = pl.col("company_id").is_in(detail_ids)
    show.table(wfo.with_names(ctx["dcf_detail"].filter(picked).select(
        "company_id", "discount_rate", "terminal_growth", "spread", "horizon", "pv_explicit",
        "terminal_value", "pv_terminal", "enterprise_value", "terminal_share",
        "implied_exit_multiple", "equity_value", "value_per_share"), names), config.report,
        rows=10_000, company_column="company_id", caption="DCF: discounted cash flow valuation")
    flows = ctx.frames.get("fcff", ctx.frames.get("driver_forecast"))
    show.table(wfo.with_names(wfo.fcff_by_year(flows, detail_ids), names), config.report,
               rows=10_000, company_column="company_id",
               caption=f"Free cash flow to the firm by forecast year ({config.report.units})")
    show.show(charts.bridge_waterfall(ctx["equity_bridge"], names, detail_ids,
                                      units=config.report.units, reasons=why_dcf))
else:
    show.note("DCF is not among the configured methods.")
"""),
    md("""
### Diagnostics

The DCF's traffic lights for the company in the bar: each check's light (red, amber, green; grey
where an input is missing), its value and its threshold (`valuation.diagnostics`).
"""),
    code("""
if "diagnostics" in ctx.frames:
    show.lights(ctx["diagnostics"], company_ids=detail_ids)
"""),
    md("""
### Sensitivity

Value per share when the discount rate and terminal growth (or the exit multiple) move.
"""),
    code("""
if "sensitivity" in ctx.frames:
    show.show(charts.sensitivity_heatmap(ctx["sensitivity"], names, detail_ids, reasons=why_dcf))
    show.show(charts.sensitivity_heatmap(
        ctx["sensitivity"], names, detail_ids, grid="rate_x_exit_multiple", reasons=why_dcf
    ))
"""),
    md("""
### Scenarios and Monte Carlo
"""),
    code("""
if "scenarios" in ctx.frames:
    show.show(charts.scenario_bars(ctx["scenarios"], ctx["scenario_summary"], names, detail_ids,
                                   reasons=why_dcf))
if "simulation" in ctx.frames:
    show.note(wfo.simulation_note(config.valuation.monte_carlo.draws,
                                  config.valuation.monte_carlo.sampler, ctx["simulation"]))
    show.show(charts.simulation_histogram(
        ctx["simulation_draws"], ctx["simulation"], names, detail_ids, reasons=why_dcf
    ))
    show.table(wfo.with_names(ctx["simulation"].filter(pl.col("company_id").is_in(detail_ids)),
                              names), config.report, rows=10_000, company_column="company_id",
               caption="Monte Carlo summary: value per share")
"""),
    md("""
### Comparable companies

Peer multiples per sector (or per target where the peers table names targets); peers whose
denominator is not positive are excluded, with the reason.
"""),
    code("""
if "comparables_detail" in ctx.frames:
    detail = ctx["comparables_detail"].filter(pl.col("company_id").is_in(detail_ids))
    show.table(wfo.with_names(detail, names), config.report, rows=10_000,
               company_column="company_id", caption="Comparables: peer multiple applied")
    show.table(ctx["peer_multiples"].filter(pl.col("reason").is_not_null()), config.report,
               caption="Peers excluded, with the reason")
"""),
    md("""
### Asset-based value and liquidation
"""),
    code("""
if "asset_values" in ctx.frames:
    show.table(wfo.with_names(ctx["asset_values"].filter(pl.col("company_id").is_in(detail_ids)),
                              names), config.report, rows=10_000, company_column="company_id",
               caption="Asset-based: adjusted net asset value and liquidation value")
    show.show(charts.liquidation_waterfall(ctx["liquidation_waterfall"], names, detail_ids,
                                           units=config.report.units,
                                           reasons=charts.reasons_for(ctx["valuations"], "asset")))
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
    md("""
## Model diagnostics and accuracy
"""),
    code("""
if "diagnostics" in ctx.frames:
    show.note("DCF traffic lights, every company (red first; thresholds: valuation.diagnostics)")
    show.lights(ctx["diagnostics"], names=names)
if "accuracy" in ctx.frames:
    show.table(ctx["accuracy"], config.report, rows=1000,
               caption="Model value / market price by method and sector")
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

Pick a company and change its assumptions: the DCF, the football field (with the market price),
the sensitivity grid, the scenarios and a Monte Carlo are re-valued at once (vectorized; no
notebook re-run). It opens on exactly the report's numbers: each box holds the company's own
input (rates in % a year; the arrows step by 0.25 point, any value can be typed), and "Back to the
report's inputs" restores them. Run the cells top to bottom in JupyterLab.
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
from pathlib import Path

from IPython.display import HTML, display

from wfo_kit import display as show
from wfo_kit import history

show.setup()
show.heading("Run history", 1)
runs = history.run_history(output_root)
steps = history.step_durations(output_root)
trends = history.value_trends(output_root)
accuracy = history.accuracy_trends(output_root)
show.note(f"{runs.height} runs under {Path(output_root).name}/; times in UTC")
"""),
    md("""
## Runs per day and outcome
"""),
    code("""
if runs.height:
    show.show(history.runs_per_day_figure(runs))
    show.table(runs.group_by("status").len("runs").sort("runs", descending=True),
               caption="Runs by outcome")
"""),
    md("""
## Runs
Each run links to its report (links are relative to this page, beside the run folders).
"""),
    code("""
if runs.height:
    display(HTML(history.runs_table_html(runs, history_file=Path(output_root) / "history.html")))
"""),
    md("""
## Values across runs
"""),
    code("""
if trends.height:
    show.show(history.value_trend_figure(trends))
else:
    show.note("No succeeded run with a blend table yet.")
"""),
    md("""
## Valuation accuracy across runs
Model value / market price per method (all sectors): median absolute log error and the share of
companies within ±20 % of the price, from each run's `accuracy` result table.
"""),
    code("""
if accuracy["method"].drop_nulls().len():
    show.show(history.accuracy_figure(accuracy))
else:
    show.note(f"No succeeded run with an accuracy table yet ({accuracy.height} runs skipped).")
"""),
    md("""
## Step durations, data quality and throughput
"""),
    code("""
if steps.height:
    show.show(history.step_figure(steps))
if runs.filter(runs["quality_score"].is_not_null()).height:
    show.show(history.quality_figure(runs))
    show.show(history.throughput_figure(runs))
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
