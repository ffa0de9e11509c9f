"""Run every benchmark, print a table, write outputs/bench/latest.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import bench_dcf

SUITES = {"dcf": bench_dcf.run}


def main(argv: list[str]) -> int:
    chosen = argv or list(SUITES)
    figures = []
    for name in chosen:
        figures += SUITES[name]()
    print(f"{'figure':<34} {'value':>14} {'unit':<18} {'baseline':>14} {'ratio':>7}")
    for f in figures:
        print(
            f"{f['name']:<34} {f['value']:>14.4g} {f['unit']:<18} {f['baseline_value']:>14.4g} "
            f"{f['ratio']:>7.3f}  (vs {f['baseline']})"
        )
    out = Path("outputs/bench/latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
