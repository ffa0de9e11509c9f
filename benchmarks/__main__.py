"""Run every benchmark, print a table, write outputs/bench/latest.json.

``python -m benchmarks`` runs all suites; ``python -m benchmarks dcf risk`` runs some.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
from pathlib import Path

# Suites are imported when run: a batch bench's worker processes (spawned) import this module
# again, and importing every suite there (Polars, the DCF, the validation tables: 0.6 s of CPU a
# worker, measured) is start-up that `wfo batch` itself does not have.
SUITES = {
    "dcf": "bench_dcf",
    "risk": "bench_risk",
    "validate": "bench_validate",
    "batch": "bench_batch",
    "report": "bench_report",
    "explore": "bench_explore",
    "serve": "bench_serve",
    "cache": "bench_cache",
}


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in SUITES]
    if unknown:
        print(f"unknown suite(s) {unknown}; known: {sorted(SUITES)}", file=sys.stderr)
        return 2
    figures = []
    for name in argv or list(SUITES):
        print(f"running {name} ...", file=sys.stderr)
        figures += importlib.import_module(f"benchmarks.{SUITES[name]}").run()
    print(
        f"{'figure':<28} {'value':>11} {'+/-%':>5} {'unit':<16} {'baseline':>11} {'+/-%':>5} "
        f"{'ratio':>7}  baseline (median of n repeats; +/-%: (max - min) / median)"
    )
    for f in figures:
        print(
            f"{f['name']:<28} {f['value']:>11.4g} {_spread(f, 'value'):>5} {f['unit']:<16} "
            f"{f['baseline_value']:>11.4g} {_spread(f, 'baseline'):>5} {f['ratio']:>7.3f}  "
            f"{f['baseline']}"
        )
    out = Path("outputs/bench/latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": platform.node(), "python": platform.python_version(), "figures": figures}
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    (out.parent / "machine.json").write_text(json.dumps(payload["machine"]) + "\n")
    print(f"written: {out}")
    return 0


def _spread(figure: dict, side: str) -> str:
    pct = figure["params"].get(f"{side}_spread", {}).get("spread_pct")
    return "" if pct is None else f"{pct:.0f}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
