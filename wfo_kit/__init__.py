"""wfo_kit: notebook-first company valuation workflows (load, validate, value, output, report).

Importing the package does nothing but define names: the heavy modules (Polars, Pandera, Plotly,
Papermill) load on first use of the name that needs them, so ``wfo --help`` stays fast.

>>> import wfo_kit as wfo
>>> ctx = wfo.run_pipeline(wfo.RunContext(wfo.load_config()))   # doctest: +SKIP
>>> ctx["valuations"]                                            # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "wfo_kit.config",
    "load_config": "wfo_kit.config",
    "resolve_config": "wfo_kit.config",
    "sample_data": "wfo_kit.config",
    "given_tables": "wfo_kit.config",
    "RunContext": "wfo_kit.pipeline",
    "run_step": "wfo_kit.pipeline",
    "run_pipeline": "wfo_kit.pipeline",
    "run_steps": "wfo_kit.pipeline",
    "start_run": "wfo_kit.pipeline",
    "finish_run": "wfo_kit.pipeline",
    "portfolio_summary": "wfo_kit.summary",
    "run_metadata": "wfo_kit.summary",
    "shared_sources": "wfo_kit.summary",
    "fcff_by_year": "wfo_kit.summary",
    "price_against_value": "wfo_kit.summary",
    "headline": "wfo_kit.summary",
    "with_names": "wfo_kit.summary",
    "simulation_note": "wfo_kit.summary",
    "dcf_wide": "wfo_kit.dcf",
    "STEPS": "wfo_kit.pipeline",
    "METHODS": "wfo_kit.value",
    "value_companies": "wfo_kit.value",
    "validate_tables": "wfo_kit.validate",
    "load_tables": "wfo_kit.io",
    "read_table": "wfo_kit.io",
    "value_dcf": "wfo_kit.dcf",
    "present_value": "wfo_kit.dcf",
    "register_method": "wfo_kit.plugins",
    "register_step": "wfo_kit.plugins",
    "MethodResult": "wfo_kit.value",
    "xnpv": "wfo_kit.dated",
    "xirr": "wfo_kit.dated",
    "xnpv_frame": "wfo_kit.dated",
    "xirr_frame": "wfo_kit.dated",
    "run_report": "wfo_kit.runs",
    "WfoError": "wfo_kit.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'wfo_kit' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
