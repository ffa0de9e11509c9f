"""Publishing: plotly.js compressed into the report and inflated by the page's own loader."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.opservers import served_with_report_csp
from wfo_kit.publish import _FORBIDDEN, PLOTLY_EMBEDDINGS, compress_script, pack7, plotly_resources

EDGE_CASES = [
    b"",
    b"w",
    bytes(range(256)),
    b"\x00" * 64,  # every group NUL: two-byte characters throughout
    bytes([0x1A]) * 33,  # groups of 13 (CR)
    bytes([0x78, 0x00]),  # ends on a forbidden group with nothing after it
    os.urandom(5003),
]


def unpack7(text: str, size: int) -> bytes:
    """Reference reader of pack7's text (the page's loader does the same in JavaScript)."""
    out, acc, bits = bytearray(), 0, 0
    groups = []
    for ch in text:
        code = ord(ch)
        groups += [code] if code < 128 else [_FORBIDDEN[(code - 128) >> 7], code & 127]
    for group in groups:
        acc, bits = (acc << 7) | group, bits + 7
        if bits >= 8:
            bits -= 8
            if len(out) < size:
                out.append((acc >> bits) & 255)
            acc &= (1 << bits) - 1
    return bytes(out)


@pytest.mark.parametrize("data", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_pack7_round_trips_and_never_writes_nul_cr_or_lt(data: bytes) -> None:
    text = pack7(data)
    assert unpack7(text, len(data)) == data
    assert not {"\x00", "\r", "<"} & set(text)
    assert len(text.encode("utf-8")) <= -(-len(data) * 8 // 7) + 1  # 8/7 of the bytes


def test_unknown_embedding_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="compressed, inline"):
        plotly_resources("gzip")
    assert PLOTLY_EMBEDDINGS == ("compressed", "inline")


def test_loader_inflates_a_script_and_replays_calls_made_before(
    tmp_path: Path, chromium: str
) -> None:
    """The page's LZMA decoder on a small script: calls made to the stand-in wait for it."""
    from playwright.sync_api import sync_playwright

    from wfo_kit.publish import html_exporter

    # A stand-in for plotly.js: incompressible padding exercises long literal runs, the repeated
    # text long matches, and bytes 0x00/0x0D/0x3C the packed text's two-byte characters.
    noise = os.urandom(3000).hex()
    fake = (
        f"/* {noise} {'abc' * 500} */ var pad = {list(bytes([0, 13, 60]) * 40)!r};\n"
        "window.Plotly = {newPlot: function (id, data) {"
        " document.getElementById(id).setAttribute('data-drawn', data.length);"
        " return Promise.resolve(); }};\n"
    ).encode()
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/html": f'<div id="c{i}"></div><script>Plotly.newPlot("c{i}", [1, 2])</script>'
            },
        )
        for i in range(3)
    ]
    nb.cells = [cell]
    body, _ = html_exporter().from_notebook_node(nb, resources=compress_script(fake))
    page_file = tmp_path / "page.html"
    page_file.write_text(body, encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        page.wait_for_function("() => document.querySelectorAll('[data-drawn]').length === 3")
        pad = page.evaluate("() => window.pad.length")
        browser.close()
    assert errors == []
    assert pad == 120


def test_report_exporter_gives_nbconvert_html_without_its_soup_pass() -> None:
    """Our exporter skips HTMLExporter's closing BeautifulSoup pass (75 % of an export) and adds
    the same alt text and tabindex attributes itself: parsed, the pages are identical."""
    import nbformat
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from wfo_kit.publish import TEMPLATES, html_exporter

    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
        "RU5ErkJggg=="
    )
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Title\n\nSome *text* and <img src='x.png'> inline."),
            new_code_cell(
                "x = 1",
                outputs=[
                    new_output("stream", name="stdout", text="printed\n"),
                    new_output("stream", name="stderr", text="warned\n"),
                    new_output(
                        "display_data", data={"text/html": "<div class='t'>&lt;b&gt;</div>"}
                    ),
                    new_output("display_data", data={"image/png": png, "text/plain": "<fig>"}),
                    new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
                ],
            ),
            new_code_cell(
                "1/0",
                outputs=[
                    new_output("error", ename="ZeroDivisionError", evalue="x", traceback=["tb"])
                ],
            ),
        ]
    )
    nbformat.validate(nb)
    ours, _ = html_exporter().from_notebook_node(nb)
    reference = HTMLExporter(
        template_name="wfo_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    theirs, _ = reference.from_notebook_node(nb)
    assert ours.count('tabindex="0"') >= 5
    assert 'alt="No description has been provided for this image"' in ours
    assert str(BeautifulSoup(ours, features="html.parser")) == theirs


BUNDLE_TRACES = frozenset({"bar", "box", "heatmap", "scatter", "waterfall"})


def test_partial_bundle_is_built_for_the_plotly_js_the_plotly_package_ships() -> None:
    """A rebuilt bundle (tools/plotly-bundle) must match plotly's version, banner and code."""
    import plotly.offline

    from wfo_kit.publish import PARTIAL_BUNDLE, partial_bundle

    version, traces = partial_bundle()
    assert version == plotly.offline.get_plotlyjs_version()
    assert traces == BUNDLE_TRACES
    assert f'.version="{version}"' in PARTIAL_BUNDLE.read_text(encoding="utf-8")


def figure_html(fig: object, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)  # type: ignore[attr-defined]


def test_trace_types_read_what_plotly_writes_and_refuse_what_they_cannot_see() -> None:
    import plotly.graph_objects as go

    from wfo_kit.publish import fits_partial_bundle, trace_types

    fig = go.Figure([go.Bar(y=[1]), go.Scatter(y=[2], visible=False), go.Waterfall(y=[3])])
    html = figure_html(fig, "a") + figure_html(go.Figure(go.Heatmap(z=[[1]])), "b")
    assert trace_types(html) == {"bar", "scatter", "waterfall", "heatmap"}
    assert fits_partial_bundle(trace_types(html))
    pie = figure_html(go.Figure(go.Pie(values=[1])), "c")
    assert trace_types(html + pie) == {"bar", "scatter", "waterfall", "heatmap", "pie"}
    assert not fits_partial_bundle(trace_types(html + pie))  # pie: the full plotly.js
    # an animation's frames, a polar subplot, a call with variables: not read, so full plotly.js
    animated = go.Figure(go.Bar(y=[1]), frames=[go.Frame(data=[go.Pie(values=[1])])])
    assert trace_types(figure_html(animated, "d")) is None
    polar = go.Figure(go.Bar(y=[1]), layout={"polar": {"radialaxis": {"range": [0, 1]}}})
    assert trace_types(figure_html(polar, "e")) is None
    assert trace_types('Plotly.newPlot("f", traces, {})') is None
    assert not fits_partial_bundle(None)
    assert trace_types("<p>no chart</p>") == frozenset()


def test_partial_bundle_draws_each_of_its_trace_types_under_the_serve_csp(
    tmp_path: Path, chromium: str
) -> None:
    """export_html picks the gzip page for these charts; Chromium inflates it natively and draws
    a chart of every trace type in the bundle, with no request, error or CSP violation; a
    damaged page says the charts could not be drawn."""
    import nbformat
    import plotly.graph_objects as go
    from playwright.sync_api import sync_playwright

    from wfo_kit.publish import export_html

    figures = {
        "bar": go.Bar(y=[1, 2]),
        "box": go.Box(y=[1, 2, 3]),
        "heatmap": go.Heatmap(z=[[1, 2], [3, 4]]),
        "scatter": go.Scatter(y=[1, 3]),
        "waterfall": go.Waterfall(y=[1, -2]),
    }
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": figure_html(go.Figure(trace), name)}
        )
        for name, trace in figures.items()
    ]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "charts.ipynb")
    page = export_html(tmp_path / "charts.ipynb", tmp_path / "charts.html").read_text("utf-8")
    assert 'type="text/x-wfo-gzip-base64"' in page
    payload = re.search(r'type="text/x-wfo-gzip-base64"[^>]*>([^<]+)<', page)
    assert payload is not None
    # base64 of a gzip stream, its middle garbled: the stream's CRC check fails in the browser
    middle = len(payload[1]) // 2
    damaged = page.replace(payload[1][middle : middle + 40], "A" * 40)
    drawn = "() => [...document.querySelectorAll('.plotly-graph-div')].filter(e => e.querySelector('g.trace, g.hm image')).map(e => e.id)"  # noqa: E501
    with (
        sync_playwright() as p,
        served_with_report_csp({"ok.html": page.encode(), "damaged.html": damaged.encode()}) as url,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page()
        requests, errors, console = [], [], []
        tab.on("request", lambda r: requests.append(r.url))
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("console", lambda m: console.append(m.text))
        tab.goto(url + "ok.html")
        tab.wait_for_function(f"() => ({drawn})().length === {len(figures)}", timeout=30_000)
        ids = tab.evaluate(drawn)
        marks = tab.evaluate("() => performance.getEntriesByType('mark').map(m => m.name)")
        tab.goto(url + "damaged.html")
        tab.wait_for_selector("html[data-wfo-plotly=failed]", timeout=30_000)
        note = tab.inner_text("body")
        browser.close()
    assert sorted(ids) == sorted(figures)
    assert marks == ["wfo-plotly-start", "wfo-plotly-inflated", "wfo-plotly-loaded"]
    assert requests == [url + "ok.html", url + "damaged.html"]
    assert [m for m in console if "Content Security" in m] == []
    # the damaged page says so, and each chart's call fails with the same error
    assert "The charts could not be drawn: plotly.js could not be inflated" in note
    assert len(errors) == len(figures)
    assert all(e.startswith("plotly.js could not be inflated") for e in errors), errors
