"""The step cache on a re-run that changes only the discount rate, 1e6 financials rows.

Both sides run the same pipeline steps (load, validate, value) through ``run_steps`` on the same
CSV files with a new discount rate each repeat; ours with the step cache, the baseline with
``cache.enabled: false``. Two figures: the cache in memory (a notebook re-run in the same kernel)
and on disk only (memory cleared before each run: a new ``wfo run`` process). Each cached run's
valuations are checked equal to the uncached run's at the same rate.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from benchmarks.bench_validate import companies_table, financials
from benchmarks.common import figure, interleaved
from wfo_kit import cache
from wfo_kit.config import Config
from wfo_kit.pipeline import RunContext, run_steps

STEPS = ["load", "validate", "value"]


def write_inputs(folder: Path, n: int) -> dict[str, str]:
    frame, ids = financials(n, n // 10)
    companies = companies_table(ids["company_id"])
    paths = {"companies": folder / "companies.csv", "financials": folder / "financials.csv"}
    companies.drop("_row", strict=False).write_csv(paths["companies"])
    frame.drop("_row", strict=False).write_csv(paths["financials"])
    return {name: str(path) for name, path in paths.items()}


def config(paths: dict[str, str], store: Path, *, rate: float, enabled: bool) -> Config:
    # DCF only, no grids or draws: what changes with the rate stays small, so the figure shows
    # what the cache saves (the value step's own cost is benchmarked in bench_dcf).
    return Config.model_validate(
        {
            "data": paths,
            "valuation": {
                "methods": ["dcf"],
                "precedence": "config",
                "discount_rate": rate,
                "sensitivity": {"enabled": False},
                "monte_carlo": {"enabled": False},
            },
            "cache": {"dir": str(store), "enabled": enabled},
        }
    )


def run(n: int = 1_000_000, repeats: int = 5) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="wfo-bench-cache-") as tmp:
        folder = Path(tmp)
        paths = write_inputs(folder, n)
        store = folder / "steps"
        rates = iter([0.08 + 0.0005 * i for i in range(1000)])
        seen: dict[str, list[dict[str, Any]]] = {"memory": [], "disk": [], "off": []}
        last: dict[str, pl.DataFrame] = {}

        def side(name: str) -> Any:
            def go() -> None:
                rate = next(rates)
                if name == "disk":
                    cache.clear_memory()  # as a new process: only the disk entries remain
                ctx = run_steps(
                    RunContext(config(paths, store, rate=rate, enabled=name != "off")), STEPS
                )
                steps = {s["step"]: s for s in ctx.metrics.steps}
                seen[name].append({k: (v["seconds"], v.get("cache")) for k, v in steps.items()})
                last[name] = ctx.frames["valuations"]
                last[f"{name}_rate"] = pl.DataFrame({"rate": [rate]})

            return go

        times = interleaved(
            {"memory": side("memory"), "disk": side("disk"), "off": side("off")},
            repeats=repeats,
        )
        check = run_steps(
            RunContext(config(paths, store, rate=last["memory_rate"]["rate"][0], enabled=False)),
            STEPS,
        )
        assert_frame_equal(check.frames["valuations"], last["memory"])
        for name in ("memory", "disk"):  # every timed cached run was a hit, both steps
            outcomes = {o for run_ in seen[name][1:] for _, o in run_.values() if o}
            if outcomes != {name}:
                msg = f"{name} side saw cache outcomes {outcomes}"
                raise AssertionError(msg)
        input_mb = sum(Path(p).stat().st_size for p in paths.values()) / 1e6
        steps_median = {
            name: {
                step: statistics.median(r[step][0] for r in runs[1:])
                for step in ("load", "validate", "value")
            }
            for name, runs in seen.items()
        }
    common = {
        "rows": {"financials": n, "companies": n // 10},
        "input_csv_mb": round(input_mb, 1),
        "steps_median_seconds": steps_median,
        "baseline": "the same run_steps(load, validate, value) with cache.enabled: false: "
        "reads and validates the CSVs again",
        "settings": "valuation.methods [dcf], precedence config, a new discount_rate each "
        "repeat; sensitivity and Monte Carlo off",
        "checked": "the cached run's valuations equal an uncached run's at the same rate",
    }
    out = []
    for name, what in (
        ("memory", "in memory (a notebook re-run in the same kernel)"),
        ("disk", "on disk only, memory cleared before each run (a new wfo run process)"),
    ):
        out.append(
            figure(
                f"rerun_changed_rate_{name}",
                value=statistics.median(times[name]),
                unit="s",
                baseline="no_cache",
                baseline_value=statistics.median(times["off"]),
                n=n,
                higher_is_better=False,
                params={**common, "ours": f"step cache {what}: load and validate hit"},
                value_samples=times[name],
                baseline_samples=times["off"],
            )
        )
    # The part the cache is for: load + validate of the same repeats, ours against no cache.
    inputs_seconds = {
        name: [r["load"][0] + r["validate"][0] for r in runs[1:]] for name, runs in seen.items()
    }
    for name in ("memory", "disk"):
        out.append(
            figure(
                f"rerun_load_validate_{name}",
                value=statistics.median(inputs_seconds[name]),
                unit="s",
                baseline="no_cache",
                baseline_value=statistics.median(inputs_seconds["off"]),
                n=n,
                higher_is_better=False,
                params={
                    **common,
                    "ours": f"the load and validate steps of rerun_changed_rate_{name} "
                    "(step_finished seconds)",
                },
                value_samples=inputs_seconds[name],
                baseline_samples=inputs_seconds["off"],
            )
        )
    return out
