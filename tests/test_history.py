"""The run-history dashboard (history.html): date axis, words on axes, a 0-1 score axis, a
table of runs linking to each report (relative links), value trends per company across runs."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import polars as pl

from wfo_kit import history
from wfo_kit.publish import publish_history


def test_runs_per_day_on_one_day_is_a_date_axis_with_a_bar_not_the_width(
    two_runs: tuple[Path, str, str],
) -> None:
    out, _, _ = two_runs
    runs = history.run_history(out)
    fig = history.runs_per_day_figure(runs)
    xaxis, yaxis = fig.layout.xaxis, fig.layout.yaxis
    assert xaxis.type == "date"
    assert xaxis.title.text == "day (UTC)"
    assert yaxis.title.text == "runs"
    day = runs["started"].dt.date().max()
    low, high = (dt.date.fromisoformat(x[:10]) for x in xaxis.range)
    assert low < day < high  # padded around the one day: a bar in the middle
    assert (high - low).days >= 4
    bars = [t for t in fig.data if t.type == "bar"]
    assert [b.name for b in bars] == ["succeeded"]
    assert list(bars[0].y) == [runs.height]
    assert bars[0].width == 0.8 * 86_400_000  # 80% of a day, in milliseconds


def test_quality_axis_runs_from_0_to_1_and_every_axis_has_words(
    two_runs: tuple[Path, str, str],
) -> None:
    out, _, _ = two_runs
    runs = history.run_history(out)
    quality = history.quality_figure(runs)
    assert tuple(quality.layout.yaxis.range) == (0, 1.05)
    assert quality.layout.yaxis.dtick == 0.2
    figures = [
        history.runs_per_day_figure(runs),
        quality,
        history.throughput_figure(runs),
        history.step_figure(history.step_durations(out)),
        history.value_trend_figure(history.value_trends(out)),
    ]
    for fig in figures:
        titles = [fig.layout.xaxis.title.text, fig.layout.yaxis.title.text]
        assert all(titles), fig.layout.title.text
        assert "len" not in titles


def test_value_trends_follow_each_company_across_runs(two_runs: tuple[Path, str, str]) -> None:
    out, a, b = two_runs
    trends = history.value_trends(out)
    assert trends["run_id"].unique(maintain_order=True).to_list() == [a, b]
    recorded = pl.read_parquet(out / b / "results" / "blend.parquet")
    c001 = trends.filter(pl.col("company_id") == "C001", pl.col("run_id") == b)["base"][0]
    assert c001 == recorded.filter(pl.col("company_id") == "C001")["base"][0]
    fig = history.value_trend_figure(trends)
    assert len(fig.data) == 40  # one line per company
    assert all(len(t.y) == 2 for t in fig.data)  # one point per run


def test_history_page_links_each_run_to_its_report(two_runs: tuple[Path, str, str]) -> None:
    out, a, b = two_runs
    page = publish_history(out)
    assert page == out.resolve() / "history.html"
    html = page.read_text()
    hrefs = re.findall(r'<a href="([^"]+)">report</a>', html)
    assert sorted(hrefs) == sorted([f"{a}/report.html", f"{b}/report.html"])
    for href in hrefs:  # relative to the page's folder: they work wherever outputs/ is copied
        assert (page.parent / href).is_file()
    assert "Blended value per share of each company across runs" in html
    assert "Valuation accuracy across runs" in html  # both runs wrote results/accuracy
    assert "2 runs with an accuracy table" in html
    assert '"type":"date"' in html
    assert '"text":"len"' not in html


def _accuracy_run(root: Path, run_id: str, started: str, fmt: str | None, dcf_error: float) -> None:
    """A synthetic run folder: manifest plus (unless ``fmt`` is None) results/accuracy.<fmt>."""
    import json

    folder = root / run_id
    (folder / "results").mkdir(parents=True)
    manifest = {"run_id": run_id, "status": "succeeded", "started": started}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if fmt is None:
        return
    table = pl.DataFrame(
        {
            "method": ["blend", "dcf", "dcf"],
            "sector": ["all", "all", "Tech"],
            "companies": [10, 8, 3],
            "not_positive": [0, 1, 0],
            "median_ratio": [1.0, 1.1, 1.3],
            "median_abs_log_error": [0.1, dcf_error, 0.9],
            "share_within_20pct": [0.7, 0.5, 0.0],
        }
    )
    getattr(table, f"write_{fmt}")(folder / "results" / f"accuracy.{fmt}")


def test_accuracy_tracked_per_method_across_runs_in_any_format(tmp_path: Path) -> None:
    _accuracy_run(tmp_path, "r0-old", "2026-11-01T10:00:00+00:00", None, 0.0)
    _accuracy_run(tmp_path, "r1", "2026-11-02T10:00:00+00:00", "parquet", 0.25)
    _accuracy_run(tmp_path, "r2", "2026-11-03T10:00:00+00:00", "csv", 0.15)
    _accuracy_run(tmp_path, "r3", "2026-11-04T10:00:00+00:00", "json", 0.05)
    _accuracy_run(tmp_path, "r4-torn", "2026-11-05T10:00:00+00:00", None, 0.0)
    (tmp_path / "r4-torn" / "results" / "accuracy.parquet").write_bytes(b"PAR1 torn")
    trends = history.accuracy_trends(tmp_path)
    dcf = trends.filter(pl.col("method") == "dcf")
    assert dcf["run_id"].to_list() == ["r1", "r2", "r3"]  # sector "all" only, oldest first
    assert dcf["median_abs_log_error"].to_list() == [0.25, 0.15, 0.05]
    skipped = trends.filter(pl.col("method").is_null())["run_id"].to_list()
    assert skipped == ["r0-old", "r4-torn"]
    fig = history.accuracy_figure(trends)
    lines = {(t.name, t.yaxis): list(t.y) for t in fig.data}
    assert lines[("dcf", "y")] == [0.25, 0.15, 0.05]  # median |log error| on top
    assert lines[("dcf", "y2")] == [0.5, 0.5, 0.5]  # share within 20 % below
    assert lines[("blend", "y2")] == [0.7, 0.7, 0.7]
    note = fig.layout.annotations[0].text
    assert "2 skipped" in note
    assert "r0-old, r4-torn" in note
    assert fig.layout.yaxis.title.text == "median |ln(value / price)|"
    assert fig.layout.yaxis2.title.text == "share within ±20 %"
    assert fig.layout.xaxis2.title.text == "run started (UTC)"


def test_a_process_that_exited_unreaped_is_not_alive() -> None:
    # A killed server's worker can linger as a zombie (its parent died too): it still takes
    # signals, yet its run must count as stopped, so the run is recovered as interrupted at once
    # instead of being listed as running, then incomplete, then interrupted.
    import platform
    import subprocess
    import time

    from wfo_kit.history import _alive

    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        assert not _alive(child.pid, platform.node())
    finally:
        child.wait()
    assert _alive(os.getpid(), platform.node())
