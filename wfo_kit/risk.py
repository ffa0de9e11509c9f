"""Risk and synthesis on top of the DCF: sensitivity grids, scenarios, Monte Carlo, reverse DCF.

All functions take prepared :class:`~wfo_kit.dcf.DcfInputs` (one row per valued company) and
re-value them under shifted rates, growths, exit multiples or cash-flow scales, for all companies
at once. A combination with r <= g is never a number: it is null (grids, scenarios) or a rejected
draw (Monte Carlo), and counted. Each re-valuation equals a valuation from scratch with the shifted
parameters: a driver forecast is re-projected at each r and g (see ``DcfInputs.model``).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import polars as pl

from wfo_kit.config import MonteCarloConfig, RangeConfig, Scenario
from wfo_kit.dcf import (
    DcfInputs,
    Terminal,
    enterprise_value_parts,
    equity_from_ev,
    per_share_from_ev,
)
from wfo_kit.frames import format_text, group_sum

PERCENTILES = (5, 25, 50, 75, 95)


def _per_share(inputs: DcfInputs, **kwargs: object) -> np.ndarray:
    ev = enterprise_value_parts(inputs, **kwargs)["enterprise_value"]  # type: ignore[arg-type]
    return per_share_from_ev(ev, inputs.companies)


def value_range(
    inputs: DcfInputs,
    *,
    deltas: RangeConfig,
    terminal: Terminal,
    flow_scale: float = 1.0,
) -> pl.DataFrame:
    """The DCF low and high per share (football field): company_id, low, high.

    low: r + ``deltas.rate_delta`` with g - ``deltas.growth_delta``; high: the reverse. A bound
    with r <= g is null (never a number, never NaN). Both are one (companies x 2) re-valuation;
    the pipeline (``value.dcf_method``) and the explorer (``explore.revalue``) both call this.
    """
    rate = inputs.rate[:, None] + np.array([[deltas.rate_delta, -deltas.rate_delta]])
    growth = inputs.growth[:, None] + np.array([[-deltas.growth_delta, deltas.growth_delta]])
    values = _per_share(inputs, rate=rate, growth=growth, terminal=terminal, flow_scale=flow_scale)
    return pl.DataFrame(
        {
            "company_id": inputs.companies["company_id"],
            "low": values[:, 0],
            "high": values[:, 1],
        },
        schema={"company_id": pl.String, "low": pl.Float64, "high": pl.Float64},
    ).with_columns(pl.col("low").fill_nan(None), pl.col("high").fill_nan(None))


def sensitivity_rate_growth(
    inputs: DcfInputs, *, rate_deltas: list[float], growth_deltas: list[float]
) -> pl.DataFrame:
    """Value per share over discount rate x terminal growth (Gordon), tidy."""
    n, nr, ng = inputs.companies.height, len(rate_deltas), len(growth_deltas)
    rates = inputs.rate[:, None] + np.asarray(rate_deltas)[None, :]
    values = np.empty((n, nr, ng))
    for j, dg in enumerate(growth_deltas):
        growth = np.repeat((inputs.growth + dg)[:, None], nr, axis=1)
        values[:, :, j] = _per_share(inputs, rate=rates, growth=growth, terminal="gordon")
    return _tidy(
        inputs,
        "rate_x_growth",
        rates,
        values,
        rate_deltas,
        second_name="terminal_growth",
        second=inputs.growth[:, None] + np.asarray(growth_deltas)[None, :],
        second_deltas=growth_deltas,
    )


def sensitivity_rate_multiple(
    inputs: DcfInputs, *, rate_deltas: list[float], exit_multiples: list[float]
) -> pl.DataFrame:
    """Value per share over discount rate x exit EV/EBITDA multiple, tidy."""
    n, nr, nm = inputs.companies.height, len(rate_deltas), len(exit_multiples)
    rates = inputs.rate[:, None] + np.asarray(rate_deltas)[None, :]
    values = np.empty((n, nr, nm))
    for j, multiple in enumerate(exit_multiples):
        values[:, :, j] = _per_share(
            inputs, rate=rates, terminal="exit_multiple", exit_multiple=np.full(n, multiple)
        )
    return _tidy(
        inputs,
        "rate_x_exit_multiple",
        rates,
        values,
        rate_deltas,
        second_name="exit_multiple",
        second=np.tile(np.asarray(exit_multiples, dtype=np.float64), (n, 1)),
        second_deltas=None,
    )


def _tidy(
    inputs: DcfInputs,
    grid: str,
    rates: np.ndarray,
    values: np.ndarray,
    rate_deltas: list[float],
    *,
    second_name: str,
    second: np.ndarray,
    second_deltas: list[float] | None,
) -> pl.DataFrame:
    """Flatten (companies x rates x second) arrays into one row per grid point."""
    n, nr, ns = values.shape
    shape = (n, nr, ns)
    deltas2 = np.asarray(second_deltas if second_deltas is not None else [np.nan] * ns)

    def flat(array: np.ndarray) -> np.ndarray:
        return np.broadcast_to(array, shape).reshape(-1)

    frame = pl.DataFrame(
        {
            "company_id": flat(inputs.companies["company_id"].to_numpy()[:, None, None]),
            "grid": grid,
            "rate_delta": flat(np.asarray(rate_deltas, dtype=np.float64)[None, :, None]),
            "discount_rate": flat(rates[:, :, None]),
            "second_name": second_name,
            "second_delta": flat(deltas2.astype(np.float64)[None, None, :]),
            "second_value": flat(second[:, None, :]),
            "value_per_share": values.reshape(-1),
        }
    )
    return frame.with_columns(
        pl.col("value_per_share").fill_nan(None), pl.col("second_delta").fill_nan(None)
    )


def scenario_values(
    inputs: DcfInputs, scenarios: list[Scenario], *, terminal: Terminal
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per company and scenario, probability-weighted value per company with a reason if null)."""
    rows = []
    for scenario in scenarios:
        rate = inputs.rate + scenario.discount_rate_delta
        growth = inputs.growth + scenario.terminal_growth_delta
        value = _per_share(
            inputs, rate=rate, growth=growth, terminal=terminal, flow_scale=scenario.cash_flow_scale
        )
        rows.append(
            pl.DataFrame(
                {
                    "company_id": inputs.companies["company_id"],
                    "scenario": scenario.name,
                    "probability": scenario.probability,
                    "discount_rate": rate,
                    "terminal_growth": growth,
                    "cash_flow_scale": scenario.cash_flow_scale,
                    "value_per_share": value,
                }
            ).with_columns(pl.col("value_per_share").fill_nan(None))
        )
    per_scenario = pl.concat(rows) if rows else pl.DataFrame()
    if not rows:
        return per_scenario, pl.DataFrame()
    weighted = per_scenario.group_by("company_id", maintain_order=True).agg(
        pl.when(pl.col("value_per_share").null_count() == 0)
        .then(group_sum(pl.col("value_per_share") * pl.col("probability")))
        .alias("expected_value_per_share"),
        pl.when(pl.col("value_per_share").null_count() > 0)
        .then(
            format_text(
                "no value in scenario(s) {} (r <= g)",
                pl.col("scenario").filter(pl.col("value_per_share").is_null()).str.join(", "),
            )
        )
        .alias("reason"),
    )
    return per_scenario, weighted


def uniform_draws(config: MonteCarloConfig, dims: int) -> np.ndarray:
    """(draws x dims) uniforms in (0, 1): scrambled Sobol or pseudo-random, seeded.

    Sobol draws are rounded up to a power of two (their balance needs it); the summary reports
    the number actually drawn.
    """
    from scipy.stats import qmc

    if config.sampler == "sobol":
        m = int(np.ceil(np.log2(config.draws)))
        points = qmc.Sobol(d=dims, scramble=True, seed=config.seed).random_base2(m)
    else:
        points = np.random.default_rng(config.seed).random((config.draws, dims))
    # Keep clear of 0 and 1, where ppf is infinite.
    return np.clip(points, 1e-12, 1 - 1e-12)


def simulation_shocks(config: MonteCarloConfig) -> dict[str, np.ndarray]:
    """Per-draw shocks for each configured variable (common to all companies)."""
    import scipy.stats

    variables = {
        name: dist
        for name, dist in (
            ("discount_rate_shift", config.discount_rate_shift),
            ("terminal_growth_shift", config.terminal_growth_shift),
            ("cash_flow_scale", config.cash_flow_scale),
        )
        if dist is not None
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        u = uniform_draws(config, max(len(variables), 1))
    shocks = {
        name: getattr(scipy.stats, dist.dist)(**dist.params).ppf(u[:, j])
        for j, (name, dist) in enumerate(variables.items())
    }
    shocks.setdefault("discount_rate_shift", np.zeros(u.shape[0]))
    shocks.setdefault("terminal_growth_shift", np.zeros(u.shape[0]))
    shocks.setdefault("cash_flow_scale", np.ones(u.shape[0]))
    return shocks


def monte_carlo(
    inputs: DcfInputs,
    config: MonteCarloConfig,
    *,
    terminal: Terminal,
    chunk_bytes: int = 512 << 10,
    keep_draws: list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-company simulation summary, and the raw draws of the companies in ``keep_draws``.

    Work is chunked over companies so that one chunk's (companies x draws) arrays stay near
    ``chunk_bytes``: peak memory does not grow with the portfolio, and small chunks stay in the
    CPU cache (512 KiB measured about 2x faster here than 4 MiB).
    """
    shocks = simulation_shocks(config)
    draws = shocks["cash_flow_scale"].shape[0]
    n = inputs.companies.height
    # a driver forecast is re-projected per draw: (companies x draws x years) flows in a chunk
    layers = 1 + (inputs.flows.shape[1] if inputs.model is not None else 0)
    chunk = max(1, chunk_bytes // (8 * draws * layers))
    summary = {k: np.empty(n) for k in ("mean", "std", *(f"p{p}" for p in PERCENTILES))}
    rejected = np.zeros(n, dtype=np.int64)
    keep = set(keep_draws or [])
    kept = []
    ids = inputs.companies["company_id"].to_numpy()
    # The bridge and the share count once, not per chunk (each is a column read from a frame).
    bridge = equity_from_ev(np.zeros(n), inputs.companies)[:, None]
    shares = inputs.companies["shares_diluted"].to_numpy()[:, None]
    rates, growths = inputs.rate[:, None], inputs.growth[:, None]
    dr, dg = shocks["discount_rate_shift"][None, :], shocks["terminal_growth_shift"][None, :]
    scale = shocks["cash_flow_scale"][None, :]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        mask = slice(start, stop)
        values = enterprise_value_parts(
            inputs.rows(start, stop),
            rate=rates[mask] + dr,
            growth=growths[mask] + dg,
            terminal=terminal,
            flow_scale=scale,
        )["enterprise_value"]
        values += bridge[mask]  # equity, then per share: in place on the chunk's own array
        values /= shares[mask]
        chunk_ids = ids[mask]
        for i in np.flatnonzero(np.isin(chunk_ids, list(keep))) if keep else ():
            row = values[i]
            kept.append(
                pl.DataFrame({"company_id": chunk_ids[i], "value_per_share": row[np.isfinite(row)]})
            )
        stats, rejected[mask] = _row_stats(values)
        for key, value in stats.items():
            summary[key][mask] = value
    frame = pl.DataFrame(
        {
            "company_id": ids,
            "draws": np.full(n, draws),
            "rejected": rejected,
            **summary,
            "sampler": config.sampler,
            "seed": config.seed,
        }
    ).with_columns(
        *[pl.col(c).fill_nan(None) for c in summary],
        pl.col("draws").cast(pl.Int64),
        pl.col("seed").cast(pl.Int64),
    )
    draws_frame = (
        pl.concat(kept)
        if kept
        else pl.DataFrame(schema={"company_id": pl.String, "value_per_share": pl.Float64})
    )
    return frame, draws_frame


def _row_stats(values: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Mean, std and percentiles per row over the finite values, and the rejected count per row.

    Works in place on ``values`` (the caller's scratch array; its rows end up reordered). The
    percentiles interpolate linearly between order statistics, as numpy's default; the order
    statistics come from one ``np.partition`` at the needed ranks when no draw of the chunk was
    rejected (as ``np.percentile`` does), else from a sort with rejected draws last.
    """
    rows, draws = values.shape
    bad = ~np.isfinite(values)
    rejected = bad.sum(axis=1)
    count = draws - rejected
    with np.errstate(invalid="ignore", divide="ignore"):
        position = (count[:, None] - 1) * (np.asarray(PERCENTILES) / 100.0)[None, :]
    lo = np.clip(np.floor(position).astype(np.int64), 0, draws - 1)
    hi = np.clip(lo + 1, 0, np.maximum(count - 1, 0)[:, None])
    frac = position - lo
    if rejected.any():
        np.copyto(values, np.inf, where=bad)
        values.sort(axis=1)  # rejected draws last
    else:
        values.partition(np.unique(np.concatenate([lo.ravel(), hi.ravel()])), axis=1)
    index = np.arange(rows)[:, None]
    with np.errstate(invalid="ignore"):
        picked = values[index, lo] * (1 - frac) + values[index, hi] * frac
    out: dict[str, np.ndarray] = {}
    if rejected.any():
        np.copyto(values, 0.0, where=np.arange(draws)[None, :] >= count[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=1) / count
        values -= mean[:, None]
        values *= values
        if rejected.any():  # the rejected tail is 0 - mean: zero it again
            np.copyto(values, 0.0, where=np.arange(draws)[None, :] >= count[:, None])
        out["mean"], out["std"] = mean, np.sqrt(values.sum(axis=1) / (count - 1))
    for j, p in enumerate(PERCENTILES):
        out[f"p{p}"] = np.where(count > 0, picked[:, j], np.nan)
    return out, rejected


def reverse_dcf(
    inputs: DcfInputs,
    *,
    base_flow: np.ndarray,
    price: np.ndarray,
    low: float = -0.95,
    high: float = 2.0,
    iterations: int = 80,
    lead: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The constant FCFF growth x over the horizon that makes value per share equal ``price``.

    FCFF_t = base_flow x (1 + x)^(lead + t) for t = 1..N, ``lead`` being the years from the base
    flow's fiscal year to the forecast's base year (0 by default: the base flow is the last actual
    year's and year 1 follows it; under a valuation date that closed later years, it is their
    number); terminal value by Gordon on FCFF_N x (1 + g) at
    each company's own g. Solved for all companies at once by bisection (value rises with x when
    the base flow is positive). Returns (growth, reason): reason 0 solved, 1 no price or base
    flow not positive, 2 price outside the value range of [low, high]. Under a valuation date
    the year under way counts only its stub share (``inputs.first_stub``), as in the DCF itself.
    """
    n = inputs.companies.height
    horizon = inputs.companies["horizon"].to_numpy().astype(np.int64)
    width = inputs.flows.shape[1]
    t = np.arange(1, width + 1, dtype=np.float64)[None, :]
    inside = t <= horizon[:, None]
    exponent = t if lead is None else t + np.asarray(lead, dtype=np.float64)[:, None]
    share = np.ones((n, width))
    if inputs.first_stub is not None and width:
        share[:, 0] = inputs.first_stub  # the year under way at the valuation date is pro-rated

    def value(x: np.ndarray) -> np.ndarray:
        grown = base_flow[:, None] * (1.0 + x[:, None]) ** exponent * share
        flows = np.where(inside, grown, 0.0)
        rows = np.arange(n)
        # the same inputs (rate path, stub, timing) with the solved flows and no driver model
        shifted = replace(inputs, flows=flows, last_flow=flows[rows, horizon - 1], model=None)
        return _per_share(shifted, terminal="gordon")

    usable = np.isfinite(price) & (price > 0) & np.isfinite(base_flow) & (base_flow > 0)
    lo, hi = np.full(n, low), np.full(n, high)
    f_lo, f_hi = value(lo) - price, value(hi) - price
    bracketed = usable & (f_lo <= 0) & (f_hi >= 0)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = (value(mid) - price) < 0
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    growth = np.where(bracketed, 0.5 * (lo + hi), np.nan)
    reason = np.where(~usable, 1, np.where(bracketed, 0, 2))
    return growth, reason
