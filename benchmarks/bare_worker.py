"""A bare batch worker, the memory baseline: papermill + nbconvert in a loop, nothing of ours.

``python -m benchmarks.bare_worker OUT_DIR REPORTS`` runs the bundled valuation notebook with the
sample's parameters ``REPORTS`` times (a new kernel each, one exporter) and prints, as JSON, the
peak RSS of this process and of its largest kernel, in MiB.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main(out: Path, reports: int) -> None:
    from nbconvert import HTMLExporter

    from benchmarks.bench_batch import bare_report
    from wfo_kit.publish import notebook_path

    exporter = HTMLExporter()
    for n in range(reports):
        folder = out / f"r{n}"
        folder.mkdir()
        bare_report(notebook_path(), folder, exporter=exporter, shutdown_kernel="immediate")
    # kernels are children of this process, waited for at shutdown: ru_maxrss is the largest
    kernel_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print(json.dumps({"worker_mb": _vm_hwm_mb(), "kernel_mb": kernel_mb, "reports": reports}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
