"""DCF kernel over a wide matrix vs a hand-written NumPy Horner baseline of the same math."""

from __future__ import annotations

import numpy as np

from benchmarks.common import figure, median_seconds
from wfo_kit.dcf import dcf_arrays


def baseline_horner(flows: np.ndarray, rate: np.ndarray, growth: np.ndarray) -> np.ndarray:
    v = 1.0 / (1.0 + rate)
    acc = np.zeros(flows.shape[0])
    for t in range(flows.shape[1] - 1, -1, -1):
        acc = (acc + flows[:, t]) * v
    tv = flows[:, -1] * (1 + growth) / (rate - growth)
    return acc + tv * v ** flows.shape[1]


def run(n: int = 1_000_000, years: int = 10) -> list[dict]:
    rng = np.random.default_rng(0)
    flows = rng.normal(100.0, 20.0, size=(n, years))
    rate = rng.uniform(0.06, 0.12, size=n)
    growth = rng.uniform(0.0, 0.03, size=n)
    horizon = np.full(n, years)
    ours = median_seconds(lambda: dcf_arrays(flows, horizon, rate, growth))
    base = median_seconds(lambda: baseline_horner(flows, rate, growth))
    got = dcf_arrays(flows, horizon, rate, growth)["enterprise_value"]
    np.testing.assert_allclose(got, baseline_horner(flows, rate, growth), rtol=1e-10)
    return [
        figure(
            "dcf_kernel_throughput",
            value=n / ours,
            unit="companies/s",
            baseline="numpy_horner",
            baseline_value=n / base,
            n=n,
            params={"years": years, "terminal": "gordon"},
        ),
    ]
