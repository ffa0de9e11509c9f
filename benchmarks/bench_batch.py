"""Per-report cost and batch throughput, against bare Papermill + nbconvert in the same run."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import figure, median_seconds

ROOT = Path(__file__).resolve().parent.parent


def _trivial_notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(x + 1)"),
    ]
    nb.metadata["kernelspec"] = {"name": "wfo_kit", "display_name": "wfo_kit", "language": "python"}
    path = folder / "trivial.ipynb"
    nbformat.write(nb, path)
    return path


def run(reports: int = 24) -> list[dict]:
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    from wfo_kit.batch import run_batch
    from wfo_kit.config import resolve_config
    from wfo_kit.runs import run_report

    work = Path(tempfile.mkdtemp(prefix="wfo-bench-"))
    trivial = _trivial_notebook(work)

    def bare() -> None:
        out = work / "trivial-out.ipynb"
        papermill.execute_notebook(
            str(trivial), str(out), kernel_name="wfo_kit", progress_bar=False
        )
        HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))

    resolved = resolve_config(ROOT / "parameters" / "default.yaml")

    def ours() -> None:
        run_report(resolved, params_file="bench", output_root=work / "single", reuse_kernel=True)

    def ours_cold() -> None:
        run_report(resolved, params_file="bench", output_root=work / "cold")

    t_ours = median_seconds(ours, repeats=3)
    t_cold = median_seconds(ours_cold, repeats=3)
    t_bare = median_seconds(bare, repeats=3)

    params = work / "params"
    params.mkdir()
    for n in range(reports):
        rate = 0.07 + 0.005 * n  # every report a distinct run
        (params / f"p{n}.yaml").write_text(
            f"extends: {ROOT / 'parameters' / 'default.yaml'}\n"
            f"valuation:\n  terminal_growth: 0.0{n % 3 + 1}\n  discount_rate: {rate:.3f}\n"
            f"report:\n  title: bench {n}\n",
            encoding="utf-8",
        )
    rates = {}
    peaks: list[float] = []
    for workers in (1, 2):
        start = time.perf_counter()
        outcomes, _ = run_batch(
            [str(params / "*.yaml")],
            output_root=work / f"batch{workers}",
            workers=workers,
            force=True,
        )
        seconds = time.perf_counter() - start
        assert all(o.status == "succeeded" for o in outcomes), outcomes
        rates[workers] = reports / seconds * 60
        peaks += [(o.worker_peak_mb or 0) + (o.kernel_peak_mb or 0) for o in outcomes]
    peak_worker_mb = max(peaks)
    return [
        figure(
            "report_cost",
            value=t_ours,
            unit="s/report",
            baseline="bare_papermill_nbconvert",
            baseline_value=t_bare,
            n=3,
            higher_is_better=False,
            params={"goal": "ratio <= 1.3", "in_process": True, "kernel": "warm (batch)"},
        ),
        figure(
            "report_cost_cold_kernel",
            value=t_cold,
            unit="s/report",
            baseline="bare_papermill_nbconvert",
            baseline_value=t_bare,
            n=3,
            higher_is_better=False,
            params={"kernel": "new per report (wfo run)"},
        ),
        figure(
            "batch_throughput_2_workers",
            value=rates[2],
            unit="reports/min",
            baseline="batch_1_worker",
            baseline_value=rates[1],
            n=reports,
            params={"goal": ">= 60/min and speed-up >= 1.6x", "reports": reports},
        ),
        figure(
            "batch_peak_memory_per_worker",
            value=peak_worker_mb,
            unit="MiB",
            baseline="none",
            baseline_value=peak_worker_mb,
            n=reports,
            higher_is_better=False,
            params={"measured": "peak RSS (VmHWM) of a worker process plus its kernel"},
        ),
    ]
