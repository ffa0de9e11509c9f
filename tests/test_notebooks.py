"""Notebooks: parameters match the configuration model; committed as built, without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from wfo_kit.config import Config

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_valuation_parameters_match_the_config_model() -> None:
    params = papermill.inspect_notebook(str(NOTEBOOKS / "valuation.ipynb"))
    assert set(params) == set(Config.model_fields) | {"run_dir", "run_id", "sources"}


def test_explore_parameters_are_config_sections() -> None:
    params = papermill.inspect_notebook(str(NOTEBOOKS / "explore.ipynb"))
    assert set(params) == set(Config.model_fields)


def test_notebooks_are_committed_as_built_without_outputs() -> None:
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import build
    finally:
        sys.path.remove(str(NOTEBOOKS))
    for name, cells in build.NOTEBOOKS.items():
        committed = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert committed == build.build(cells), f"run python notebooks/build.py ({name})"
    for path in NOTEBOOKS.glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        assert all(
            not c.get("outputs") and not c.get("execution_count")
            for c in cells
            if c["cell_type"] == "code"
        ), path


def test_parameters_cannot_inject_code(tmp_path: Path) -> None:
    """A hostile string parameter arrives as data, never as code."""
    out = tmp_path / "out.ipynb"
    hostile = 'x"\nimport os; os.system("touch PWNED")\n"'
    papermill.execute_notebook(
        str(NOTEBOOKS / "explore.ipynb"),
        str(out),
        prepare_only=True,
        parameters={"report": {"title": hostile}},
        kernel_name="wfo_kit",
    )
    nb = nbformat.read(out, as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(compile(injected.source, "injected", "exec"), namespace)  # the point of the test
    assert namespace["report"] == {"title": hostile}
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.e2e
def test_explorer_callbacks_in_a_real_kernel(tmp_path: Path) -> None:
    """Drive the explorer's widgets in a kernel: figures update in place."""
    nb = nbformat.read(NOTEBOOKS / "explore.ipynb", as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell("""
before = explorer.field.data[1].x
first = explorer.company.value
explorer.rate.value = explorer.rate.value + 1.0   # the box is in percent
after = explorer.field.data[1].x
assert after[0] < before[0], (before, after)          # DCF base falls when the rate rises
explorer.weights["dcf"].value = 1.0
explorer.weights["comparables"].value = 0.0
explorer.weights["asset"].value = 0.0
assert abs(explorer.field.data[1].x[-1] - explorer.field.data[1].x[0]) < 1e-9  # blend = DCF
explorer.company.value = explorer.company.options[1][1]
assert explorer.company.value != first
z = explorer.heat.data[0].z
assert len(z) == 11 and len(z[0]) == 11
print("explorer ok")
""")
    )
    source = tmp_path / "explore_test.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(
        str(source),
        str(tmp_path / "out.ipynb"),
        kernel_name="wfo_kit",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "explorer ok" in out.cells[-1].outputs[0]["text"]


@pytest.mark.e2e
def test_valuation_notebook_runs_top_to_bottom_as_in_jupyterlab(tmp_path: Path) -> None:
    """No parameters injected (as when opened in JupyterLab): the sample, nothing written."""
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "valuation.ipynb"),
        str(out),
        kernel_name="wfo_kit",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # interactive session: figures carry Plotly's MIME type, and a widget progress bar is shown
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert list(tmp_path.iterdir()) == [out]  # nothing written without a run folder


@pytest.mark.e2e
def test_history_notebook_runs_on_an_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "history.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "history.ipynb"),
        str(out),
        kernel_name="wfo_kit",
        parameters={"output_root": str(tmp_path)},
        progress_bar=False,
    )
    text = out.read_text()
    assert "0 runs under" in text


@pytest.mark.e2e
def test_the_report_notebook_runs_the_configured_steps(tmp_path: Path) -> None:
    from wfo_kit.config import resolve_config
    from wfo_kit.runs import run_report

    sets = [
        "pipeline.steps=[load,validate,value]",
        "valuation.monte_carlo.enabled=false",
        "valuation.sensitivity.enabled=false",
    ]
    resolved = resolve_config(Path("parameters/default.yaml"), sets=sets)
    result = run_report(resolved, output_root=tmp_path)
    assert result.status == "succeeded", result.error
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["results"] == []  # no output step configured: no result tables
    assert [s["step"] for s in manifest["steps"]] == ["load", "validate", "value"]
    assert "Value per share by method" in result.report.read_text()
