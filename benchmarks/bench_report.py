"""The report users open: its size, and the time until every chart is drawn in Chromium.

One sample run (``run_report`` on parameters/default.yaml); its executed notebook is published
twice: as ``wfo run`` does (the partial plotly.js bundle gzipped, inflated by the browser) and
with the full plotly.js inline (the page before compression). Headless Chromium, offline, opens
each in turn (a fresh page per load, the pages taking turns) and waits until every chart has a
trace drawn.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import figure

ROOT = Path(__file__).resolve().parent.parent
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The same condition as tests/test_e2e.py: every chart has a trace (or a heatmap image).
ALL_CHARTS_DRAWN = """() => {
  const charts = [...document.querySelectorAll('.plotly-graph-div')];
  const drawn = charts.length > 0 && charts.every(e => e.querySelector('g.trace, g.hm image'));
  return drawn ? performance.now() : false;
}"""


def time_to_charts(pages: dict[str, Path], *, repeats: int) -> dict[str, list[float]]:
    """Milliseconds from navigation start until every chart is drawn, per page, taking turns."""
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {name: [] for name in pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=BROWSER_ARGS)
        try:
            for rep in range(repeats + 1):  # the first round warms the browser, untimed
                for name, path in pages.items():
                    page = browser.new_page()
                    remote: list[str] = []
                    page.on(
                        "request",
                        lambda r, remote=remote: (
                            remote.append(r.url) if not r.url.startswith("file:") else None
                        ),
                    )
                    page.goto(path.as_uri())
                    handle = page.wait_for_function(
                        ALL_CHARTS_DRAWN, polling="raf", timeout=120_000
                    )
                    if remote:
                        msg = f"{name} page made network requests: {remote}"
                        raise RuntimeError(msg)
                    if rep:
                        times[name].append(handle.json_value())
                    page.close()
        finally:
            browser.close()
    return times


def run(repeats: int = 5) -> list[dict]:
    from wfo_kit.config import resolve_config
    from wfo_kit.publish import export_html
    from wfo_kit.runs import run_report

    work = Path(tempfile.mkdtemp(prefix="wfo-bench-report-"))
    result = run_report(resolve_config(ROOT / "parameters" / "default.yaml"), output_root=work)
    run_dir = Path(result.run_dir)
    compressed = Path(result.report)
    inline = export_html(run_dir / "valuation.ipynb", work / "inline.html", plotly_js="inline")
    sizes = {"compressed": compressed.stat().st_size, "inline": inline.stat().st_size}
    figures = [
        figure(
            "report_size",
            value=sizes["compressed"] / 1e6,
            unit="MB",
            baseline="plotly_js_inline",
            baseline_value=sizes["inline"] / 1e6,
            n=1,
            higher_is_better=False,
            params={
                "goal": "<= 2 MB",
                "ours": "the sample's report.html: the partial plotly.js bundle (the trace types "
                "the report draws) gzipped, as base64",
                "baseline": "the same executed notebook, plotly.js inline (the page before)",
                "bytes": sizes,
            },
        )
    ]
    if shutil.which("chromium") is None:
        print("bench report: chromium not installed, time to charts not measured", file=sys.stderr)
        return figures
    start = time.perf_counter()
    ms = time_to_charts({"compressed": compressed, "inline": inline}, repeats=repeats)
    figures.append(
        figure(
            "report_time_to_all_charts",
            value=statistics.median(ms["compressed"]),
            unit="ms",
            baseline="plotly_js_inline",
            baseline_value=statistics.median(ms["inline"]),
            n=repeats,
            higher_is_better=False,
            params={
                "goal": "ratio <= 1.0",
                "measured": "headless Chromium (Debian), file:// offline, a new page per load, "
                "pages taking turns; from navigation start until every chart has a trace",
                "ours": "the partial bundle inflated by the browser (DecompressionStream) and "
                "run while the page parses; the queued charts drawn once it is parsed",
                "baseline": "plotly.js parsed from the page head, charts drawn as parsed",
                "wall_seconds": round(time.perf_counter() - start, 1),
            },
            value_samples=ms["compressed"],
            baseline_samples=ms["inline"],
        )
    )
    return figures
