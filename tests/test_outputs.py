"""Every output table of a sample run conforms to its Pandera schema."""

from __future__ import annotations

import pytest

from wfo_kit.config import load_config
from wfo_kit.pipeline import RunContext, run_pipeline
from wfo_kit.schemas import OUTPUT_SCHEMAS


@pytest.fixture(scope="module")
def ctx() -> RunContext:
    return run_pipeline(RunContext(load_config()), ["load", "validate", "value"])


@pytest.mark.parametrize("table", sorted(OUTPUT_SCHEMAS))
def test_output_conforms_to_its_schema(ctx: RunContext, table: str) -> None:
    frame = ctx[table]
    # setting_effects is empty when no setting was set (the bundled sample, no parameters file);
    # tests/test_effects.py validates a frame with rows
    assert frame.height > 0 or table == "setting_effects"
    OUTPUT_SCHEMAS[table].validate(frame, lazy=True)
