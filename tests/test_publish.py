"""Publishing: plotly.js compressed into the report and inflated by the page's own loader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
