"""Risk and synthesis on top of the DCF: sensitivity grids, scenarios, Monte Carlo, reverse DCF.

All functions take prepared :class:`~wfo_kit.dcf.DcfInputs` (one row per valued company) and
re-value them under shifted rates, growths, exit multiples or cash-flow scales, for all companies
at once. A combination with r <= g is never a number: it is null (grids, scenarios) or a rejected
draw (Monte Carlo), and counted. Each re-valuation equals a valuation from scratch with the shifted
parameters: a driver forecast is re-projected at each r and g (see ``DcfInputs.model``).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import polars as pl

from wfo_kit.config import CacheConfig, MonteCarloConfig, RangeConfig, Scenario
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
    if not scenarios:
        return pl.DataFrame(), pl.DataFrame()
    n = inputs.companies.height
    rate = np.stack([inputs.rate + s.discount_rate_delta for s in scenarios])
    growth = np.stack([inputs.growth + s.terminal_growth_delta for s in scenarios])
    value = np.stack(
        [
            _per_share(inputs, rate=r, growth=g, terminal=terminal, flow_scale=s.cash_flow_scale)
            for s, r, g in zip(scenarios, rate, growth, strict=True)
        ]
    )
    # One frame, scenario by scenario (each of its rows: every company in company order).
    each = np.repeat(np.arange(len(scenarios)), n)
    per_scenario = pl.DataFrame(
        {
            "company_id": inputs.companies["company_id"].gather(
                np.tile(np.arange(n), len(scenarios))
            ),
            "scenario": pl.Series([s.name for s in scenarios], dtype=pl.String).gather(each),
            "probability": np.array([s.probability for s in scenarios], dtype=np.float64)[each],
            "discount_rate": rate.reshape(-1),
            "terminal_growth": growth.reshape(-1),
            "cash_flow_scale": np.array([s.cash_flow_scale for s in scenarios], dtype=np.float64)[
                each
            ],
            "value_per_share": value.reshape(-1),
        },
        nan_to_null=True,
    )
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


def simulation_shocks(
    config: MonteCarloConfig, *, cache: CacheConfig | None = None
) -> dict[str, np.ndarray]:
    """Per-draw shocks for each configured variable (common to all companies), read-only.

    They depend on the configuration alone, so small sets are kept: in this process (the
    explorer draws the same 2,000 on every slider move; frozen scipy distributions and their
    ppf cost ~3 ms of each), and with ``cache`` (the step cache's settings, enabled) on disk as
    a step-cache entry keyed by the configuration and the SciPy and NumPy versions. A kernel
    that finds them there need not import scipy.stats (about 0.9 s of CPU at each kernel's
    start, measured), unless the configuration names a distribution other than the shipped
    ones (checked against scipy.stats as the configuration is read).
    """
    if config.draws > _KEPT_SHOCK_DRAWS:
        return _shocks(config)
    text = config.model_dump_json()
    with _KEPT_LOCK:
        shocks = _KEPT.pop(text, None)
        if shocks is not None:
            _KEPT[text] = shocks  # the most recently used last
    if shocks is None:
        from wfo_kit.cache import lookup, store

        key = _shock_key(config) if cache is not None and cache.enabled else None
        hit = lookup(key, cache) if key is not None else None  # type: ignore[arg-type]
        shocks = _read_shocks(hit.frames) if hit is not None else None
        if shocks is None:
            shocks = _shocks(config)
            if key is not None:
                store(key, {"shocks": pl.DataFrame(shocks)}, cache)  # type: ignore[arg-type]
        with _KEPT_LOCK:
            _KEPT[text] = shocks
            while len(_KEPT) > _KEPT_CONFIGS:
                del _KEPT[next(iter(_KEPT))]  # the least recently used
    return dict(shocks)  # a caller may rebind its keys


def shocks_stored(config: MonteCarloConfig, cache: CacheConfig) -> bool:
    """Whether :func:`simulation_shocks` will find this configuration's shocks on disk (so the
    run needs no scipy.stats): ``wfo run`` asks, to have its kernel import it early otherwise."""
    from wfo_kit.cache import cache_dir

    if config.draws > _KEPT_SHOCK_DRAWS or not cache.enabled or cache.max_mb <= 0:
        return False
    return (cache_dir(cache) / _shock_key(config)).is_dir()


_KEPT_SHOCK_DRAWS = 100_000
_KEPT_CONFIGS = 8
_KEPT: dict[str, dict[str, np.ndarray]] = {}
_KEPT_LOCK = threading.Lock()


def _shock_key(config: MonteCarloConfig) -> str:
    from importlib.metadata import version

    from wfo_kit.cache import step_key

    # scipy's version from its metadata: importing scipy is what a hit saves
    material = {"monte_carlo": config.model_dump(mode="json"), "scipy": version("scipy")}
    return step_key("monte_carlo_shocks", {**material, "numpy": np.__version__})


def _read_shocks(frames: dict[str, pl.DataFrame]) -> dict[str, np.ndarray] | None:
    frame = frames.get("shocks")
    if frame is None or set(frame.columns) != set(SHOCK_NAMES):
        return None
    if frame.null_count().sum_horizontal()[0]:
        return None
    shocks = {name: frame[name].to_numpy().copy() for name in SHOCK_NAMES}
    for values in shocks.values():
        values.flags.writeable = False
    return shocks


#: The shocks every simulation draws (a variable not configured: its neutral value).
SHOCK_NAMES = ("discount_rate_shift", "terminal_growth_shift", "cash_flow_scale")


def _shocks(config: MonteCarloConfig) -> dict[str, np.ndarray]:
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
    for values in shocks.values():
        values.flags.writeable = False  # shared by every caller of the same configuration
    return shocks


def default_threads() -> int:
    """Worker threads for :func:`monte_carlo`: the CPUs this process may use that are idle, at
    most 4, and no more than Polars' pool (``POLARS_MAX_THREADS=1`` makes a run single-threaded).

    NumPy's ufuncs, reductions and ``partition`` release the GIL, so chunks run in parallel on
    threads while there are idle CPUs. On CPUs already busy (the 1-minute load average, as
    ``make -l`` reads it, this process counted as one) threads wait on each other's GIL
    hand-offs: measured on 2 CPUs at load 7, 1.7e7 company-draws/s on 2 threads against 2.2e7
    on 1. The results are the same to the bit either way.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    try:
        idle = usable + 1 - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        idle = usable
    return max(1, min(4, usable, int(idle), pl.thread_pool_size()))


def monte_carlo(
    inputs: DcfInputs,
    config: MonteCarloConfig,
    *,
    terminal: Terminal,
    chunk_bytes: int = 512 << 10,
    keep_draws: list[str] | None = None,
    threads: int | None = None,
    shock_cache: CacheConfig | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-company simulation summary, and the raw draws of the companies in ``keep_draws``.

    Work is chunked over companies so that one (companies x draws) array of a chunk stays near
    ``chunk_bytes`` (the fused path below keeps four per thread): peak memory does not grow
    with the portfolio, and small chunks stay in the CPU cache (512 KiB measured about 2x faster
    here than 4 MiB). Chunks run on ``threads``
    worker threads (default :func:`default_threads`; 1: in this thread), each with buffers of
    its own reused from chunk to chunk. Every company gets the same draws, and each statistic is
    reduced over the company's own row in draw order, so results are the same to the bit for
    any ``threads`` and ``chunk_bytes``.

    Fixed flows on whole years (no driver model, no rate path, end-of-year or mid-year timing)
    take a fused path: the terminal value is folded into Horner's rule (value = v(f_1 + v(f_2 +
    ... v(f_N + TV)))), so no v^N and no separate PV and TV arrays; a draw with r <= g gets a
    non-finite value (x / 0 or a negative spread clipped to 0) and is rejected like any other
    non-finite draw. Other inputs go through :func:`~wfo_kit.dcf.enterprise_value_parts`.
    """
    shocks = simulation_shocks(config, cache=shock_cache)
    draws = shocks["cash_flow_scale"].shape[0]
    n = inputs.companies.height
    # a driver forecast is re-projected per draw: (companies x draws x years) flows in a chunk
    fused = _fusable(inputs)
    # chunk_bytes sizes one (chunk x draws) array; the fused path keeps 4 of them per thread
    # (2 MiB at the default): sized for all 4, its chunks ran at 0.7x the speed (measured)
    layers = 1 + (inputs.flows.shape[1] if inputs.model is not None else 0)
    chunk = max(1, chunk_bytes // (8 * draws * layers))
    summary = {k: np.empty(n) for k in ("mean", "std", *(f"p{p}" for p in PERCENTILES))}
    rejected = np.zeros(n, dtype=np.int64)
    ids = inputs.companies["company_id"].to_numpy()
    keep = np.isin(ids, list(keep_draws or []))
    # Per-company columns once, not per chunk (the bridge and shares are read from a frame).
    columns = {
        "bridge": equity_from_ev(np.zeros(n), inputs.companies)[:, None],
        "shares": inputs.companies["shares_diluted"].to_numpy()[:, None],
        "rate": inputs.rate[:, None],
        "growth": inputs.growth[:, None],
    }
    if fused:
        columns |= _fused_columns(inputs, terminal=terminal)
    shocks = {k: v[None, :] for k, v in shocks.items()}
    full = _ranks(np.array([draws]), draws)  # every row without a rejected draw: computed once
    kept: dict[int, list[pl.DataFrame]] = {}

    def work(start: int, buffers: np.ndarray) -> None:
        rows = slice(start, min(start + chunk, n))
        part = {k: v[rows] for k, v in columns.items()}
        m = rows.stop - rows.start
        if fused:
            values = _fused_values(
                part, shocks, buffers[:, :m], terminal=terminal, timing=inputs.timing
            )
        else:
            values = enterprise_value_parts(
                inputs.rows(rows.start, rows.stop),
                rate=part["rate"] + shocks["discount_rate_shift"],
                growth=part["growth"] + shocks["terminal_growth_shift"],
                terminal=terminal,
                flow_scale=shocks["cash_flow_scale"],
            )["enterprise_value"]
            values += part["bridge"]  # equity, then per share: in place on the chunk's array
            values /= part["shares"]
        kept[start] = [  # before the statistics reorder the rows: draws in draw order
            pl.DataFrame(
                {"company_id": ids[start + i], "value_per_share": values[i][np.isfinite(values[i])]}
            )
            for i in np.flatnonzero(keep[rows])
        ]
        stats, rejected[rows] = _row_stats(values, scratch=buffers[0, :m], full=full)
        for key, value in stats.items():
            summary[key][rows] = value

    _each_chunk(
        range(0, n, chunk),
        work,
        buffers=lambda: np.empty((4 if fused else 1, min(chunk, n), draws)),
        threads=default_threads() if threads is None else threads,
    )
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
    frames = [f for start in sorted(kept) for f in kept[start]]  # company order, any threads
    draws_frame = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"company_id": pl.String, "value_per_share": pl.Float64})
    )
    return frame, draws_frame


def _each_chunk(
    starts: range,
    work: Callable[[int, np.ndarray], None],
    *,
    buffers: Callable[[], np.ndarray],
    threads: int,
) -> None:
    """``work(start, buffers)`` for every chunk start, on up to ``threads`` threads.

    Each thread allocates its buffers once and takes the next chunk when it is done with one
    (a busy core slows only its own thread); the first error is raised here.
    """
    threads = max(1, min(threads, len(starts)))
    if threads == 1:
        own = buffers()
        for start in starts:
            work(start, own)
        return
    queue = iter(starts)
    lock = threading.Lock()
    failed = threading.Event()  # one chunk's error stops the others taking more

    def worker() -> None:
        own = buffers()
        while not failed.is_set():
            with lock:
                start = next(queue, None)
            if start is None:
                return
            try:
                work(start, own)
            except BaseException:
                failed.set()
                raise

    with ThreadPoolExecutor(threads, thread_name_prefix="wfo-mc") as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()


def _fusable(inputs: DcfInputs) -> bool:
    """Fixed flows over whole years 1..N for every company (the fused path's conditions)."""
    width = inputs.flows.shape[1]
    return (
        inputs.model is None
        and inputs.stable_rate is None
        and inputs.regular
        and width > 0
        and bool(np.all(inputs.terminal_time == width))
    )


def _fused_columns(inputs: DcfInputs, *, terminal: Terminal) -> dict[str, np.ndarray]:
    """Per-company arrays of the fused path: flows (companies x years) and the terminal input."""
    out = {"flows": np.ascontiguousarray(inputs.flows)}
    if terminal == "gordon":
        out["last_flow"] = inputs.last_flow[:, None]
    else:  # exit multiple x EBITDA_N: one terminal value per company, the same in every draw
        multiple = inputs.companies["exit_multiple"].to_numpy()
        out["exit_value"] = (multiple * inputs.last_ebitda)[:, None]
    return out


def _fused_values(
    part: dict[str, np.ndarray],
    shocks: dict[str, np.ndarray],
    buffers: np.ndarray,
    *,
    terminal: Terminal,
    timing: str,
) -> np.ndarray:
    """Value per share of a chunk (companies x draws) in ``buffers[2]``, in place throughout.

    value = (scale x v(f_1 + v(f_2 + ... v(f_N + TV))) + bridge) / shares, v = 1 / (1 + r);
    mid-year: the flows (not TV) times sqrt(1 + r). r <= g: a non-finite value (rejected).
    """
    rate, factor, values, root = buffers
    np.add(part["rate"], shocks["discount_rate_shift"], out=rate)
    np.add(rate, 1.0, out=factor)
    if timing == "mid_year":
        np.sqrt(factor, out=root)
    np.divide(1.0, factor, out=factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        if terminal == "gordon":  # TV = FCFF_N (1 + g) / (r - g)
            np.add(part["growth"], shocks["terminal_growth_shift"], out=values)
            np.subtract(rate, values, out=rate)
            np.maximum(rate, 0.0, out=rate)  # r <= g: x / 0, never a number
            np.add(values, 1.0, out=values)
            np.multiply(values, part["last_flow"], out=values)
            np.divide(values, rate, out=values)
        else:
            np.copyto(values, part["exit_value"])
        if timing == "mid_year":
            np.divide(values, root, out=values)
        flows = part["flows"]
        for year in range(flows.shape[1] - 1, -1, -1):  # Horner, TV folded in: a loop over years
            np.add(values, flows[:, year, None], out=values)
            np.multiply(values, factor, out=values)
        if timing == "mid_year":
            np.multiply(values, root, out=values)
        np.multiply(values, shocks["cash_flow_scale"], out=values)  # every flow and TV scaled
        np.add(values, part["bridge"], out=values)
        np.divide(values, part["shares"], out=values)
    return values


def _ranks(count: np.ndarray, draws: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, frac) per row and percentile: linear interpolation between order statistics
    lo and hi over a row's ``count`` finite draws, as numpy's default percentile."""
    with np.errstate(invalid="ignore"):
        position = (count[:, None] - 1) * (np.asarray(PERCENTILES) / 100.0)[None, :]
    lo = np.clip(np.floor(position).astype(np.int64), 0, draws - 1)
    hi = np.clip(lo + 1, 0, np.maximum(count - 1, 0)[:, None])
    return lo, hi, position - lo


def _order_keys(bits: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Doubles' bits (an int64 view) to int64 keys in the doubles' order, in place; its own
    inverse. A negative double's other 63 bits are flipped (its key falls as its size grows).

    >>> import numpy as np
    >>> x = np.array([1.5, -2.0, 0.0, -0.5, np.inf, -np.inf])
    >>> keys = _order_keys(x.copy().view(np.int64), np.empty(6, np.int64))
    >>> x[np.argsort(keys)].tolist()
    [-inf, -2.0, -0.5, 0.0, 1.5, inf]
    >>> _order_keys(keys, np.empty(6, np.int64)).view(np.float64).tolist() == x.tolist()
    True
    """
    np.right_shift(bits, 63, out=scratch)  # -1 (all ones) for a negative double, else 0
    np.bitwise_and(scratch, np.int64(0x7FFF_FFFF_FFFF_FFFF), out=scratch)
    return np.bitwise_xor(bits, scratch, out=bits)


def _row_stats(
    values: np.ndarray,
    *,
    scratch: np.ndarray,
    full: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Mean, std and percentiles per row over the finite values, and the rejected count per row.

    Mean and std are sums over each row in draw order (so a row's figures never depend on the
    other rows of its chunk); ``scratch`` (same shape) holds the deviations. Then ``values`` is
    partitioned in place at the needed ranks, as order-preserving integer keys (it is left
    holding them), non-finite draws moved last as +inf: the order statistics are exact whatever
    the chunk. ``full`` are the ranks of a row with no rejection.
    """
    rows, draws = values.shape
    sums = values.sum(axis=1)
    count = np.full(rows, draws)
    # A non-finite draw makes its row's sum non-finite: only those rows are searched.
    suspect = np.flatnonzero(~np.isfinite(sums))
    bad = ~np.isfinite(values[suspect])
    if suspect.size:
        count[suspect] -= bad.sum(axis=1)
        sums[suspect] = np.where(bad, 0.0, values[suspect]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / count
        np.subtract(values, mean[:, None], out=scratch)
        if suspect.size:
            scratch[suspect] = np.where(bad, 0.0, scratch[suspect])
        np.multiply(scratch, scratch, out=scratch)
        # under 2 finite draws there is no sample std (not -0.0 from 0 / -1)
        std = np.where(count > 1, np.sqrt(scratch.sum(axis=1) / (count - 1)), np.nan)
    if suspect.size:
        values[suspect] = np.where(bad, np.inf, values[suspect])  # rejected draws last
        lo, hi, frac = _ranks(count, draws)
    else:
        lo, hi, frac = (np.broadcast_to(a, (rows, a.shape[1])) for a in full)
    # Select on integer keys with the doubles' order: NumPy partitions int64 about 25 % faster
    # than float64 (no NaN-aware comparisons; none is left). The keys map back exactly.
    keys = _order_keys(values.view(np.int64), scratch.view(np.int64))
    keys.partition(np.unique(np.concatenate([lo.ravel(), hi.ravel()])), axis=1)
    index = np.arange(rows)[:, None]
    low = _order_keys(keys[index, lo], np.empty_like(lo)).view(np.float64)
    high = _order_keys(keys[index, hi], np.empty_like(hi)).view(np.float64)
    with np.errstate(invalid="ignore"):
        picked = low * (1 - frac) + high * frac
    out = {"mean": mean, "std": std}
    for j, p in enumerate(PERCENTILES):
        out[f"p{p}"] = np.where(count > 0, picked[:, j], np.nan)
    return out, draws - count


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
