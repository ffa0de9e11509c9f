"""Timing helpers: medians over repeats, every figure paired with a baseline from the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], Any], *, repeats: int = 7, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
) -> dict[str, Any]:
    """One benchmark figure. ``ratio`` is value / baseline_value (for rates, > 1 means faster)."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": value / baseline_value if baseline_value else None,
        "n": n,
        "params": {**(params or {}), "higher_is_better": higher_is_better},
    }
