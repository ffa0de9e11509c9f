"""Notebooks: parameters match the configuration model; committed without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import papermill

from wfo_kit.config import Config

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_valuation_parameters_match_the_config_model() -> None:
    params = papermill.inspect_notebook(str(NOTEBOOKS / "valuation.ipynb"))
    assert set(params) == set(Config.model_fields) | {"run_dir"}


def test_notebooks_are_committed_without_outputs() -> None:
    for path in NOTEBOOKS.glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        assert all(
            not c.get("outputs") and not c.get("execution_count")
            for c in cells
            if c["cell_type"] == "code"
        ), path
