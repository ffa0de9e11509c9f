"""Publishing: an executed notebook becomes a self-contained HTML report (nbconvert).

plotly.js is embedded once, in the page head, by the ``wfo_report`` template; code is hidden; a
failed or interrupted run's page says so at the top and shows the stopped cell.
"""

from __future__ import annotations

import functools
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
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="wfo_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    import plotly.offline

    return plotly.offline.get_plotlyjs()


def export_html(
    notebook: Path, target: Path, *, failed: WfoError | None = None, status: str | None = None
) -> Path:
    """Publish an executed notebook as self-contained HTML (atomic write).

    plotly.js is embedded once, in the page head, only if the notebook has a chart. ``status``
    (default: failed when ``failed`` is given, else succeeded) puts a FAILED or INTERRUPTED banner
    at the top. A run that stopped before papermill wrote the notebook, or whose notebook cannot
    be read back (a disk that filled up mid-write), still gets a page saying why.
    """
    status = status or ("failed" if failed else "succeeded")
    nb = _read_notebook(Path(notebook))
    nb.metadata["wfo"] = {"status": status, "error": failed.one_line() if failed else ""}
    has_chart = any(
        "Plotly.newPlot" in "".join(out.get("data", {}).get("text/html", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    resources = {"wfo_plotly_js": _plotly_js() if has_chart else ""}
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
