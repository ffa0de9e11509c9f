"""How fast the explorer answers a slider: ``Explorer.update`` on the sample.

One interaction re-values the company (DCF and its range), its sensitivity grid, its scenarios and
a 2,000-draw Monte Carlo, blends the methods and updates five figure widgets. The baseline does the
same valuation work without widgets (``explore.revalue``), so the ratio is what the widgets cost;
the goal (issue 16) is a median of at most 50 ms for the whole interaction.
"""

from __future__ import annotations

import statistics

from benchmarks.common import figure, interleaved, threads


def run(repeats: int = 21) -> list[dict]:
    import polars as pl

    from wfo_kit.config import load_config
    from wfo_kit.explore import EXPLORER_DRAWS, Explorer, revalue
    from wfo_kit.pipeline import RunContext, run_pipeline

    ctx = run_pipeline(
        RunContext(load_config("parameters/default.yaml")), ["load", "validate", "value"]
    )
    explorer = Explorer(ctx)
    company = explorer.company.value
    rates = [explorer.rate.value + 0.25 * (i % 8) for i in range(repeats + 1)]
    step = iter(range(10**9))

    def update() -> None:
        # A slider move: the slider's observer makes exactly one update.
        explorer.rate.value = rates[next(step) % len(rates)]

    def library_only() -> object:
        return revalue(ctx, explorer.assumptions(), prepared=explorer.prepared())

    times = interleaved({"ours": update, "baseline": library_only}, repeats=repeats, warmup=2)
    ours_ms = [t * 1000 for t in times["ours"]]
    base_ms = [t * 1000 for t in times["baseline"]]
    result = revalue(ctx, explorer.assumptions())
    if result["draws"].height < EXPLORER_DRAWS or result["scenarios"].height == 0:
        msg = "the explorer did not compute its scenarios and Monte Carlo"
        raise AssertionError(msg)
    if ctx["companies"].filter(pl.col("company_id") == company).height != 1:
        msg = f"company {company} is not in the sample"
        raise AssertionError(msg)
    return [
        figure(
            "explorer_update",
            value=statistics.median(ours_ms),
            unit="ms per interaction",
            baseline="explore.revalue alone (with explore.prepare, as the explorer): the same "
            "valuation, grid, scenarios and "
            f"{EXPLORER_DRAWS:,}-draw Monte Carlo, no widgets",
            baseline_value=statistics.median(base_ms),
            n=repeats,
            params={
                "company": company,
                "draws": int(result["draws"].height),
                "goal_ms": 50,
                "threads": threads(),
            },
            higher_is_better=False,
            value_samples=ours_ms,
            baseline_samples=base_ms,
        )
    ]
