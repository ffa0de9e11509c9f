"""Publishing: an executed notebook becomes a self-contained HTML report (nbconvert).

plotly.js is embedded once, in the page head, by the ``wfo_report`` template, compressed (see
:data:`PLOTLY_EMBEDDINGS`); code is hidden; a failed or interrupted run's page says so at the top
and shows the stopped cell.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import lzma
import os
import re
from pathlib import Path
from typing import Any

from wfo_kit.errors import ConfigurationError, NotebookExecutionError, WfoError
from wfo_kit.io import write_text

TEMPLATES = Path(__file__).parent / "templates"


def notebook_path(name: str = "valuation.ipynb") -> Path:
    """The bundled notebook: inside the installed package, or the repository's notebooks/."""
    for candidate in (
        Path(__file__).parent / "notebooks" / name,
        Path(__file__).resolve().parent.parent / "notebooks" / name,
    ):
        if candidate.is_file():
            return candidate
    msg = f"notebook {name} not found beside the wfo_kit package"
    raise ConfigurationError(msg, hint="reinstall wfo_kit")


@functools.lru_cache(maxsize=1)
def html_exporter() -> Any:
    # Building the exporter loads and compiles the templates: once per process, not per report.
    return _report_exporter_class()(
        template_name="wfo_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


# What nbconvert's HTMLExporter does after rendering, in one BeautifulSoup parse and print of the
# whole page: alt text on images without one, and tabindex="0" on every input and output area.
# For a report page that parse cost 75 % of the export (0.3 s of 0.4 s, measured); the template
# writes those tags itself, so the same attributes come from two string substitutions.
_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)", re.IGNORECASE)
_FOCUSABLE = re.compile(
    r'<div class="(jp-Cell-inputWrapper|[^"<>]*\bjp-OutputArea-output\b[^"<>]*)"(?! tabindex)'
)
NO_ALT_TEXT = "No description has been provided for this image"


def accessible(html: str) -> str:
    """The page with nbconvert's accessibility attributes, as HTMLExporter adds them.

    >>> accessible('<div class="jp-RenderedText jp-OutputArea-output"><img src="a.png"></div>')
    '<div class="jp-RenderedText jp-OutputArea-output" tabindex="0"><img alt="No description \
has been provided for this image" src="a.png"></div>'
    """
    html = _FOCUSABLE.sub(lambda m: f'<div class="{m.group(1)}" tabindex="0"', html)
    return _IMG_WITHOUT_ALT.sub(f'<img alt="{NO_ALT_TEXT}"', html)


@functools.lru_cache(maxsize=1)
def _report_exporter_class() -> type:
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class ReportExporter(HTMLExporter):
        """HTMLExporter, with its closing BeautifulSoup pass done by :func:`accessible`."""

        def from_notebook_node(self, nb: Any, resources: Any = None, **kw: Any) -> Any:
            # as HTMLExporter.from_notebook_node (nbconvert 7.16-7.17), up to the soup pass
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight = self.filters.get(
                "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
            )
            resources = self._init_resources(resources)
            data_types = WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources
            )
            self.register_filter("highlight_code", highlight)
            self.register_filter("filter_data_type", data_types)
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            return accessible(html), resources

    return ReportExporter


# How plotly.js goes into a report:
# - "compressed": the smallest and fastest page that still draws every chart. When every trace
#   type of the page's charts is in the partial bundle (templates/wfo_report/plotly-partial.min.js,
#   1.3 MB: the trace types the valuation report draws, built by tools/plotly-bundle for the
#   plotly.js version the plotly package ships), that bundle gzipped and written as base64 (about
#   0.58 MB); the page inflates it with the browser's own DecompressionStream. Otherwise the full
#   plotly.js (4.8 MB), LZMA-compressed and written 7 bits per character (about 1.27 MB), inflated
#   by a small decoder in the page (gzip of the full library would be 1.96 MB as base64).
#   templates/wfo_report/plotly_loader.js reads both and draws the charts once plotly.js runs.
# - "inline": the full plotly.js as it is, in a script tag (the page before compression; the
#   bench's baseline for page size and time to charts).
PLOTLY_EMBEDDINGS = ("compressed", "inline")
PARTIAL_BUNDLE = TEMPLATES / "wfo_report" / "plotly-partial.min.js"
# The bundle's first line, written by tools/plotly-bundle/build.mjs.
_BANNER = re.compile(r"/\*! plotly\.js v(?P<version>\S+) partial traces=(?P<traces>[a-z0-9,]+) ")
# Raw LZMA1 at the strongest preset: lc=3 lp=0 pb=0 suits text (1.113 MB for plotly.js 4.1.1).
_LZMA = {"id": lzma.FILTER_LZMA1, "preset": 9 | lzma.PRESET_EXTREME, "lc": 3, "lp": 0, "pb": 0}
# Never in the packed text: NUL and CR (an HTML parser replaces them) and "<" (it could end the
# script element). A group of 7 bits with one of these values is written as one two-byte
# character that carries the next group too, so the text stays exactly 8/7 of the bytes.
_FORBIDDEN = (0, 13, 60)
_PACK_VERSION = "lzma7-1"


def pack7(data: bytes) -> str:
    """Write bytes as text, 7 bits per character, none of them NUL, CR or ``<``.

    Characters below 128 carry 7 bits each; a group equal to a forbidden value becomes one
    character from U+0080 to U+01FF (which value, then the following group). The text is 8/7 of
    the bytes' length in UTF-8 (base64: 4/3). The page's ``unpack7`` reverses it.

    Examples
    --------
    >>> pack7(b"wfo")
    ';YMp'
    >>> "<" in pack7(bytes(range(256)))
    False
    """
    import numpy as np

    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    bits = np.concatenate([bits, np.zeros(-len(bits) % 7, dtype=np.uint8)])
    groups = bits.reshape(-1, 7).astype(np.uint32) @ (1 << np.arange(6, -1, -1, dtype=np.uint32))
    codes = groups.copy()
    keep = np.ones(len(groups), dtype=bool)
    consumed = -1
    for i in np.flatnonzero(np.isin(groups, _FORBIDDEN)).tolist():
        if i == consumed:  # the second group of a two-byte character
            continue
        following = int(groups[i + 1]) if i + 1 < len(groups) else 0
        codes[i] = 128 + 128 * _FORBIDDEN.index(int(groups[i])) + following
        if i + 1 < len(groups):
            keep[i + 1] = False
            consumed = i + 1
    return codes[keep].astype("<u4").tobytes().decode("utf-32-le")


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    import plotly.offline

    return plotly.offline.get_plotlyjs()


@functools.lru_cache(maxsize=1)
def partial_bundle() -> tuple[str, frozenset[str]] | None:
    """The partial bundle's plotly.js version and trace types, read from its banner.

    None when the bundle is missing or its banner unreadable: reports then embed the full library.
    """
    try:
        with PARTIAL_BUNDLE.open(encoding="utf-8") as file:
            match = _BANNER.match(file.readline())
    except (OSError, UnicodeDecodeError):
        return None
    return (match["version"], frozenset(match["traces"].split(","))) if match else None


# A figure as plotly's renderers write it: Plotly.newPlot("id", [traces], {layout}, {config}).
_NEW_PLOT = re.compile(r"Plotly\.newPlot\(")
_DIV_ID = re.compile(r'\s*"[^"\\]*",\s*')
# Calls that may bring traces this reading does not see (frames, traces added later).
_OTHER_TRACES = re.compile(r"Plotly\.(?:react|plot|addTraces|addFrames)\(")
# Subplots the partial bundle cannot draw even without traces on them.
_OTHER_SUBPLOT = re.compile(r"(?:geo|polar|ternary|scene|map|mapbox|smith)\d*")


def trace_types(html: str) -> frozenset[str] | None:
    """The trace types of the Plotly figures in ``html``; None if some cannot be read.

    Only figures written the way plotly's renderers write them are read; any other ``newPlot``
    call, a call that may bring traces (``react``, ``addTraces``, animation frames) or a figure
    on a non-cartesian subplot gives None (full plotly.js). ``restyle`` and ``update`` calls (the
    report's company picker: visibility and layout) are taken to keep each trace's type.

    Examples
    --------
    >>> sorted(trace_types('Plotly.newPlot("a", [{"type": "bar"}, {"x": [1]}], {}, {})'))
    ['bar', 'scatter']
    >>> trace_types('Plotly.newPlot("a", [], {"polar": {}})') is None
    True
    >>> trace_types('Plotly.newPlot(div, [{"type": "pie"}])') is None
    True
    """
    decoder = json.JSONDecoder()
    types: set[str] = set()
    if _OTHER_TRACES.search(html):
        return None
    for call in _NEW_PLOT.finditer(html):
        div_id = _DIV_ID.match(html, call.end())
        if div_id is None:
            return None
        try:
            traces, end = decoder.raw_decode(html, div_id.end())
            rest = html[end:].lstrip()
            layout = decoder.raw_decode(rest[1:].lstrip())[0] if rest.startswith(",") else {}
        except json.JSONDecodeError:
            return None
        if not isinstance(traces, list) or not isinstance(layout, dict):
            return None
        if any(_OTHER_SUBPLOT.fullmatch(key) for key in layout):
            return None
        types |= {t.get("type", "scatter") if isinstance(t, dict) else "?" for t in traces}
    return frozenset(types)


def notebook_trace_types(nb: Any) -> frozenset[str] | None:
    """The trace types of every chart in an executed notebook's HTML outputs (or None)."""
    html = "\n".join(
        "".join(out.get("data", {}).get("text/html", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    return trace_types(html)


def fits_partial_bundle(traces: frozenset[str] | None) -> bool:
    """Whether the partial bundle draws these trace types, for the plotly package's plotly.js."""
    bundle = partial_bundle()
    if traces is None or bundle is None:
        return False
    version, known = bundle
    return version == _plotly_version() and traces <= known


@functools.lru_cache(maxsize=1)
def _plotly_version() -> str:
    import plotly.offline

    return plotly.offline.get_plotlyjs_version()


@functools.lru_cache(maxsize=1)
def _plotly_partial() -> dict[str, str]:
    """The partial bundle gzipped and written as base64 (the browser inflates gzip natively).

    Compressing takes about 0.1 s (kept per process); the output is the same for the same bundle
    (no file name or time in the gzip header).
    """
    import base64

    raw = PARTIAL_BUNDLE.read_bytes()
    return {
        "wfo_plotly_head": _head(
            "text/x-wfo-gzip-base64",
            base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii"),
            size=len(raw),
        ),
        "wfo_plotly_size": str(len(raw)),
    }


def _head(kind: str, text: str, *, size: int, extra: str = "") -> str:
    """plotly.js's two script elements in a page's head: the packed library and its loader.

    ``text`` never holds ``<`` (base64, or pack7's alphabet), so it cannot end the element.
    """
    loader = (TEMPLATES / "wfo_report" / "plotly_loader.js").read_text("utf-8")
    return (
        f'<script type="{kind}" id="wfo-plotlyjs" data-size="{size}"{extra}>{text}</script>\n'
        f'<script type="text/javascript" id="wfo-plotly-loader">{loader}</script>'
    )


@functools.lru_cache(maxsize=1)
def _plotly_packed() -> dict[str, str]:
    """The full plotly.js compressed and packed, with what the page's loader needs to inflate it.

    Compressing takes a few seconds, so the result is kept per process and in the user's cache
    directory (``$XDG_CACHE_HOME/wfo_kit``), keyed by the content of plotly.js and checked by its
    own hash when read back; a cache that cannot be written is only a slower next process.
    """
    raw = _plotly_js().encode("utf-8")
    digest = hashlib.sha256(raw).hexdigest()[:24]
    cache = _cache_dir() / f"plotly-{digest}-{_PACK_VERSION}.txt"
    text = _read_cached(cache)
    if text is None:
        compressed = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=[_LZMA])
        text = f"{len(compressed)}\n{pack7(compressed)}"
        _write_cached(cache, text)
    size_line, _, packed_text = text.partition("\n")
    return _loader_resources(packed_text, packed_size=int(size_line), size=len(raw))


def compress_script(raw: bytes) -> dict[str, str]:
    """Template resources for a script compressed as the page's loader expects (LZMA, pack7)."""
    compressed = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=[_LZMA])
    return _loader_resources(pack7(compressed), packed_size=len(compressed), size=len(raw))


def _loader_resources(packed: str, *, packed_size: int, size: int) -> dict[str, str]:
    lzma_params = f"{_LZMA['lc']},{_LZMA['lp']},{_LZMA['pb']}"
    return {
        "wfo_plotly_head": _head(
            "text/x-wfo-lzma7",
            packed,
            size=size,
            extra=f' data-packed-size="{packed_size}" data-lzma="{lzma_params}"',
        ),
        "wfo_plotly_size": str(size),
    }


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wfo_kit"


def _read_cached(path: Path) -> str | None:
    """The cached text if its first line is the SHA-256 of the rest, else None."""
    try:
        check, _, text = path.read_text(encoding="utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    return text if hashlib.sha256(text.encode("utf-8")).hexdigest() == check else None


def _write_cached(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(hashlib.sha256(text.encode("utf-8")).hexdigest() + "\n" + text, "utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: compress again in the next process


def plotly_resources(
    embedding: str = "compressed", *, traces: frozenset[str] | None = None
) -> dict[str, str]:
    """Template resources that put plotly.js in a report's head (``PLOTLY_EMBEDDINGS``).

    ``traces``: the trace types the page draws (:func:`trace_types`); "compressed" embeds the
    partial bundle when it draws them all, else the full library (also when ``traces`` is None).
    """
    if embedding == "compressed":
        return _plotly_partial() if fits_partial_bundle(traces) else _plotly_packed()
    if embedding == "inline":
        return {"wfo_plotly_js": _plotly_js()}
    msg = f"unknown plotly.js embedding {embedding!r}; choose one of {', '.join(PLOTLY_EMBEDDINGS)}"
    raise ValueError(msg)


def export_html(
    notebook: Path,
    target: Path,
    *,
    failed: WfoError | None = None,
    status: str | None = None,
    plotly_js: str = "compressed",
) -> Path:
    """Publish an executed notebook as self-contained HTML (atomic write).

    plotly.js is embedded once, in the page head, only if the notebook has a chart:
    ``plotly_js`` is one of :data:`PLOTLY_EMBEDDINGS`. ``status`` (default: failed when
    ``failed`` is given, else succeeded) puts a FAILED or INTERRUPTED banner at the top. A run
    that stopped before papermill wrote the notebook, or whose notebook cannot be read back (a
    disk that filled up mid-write), still gets a page saying why.
    """
    status = status or ("failed" if failed else "succeeded")
    nb = _read_notebook(Path(notebook))
    nb.metadata["wfo"] = {"status": status, "error": failed.one_line() if failed else ""}
    has_chart = any(
        "Plotly.newPlot" in "".join(out.get("data", {}).get("text/html", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    resources = plotly_resources(plotly_js, traces=notebook_trace_types(nb)) if has_chart else {}
    body, _ = html_exporter().from_notebook_node(nb, resources=resources)
    return write_text(target, body)


def _read_notebook(path: Path) -> Any:
    import nbformat

    if not path.is_file():
        return _note_notebook("The notebook did not start.")
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # any unreadable notebook still gets a page saying so
        return _note_notebook(
            f"The executed notebook could not be read back ({type(exc).__name__}); "
            "it was probably cut short while being written."
        )


def _note_notebook(text: str) -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text)]
    return nb


def publish_history(output_root: Path, *, kernel: str = "wfo_kit") -> Path:
    """Execute notebooks/history.ipynb over ``output_root`` and publish it as history.html."""
    import tempfile

    import papermill

    from wfo_kit.kernels import check_kernel, ipc_kernel_manager

    root = Path(output_root).resolve()
    check_kernel(kernel)
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / "history.ipynb"
        try:
            papermill.execute_notebook(
                str(notebook_path("history.ipynb")),
                str(executed),
                parameters={"output_root": str(root)},
                kernel_name=kernel,
                progress_bar=False,
                shutdown_kernel="immediate",
                kernel_manager_class=ipc_kernel_manager(),
            )
        except Exception as exc:
            msg = (
                f"history notebook failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            )
            raise NotebookExecutionError(msg, step="report") from exc
        return export_html(executed, root / "history.html")
