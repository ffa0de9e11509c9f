"""Small typed frames that follow the data contract, for unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import polars as pl

from wfo_kit.io import conform

COMPANY = {
    "company_id": "X",
    "name": "Example",
    "sector": "S",
    "currency": "USD",
    "shares_diluted": 100.0,
    "debt": 0.0,
    "cash": 0.0,
    "minority_interest": 0.0,
    "preferred_equity": 0.0,
    "non_operating_assets": 0.0,
    "tax_rate": 0.25,
    "beta": 1.0,
    "discount_rate": 0.10,
    "terminal_growth": 0.02,
}


def companies(*rows: dict[str, Any]) -> pl.DataFrame:
    data = [{**COMPANY, **row} for row in (rows or ({},))]
    return conform(pl.DataFrame(data, infer_schema_length=None), table="companies", where="test")


def financials(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, infer_schema_length=None), table="financials", where="test")


def fcff_rows(company_id: str, first_year: int, flows: list[float], **extra: Any) -> list[dict]:
    return [
        {
            "company_id": company_id,
            "year": first_year + i,
            "is_forecast": True,
            "fcff": f,
            "ebit": None,
            "depreciation": None,
            "capex": None,
            "change_nwc": None,
            **extra,
        }
        for i, f in enumerate(flows)
    ]


def peers(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, infer_schema_length=None), table="peers", where="test")


def balance_sheet(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(
        pl.DataFrame(rows, infer_schema_length=None), table="balance_sheet", where="test"
    )


# Notebooks and parameters files for run and batch tests

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = (
    "data = {}\nvalidation = {}\nvaluation = {}\noutput = {}\nreport = {}\npipeline = {}\n"
    'run_dir = ""\nrun_id = ""\nsources = {}\n'
)


def notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('started')"),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {"name": "wfo_kit", "display_name": "wfo_kit", "language": "python"}
    nbformat.write(nb, path)
    return path


def params(folder: Path, name: str, text: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"extends: {ROOT / 'parameters' / 'default.yaml'}\n{text}", encoding="utf-8")
    return path
