"""Timing helpers: medians over repeats, every figure paired with a baseline from the same run.

Each figure carries, in ``params``: the samples behind its median (both sides), their spread,
the thread counts of Polars and NumPy/BLAS, and the machine's facts (CPUs, load) at the time.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import cache
from typing import Any


def samples(fn: Callable[[], Any], *, repeats: int = 7, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn``, ``repeats`` times, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved(
    sides: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each side, taking turns (a, b, a, b, ...) so that a change of load on
    this shared machine hits every side alike. Each side gets ``warmup`` untimed calls first."""
    for fn in sides.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], Any], *, repeats: int = 7, warmup: int = 1) -> float:
    return statistics.median(samples(fn, repeats=repeats, warmup=warmup))


def spread(values: list[float]) -> dict[str, Any]:
    """Median, range and (max - min) / median of some samples."""
    mid = statistics.median(values)
    return {
        "median": mid,
        "min": min(values),
        "max": max(values),
        "spread_pct": 100.0 * (max(values) - min(values)) / mid if mid else None,
        "samples": [round(v, 6) for v in values],
    }


def threads() -> dict[str, Any]:
    """Thread counts that decide these figures: Polars' pool, NumPy's BLAS, the CPUs we may use."""
    import numpy as np
    import polars as pl

    facts: dict[str, Any] = {
        "polars": pl.thread_pool_size(),
        "cpus_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "numpy_elementwise": 1,  # NumPy's ufuncs and sorts are single-threaded
    }
    try:
        from threadpoolctl import threadpool_info

        facts["blas"] = [
            {k: i.get(k) for k in ("internal_api", "num_threads", "version")}
            for i in threadpool_info()
        ]
    except ImportError:
        config = np.show_config(mode="dicts").get("Build Dependencies", {})
        blas = config.get("blas", {})
        facts["blas"] = {
            "name": blas.get("name"),
            "threads": "unknown (threadpoolctl not installed)",
            "env": {
                k: os.environ[k]
                for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                if k in os.environ
            },
        }
    return facts


@cache
def _static_machine() -> dict[str, Any]:
    model = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    import numpy as np
    import polars as pl

    return {
        "node": platform.node(),
        "cpu": model or platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "polars": pl.__version__,
        "numpy": np.__version__,
    }


def machine() -> dict[str, Any]:
    """The machine's facts, with its load average now (other engineers share these cores)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {**_static_machine(), "load_avg_1_5_15": [round(x, 2) for x in load or ()]}


def figure(
    name: str,
    *,
    value: float,
    unit: str,
    baseline: str,
    baseline_value: float,
    n: int,
    params: dict[str, Any] | None = None,
    higher_is_better: bool = True,
    value_samples: list[float] | None = None,
    baseline_samples: list[float] | None = None,
) -> dict[str, Any]:
    """One benchmark figure. ``ratio`` is value / baseline_value (for rates, > 1 means faster).

    ``value_samples`` and ``baseline_samples`` are the repeats behind each median, in the
    figure's unit; their spread is recorded and printed.
    """
    extra: dict[str, Any] = {}
    if value_samples:
        extra["value_spread"] = spread(value_samples)
    if baseline_samples:
        extra["baseline_spread"] = spread(baseline_samples)
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": value / baseline_value if baseline_value else None,
        "n": n,
        "params": {
            **(params or {}),
            **extra,
            "higher_is_better": higher_is_better,
            "threads": threads(),
            "machine": machine(),
        },
    }


def rates(n: float, seconds: list[float]) -> list[float]:
    """Per-second rates from timings of ``n`` items each."""
    return [n / s for s in seconds]
