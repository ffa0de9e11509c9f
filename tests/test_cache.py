"""The step cache: load and validate results re-used while their inputs and settings hold.

Real files, real runs through the pipeline's wrapper; a hit is proven by the run's events and by
result tables equal to a run without the cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.builders import notebook
from wfo_kit import cache
from wfo_kit.cli import main
from wfo_kit.config import CacheConfig, Config
from wfo_kit.errors import DataQualityError
from wfo_kit.pipeline import RunContext, run_steps

TABLES = ("companies", "financials", "peers", "balance_sheet")
CHECKED = ["load", "validate"]
STEPS = [*CHECKED, "value"]


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    cache.clear_memory()  # each test starts as a new process would (its disk folder is its own)


def make_config(data: Path, store: Path, **sections: dict) -> Config:
    paths = {name: str(data / f"{name}.csv") for name in TABLES}
    return Config.model_validate(
        {"data": paths, "cache": {"dir": str(store), **sections.pop("cache", {})}, **sections}
    )


def run(config: Config, steps: list[str] = CHECKED) -> RunContext:
    return run_steps(RunContext(config), steps)


def outcomes(ctx: RunContext) -> dict[str, str | None]:
    finished = [e for e in ctx.events if e["event"] == "step_finished"]
    return {e["step"]: e.get("cache") for e in finished if e["step"] in {"load", "validate"}}


def assert_same_results(a: RunContext, b: RunContext) -> None:
    for name in ("valuations", "quarantine", "quality", "companies", "financials", "warnings"):
        if name in a.frames or name in b.frames:
            assert_frame_equal(a.frames[name], b.frames[name])
    assert a.inputs_read == b.inputs_read


def entries(store: Path) -> list[Path]:
    return sorted(p for p in store.iterdir() if len(p.name) == 64) if store.is_dir() else []


def test_a_changed_discount_rate_reuses_load_and_validate(
    sample_copy: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cache"
    first = run(make_config(sample_copy, store), STEPS)
    assert outcomes(first) == {"load": "miss", "validate": "miss"}
    changed = {"valuation": {"precedence": "config", "discount_rate": 0.11}}
    again = run(make_config(sample_copy, store, **changed), STEPS)
    assert outcomes(again) == {"load": "memory", "validate": "memory"}
    # The same numbers as a run that reads and checks everything again.
    cold = run(make_config(sample_copy, store, cache={"enabled": False}, **changed), STEPS)
    assert outcomes(cold) == {"load": "off", "validate": "off"}
    assert_same_results(again, cold)
    assert not again.frames["valuations"].equals(first.frames["valuations"])  # the rate counted


def test_a_new_process_reads_the_disk_cache(sample_copy: Path, tmp_path: Path) -> None:
    store = tmp_path / "cache"
    first = run(make_config(sample_copy, store))
    assert len(entries(store)) == 2  # one per cached step
    # They hold input tables: only their owner may read them.
    assert {p.stat().st_mode & 0o777 for p in [store, *entries(store)]} == {0o700}
    cache.clear_memory()
    second = run(make_config(sample_copy, store))
    assert outcomes(second) == {"load": "disk", "validate": "disk"}
    assert_same_results(first, second)
    assert second.frames["quarantine"].height > 0  # the sample's bad rows came back with it
    # A hit is said where users look: the event, the metrics and the log line.
    assert {s["step"]: s["cache"] for s in second.metrics.steps} == {
        "load": "disk",
        "validate": "disk",
    }


def test_warnings_and_the_quality_bar_follow_the_settings_on_a_hit(
    sample_copy: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cache"
    run(make_config(sample_copy, store))
    narrow = {"valuation": {"precedence": "config", "discount_rate": 0.03}}
    hit = run(make_config(sample_copy, store, **narrow))
    assert outcomes(hit) == {"load": "memory", "validate": "memory"}
    assert hit.frames["warnings"].height == hit.frames["companies"].height  # every spread narrow
    strict = make_config(sample_copy, store, validation={"fail_below": 0.99})
    with pytest.raises(DataQualityError):
        run(strict)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("byte", {"load": "miss", "validate": "miss"}),
        ("tolerance", {"load": "memory", "validate": "miss"}),
        ("by_hand", {"load": "memory", "validate": "off"}),
    ],
)
def test_a_changed_input_or_relevant_setting_misses(
    sample_copy: Path, tmp_path: Path, change: str, expected: dict[str, str]
) -> None:
    store = tmp_path / "cache"
    config = make_config(sample_copy, store)
    run(config)
    if change == "byte":
        # One digit, same size, and the old modification time put back: still a miss.
        path = sample_copy / "financials.csv"
        stat = path.stat()
        text = path.read_text()
        path.write_text(text.replace("10067.9", "10067.8", 1))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size
    if change == "tolerance":
        config = make_config(sample_copy, store, valuation={"asset": {"reconcile_tolerance": 5.0}})
    ctx = RunContext(config)
    run_steps(ctx, ["load"])
    if change == "by_hand":  # a frame replaced in the notebook: its checks run again
        ctx.frames["input_companies"] = ctx["input_companies"].head(3)
    run_steps(ctx, ["validate"])
    assert outcomes(ctx) == expected
    cold = run(config.model_copy(update={"cache": CacheConfig(enabled=False)}))
    if change == "by_hand":
        assert ctx.frames["companies"].height <= 3
    else:
        assert_same_results(ctx, cold)
    if change == "byte":
        assert ctx.frames["financials"]["revenue"][0] == pytest.approx(10067.8)


@pytest.mark.parametrize("damage", ["truncated", "replaced", "record"])
def test_a_damaged_entry_is_a_miss_never_a_wrong_result(
    sample_copy: Path, tmp_path: Path, damage: str
) -> None:
    store = tmp_path / "cache"
    first = run(make_config(sample_copy, store))
    for entry in entries(store):
        arrow = entry / "0.arrow"
        data = arrow.read_bytes()
        if damage == "truncated":
            arrow.write_bytes(data[: len(data) // 2])
        elif damage == "replaced":  # a readable Arrow file with other numbers: only the check
            frame = pl.read_ipc(arrow)  # of size and CRC-32 against entry.json can tell
            frame.with_columns(pl.col(frame.columns[0]).reverse()).write_ipc(arrow)
        else:
            (entry / "entry.json").write_text("{not json")
    cache.clear_memory()
    second = run(make_config(sample_copy, store))
    assert outcomes(second) == {"load": "miss", "validate": "miss"}
    assert_same_results(first, second)
    cache.clear_memory()  # the damaged entries were replaced by good ones
    assert outcomes(run(make_config(sample_copy, store))) == {"load": "disk", "validate": "disk"}


def test_the_disk_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    store = tmp_path / "cache"
    frame = pl.DataFrame({"x": pl.int_range(0, 50_000, eager=True).cast(pl.Float64) * 1.37})
    other = store / ("f" * 64)  # a folder named like a key but not an entry: never removed
    other.mkdir(parents=True)
    (store / "notes.txt").write_text("mine")
    keys = [cache.step_key("load", {"n": n}) for n in range(3)]
    size = None
    for n, key in enumerate(keys):
        settings = CacheConfig(dir=str(store), max_mb=1e9, memory_mb=0)
        cache.store(key, {"x": frame * (n + 1)}, settings)
        size = size or sum(p.stat().st_size for p in (store / key).iterdir())
        os.utime(store / key / "entry.json", (n + 1, n + 1))  # an order by last use
    assert cache.lookup(keys[0], CacheConfig(dir=str(store), memory_mb=0)) is not None  # used now
    removed = cache.evict(store, max_bytes=2.5 * size)
    assert removed == [keys[1]]
    assert {p.name for p in store.iterdir()} == {keys[0], keys[2], other.name, "notes.txt"}


def test_the_memory_cache_is_bounded(sample_copy: Path, tmp_path: Path) -> None:
    config = make_config(sample_copy, tmp_path / "cache", cache={"memory_mb": 0, "max_mb": 0})
    run(config)
    assert outcomes(run(config)) == {"load": "miss", "validate": "miss"}
    assert not (tmp_path / "cache").exists()


def test_no_cache_on_the_command_line(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    paths = {name: str(sample_copy / f"{name}.csv") for name in TABLES}
    params.write_text(json.dumps({"data": paths, "output": {"root": str(tmp_path / "out")}}))
    store = tmp_path / "cache"
    argv = ["validate", str(params), "--set", f"cache.dir={store}"]
    assert main([*argv, "--no-cache", "--set", "cache.max_mb=10"]) == 0
    assert entries(store) == []
    # A cache setting that --no-cache makes moot is said, as every setting that changes nothing.
    assert "note: cache.max_mb = 10" in capsys.readouterr().err
    assert main(argv) == 0
    assert len(entries(store)) == 1  # wfo validate loads through the cached load step


def test_wfo_run_in_its_own_kernel_hits_the_disk_cache(sample_copy: Path, tmp_path: Path) -> None:
    # An in-process run fills the disk cache; `wfo run` executes a notebook in a new kernel
    # process, which finds the entries on disk, and the run's manifest says so step by step. (A
    # two-step notebook: the full report adds nothing here but time.)
    store = tmp_path / "cache"
    run(make_config(sample_copy, store))
    checks = notebook(
        tmp_path / "checks.ipynb",
        "import wfo_kit as wfo\n"
        "config = wfo.Config.model_validate({'data': data, 'cache': cache})\n"
        "ctx = wfo.start_run(config, run_dir=run_dir, run_id=run_id)\n"
        "wfo.finish_run(wfo.run_steps(ctx, ['load', 'validate']))",
    )
    params = tmp_path / "params.yaml"
    paths = {name: str(sample_copy / f"{name}.csv") for name in TABLES}
    params.write_text(json.dumps({"data": paths, "report": {"notebook": str(checks)}}))
    out = tmp_path / "out"
    assert main(["run", str(params), "--set", f"cache.dir={store}", "--output", str(out)]) == 0
    (manifest,) = out.glob("*/manifest.json")
    steps = {s["step"]: s["cache"] for s in json.loads(manifest.read_text())["steps"]}
    assert steps == {"load": "disk", "validate": "disk"}
