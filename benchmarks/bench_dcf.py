"""DCF throughput at 1e6 companies x 10 years, against hand-written NumPy Horner baselines."""

from __future__ import annotations

import statistics

import numpy as np
import polars as pl

from benchmarks.common import figure, interleaved, rates
from wfo_kit.dcf import BRIDGE_COLUMNS, dcf_wide, present_value


def wide_frame(n: int, years: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {f"fcff_{t}": rng.normal(100.0, 20.0, n) for t in range(1, years + 1)}
    bridge = {c: rng.uniform(0.0, 50.0, n) for c in BRIDGE_COLUMNS}
    return pl.DataFrame(
        {
            **columns,
            **bridge,
            "discount_rate": rng.uniform(0.06, 0.12, n),
            "terminal_growth": rng.uniform(0.0, 0.03, n),
            "shares_diluted": rng.uniform(10.0, 100.0, n),
        }
    )


def horner_pv(flows: np.ndarray, rate: np.ndarray) -> np.ndarray:
    v = 1.0 / (1.0 + rate)
    acc = np.zeros(flows.shape[0])
    for t in range(flows.shape[1] - 1, -1, -1):
        acc = (acc + flows[:, t]) * v
    return acc


def horner_dcf(flows: np.ndarray, rate: np.ndarray, growth: np.ndarray) -> np.ndarray:
    """PV + Gordon terminal value, the same math, by hand."""
    v = 1.0 / (1.0 + rate)
    tv = flows[:, -1] * (1.0 + growth) / (rate - growth)
    return horner_pv(flows, rate) + tv * v ** flows.shape[1]


def run(n: int = 1_000_000, years: int = 10) -> list[dict]:
    frame = wide_frame(n, years)
    columns = [f"fcff_{t}" for t in range(1, years + 1)]
    flows = frame.select(columns).to_numpy(order="fortran")
    rate = frame["discount_rate"].to_numpy()
    growth = frame["terminal_growth"].to_numpy()

    out = dcf_wide(frame, flow_columns=columns)["enterprise_value"].to_numpy()
    np.testing.assert_allclose(out, horner_dcf(flows, rate, growth), rtol=1e-10)

    times = interleaved(
        {
            "end_to_end": lambda: dcf_wide(frame, flow_columns=columns),
            "baseline": lambda: horner_dcf(flows, rate, growth),
            "kernel": lambda: present_value(flows, rate),
            "kernel_base": lambda: horner_pv(flows, rate),
        },
        repeats=7,
    )
    per_s = {k: rates(n, v) for k, v in times.items()}
    params = {"years": years, "terminal": "gordon"}
    return [
        figure(
            "dcf_end_to_end",
            value=statistics.median(per_s["end_to_end"]),
            unit="companies/s",
            baseline="numpy_horner_pv_plus_tv",
            baseline_value=statistics.median(per_s["baseline"]),
            value_samples=per_s["end_to_end"],
            baseline_samples=per_s["baseline"],
            n=n,
            params={
                **params,
                "includes": "frame in, PV + TV + bridge + per share, frame out",
                "goal": ">= 2e7 companies/s",
            },
        ),
        figure(
            "dcf_discount_kernel",
            value=statistics.median(per_s["kernel"]),
            unit="companies/s",
            baseline="numpy_horner_pv",
            baseline_value=statistics.median(per_s["kernel_base"]),
            value_samples=per_s["kernel"],
            baseline_samples=per_s["kernel_base"],
            n=n,
            params={**params, "goal": "ratio >= 1/1.2"},
        ),
    ]
