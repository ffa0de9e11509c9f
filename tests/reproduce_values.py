"""Run load, validate and value on the sample in this process; write every frame as Arrow IPC.

Used by tests/test_determinism.py in subprocesses (``POLARS_MAX_THREADS`` is read once, at
import): ``python -m tests.reproduce_values OUT [--chunks N] [--scale K] [--set key=value ...]``.

``--chunks N`` hands every input table to validate, and every valid table to value, in N chunks
with an empty chunk among them (as ``pl.concat(..., rechunk=False)`` of filtered parts gives).
``--scale K`` repeats each peer and balance-sheet line K times with seeded noise, so that groups
are large enough for Polars to aggregate them on several threads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

from wfo_kit.config import load_config
from wfo_kit.pipeline import RunContext, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("companies", "financials", "peers", "balance_sheet")


def in_chunks(frame: pl.DataFrame, chunks: int) -> pl.DataFrame:
    """The same rows in ``chunks`` chunks, one of them empty (a filter's leftover)."""
    if chunks <= 1 or frame.height == 0:
        return frame.rechunk()
    size = -(-frame.height // chunks)
    parts = [frame.slice(i, size) for i in range(0, frame.height, size)]
    mixed = pl.concat([parts[0], parts[0].head(1), *parts[1:]], rechunk=False)
    keep = pl.Series([True] * parts[0].height + [False] + [True] * (frame.height - size))
    out = mixed.filter(keep)  # the one-row chunk is left empty, between non-empty ones
    assert out.n_chunks() > 1
    return out


def scaled(frame: pl.DataFrame, *, key: str, money: list[str], times: int) -> pl.DataFrame:
    """Each row ``times`` times, ``key`` made unique, money columns jittered by up to 1%."""
    if times <= 1:
        return frame
    rng = np.random.default_rng(7)
    copies = []
    for i in range(times):
        noise = {c: pl.col(c) * float(1 + rng.uniform(-0.01, 0.01)) for c in money}
        copies.append(frame.with_columns(pl.col(key) + f"~{i}", **noise))
    return pl.concat(copies, rechunk=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    config = load_config(ROOT / "parameters" / "default.yaml", sets=args.sets)
    ctx = run_pipeline(RunContext(config, run_id="reproduce"), ["load"])
    frames = ctx.frames
    frames["input_peers"] = scaled(
        frames["input_peers"],
        key="peer_id",
        money=["enterprise_value", "market_cap", "ebitda", "ebit", "revenue", "net_income"],
        times=args.scale,
    )
    frames["input_balance_sheet"] = scaled(
        frames["input_balance_sheet"], key="item", money=[], times=args.scale
    )
    if args.scale > 1:  # jitter each line; its stated adjusted value still reconciles
        bs = frames["input_balance_sheet"]
        factor = pl.Series(1 + np.random.default_rng(11).uniform(-0.01, 0.01, bs.height))
        frames["input_balance_sheet"] = bs.with_columns(
            pl.col("book_value") * factor, pl.col("fair_value_adjustment") * factor
        ).with_columns(
            pl.when(pl.col("adjusted_value").is_not_null())
            .then(pl.col("book_value") + pl.col("fair_value_adjustment"))
            .alias("adjusted_value")
        )
    for name in TABLES:
        frames[f"input_{name}"] = in_chunks(frames[f"input_{name}"], args.chunks)
    run_pipeline(ctx, ["validate"])
    for name in (*TABLES, "quarantine"):
        frames[name] = in_chunks(frames[name], args.chunks)
    run_pipeline(ctx, ["value"])
    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.write_ipc(args.out / f"{name}.arrow")
    print(json.dumps(sorted(frames)))


if __name__ == "__main__":
    main()
