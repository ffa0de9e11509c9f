"""The blended range (issue 10, item 2): never upside down, missing bounds named, shown honestly."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfo_kit.blend import blend_values
from wfo_kit.charts import football_field

METHODS = ("dcf", "comparables", "asset")


def valuations(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (company_id, method, status, low, base, high)."""
    return pl.DataFrame(
        [
            {
                "company_id": c,
                "method": m,
                "status": s,
                "reason": None if s == "valued" else "not valued here",
                "low": lo,
                "value_per_share": base,
                "high": hi,
            }
            for c, m, s, lo, base, hi in rows
        ],
        schema={
            "company_id": pl.String,
            "method": pl.String,
            "status": pl.String,
            "reason": pl.String,
            "low": pl.Float64,
            "value_per_share": pl.Float64,
            "high": pl.Float64,
        },
    )


def test_issue_case_null_dcf_high_does_not_turn_the_range_upside_down() -> None:
    """r 7 %, g 5.8 %: the DCF high (r - 1 pt, g + 0.5 pt) has r <= g and is null."""
    frame = valuations(
        [
            ("A", "dcf", "valued", 25.9, 80.0, None),
            ("A", "comparables", "valued", 15.0, 20.0, 25.0),
        ]
    )
    row = blend_values(frame, weights={"dcf": 0.5, "comparables": 0.5}).row(0, named=True)
    assert row["base"] == pytest.approx(50.0)
    assert row["low"] == pytest.approx(0.5 * 25.9 + 0.5 * 15.0)  # both lows: plain average
    # the high is renormalised over the methods that have one, as a spread above the base
    assert row["high"] == pytest.approx(50.0 + (25.0 - 20.0))
    assert row["low"] <= row["base"] <= row["high"]
    assert "dcf high" in row["methods_missing"]
    assert "not computed" in row["methods_missing"]


def test_no_method_with_a_bound_leaves_that_bound_null_and_says_so() -> None:
    frame = valuations([("A", "dcf", "valued", 10.0, 12.0, None)])
    row = blend_values(frame, weights={"dcf": 1.0}).row(0, named=True)
    assert row["high"] is None
    assert row["low"] == pytest.approx(10.0)
    assert "dcf high" in row["methods_missing"]


def test_nan_bounds_count_as_missing() -> None:
    frame = valuations([("A", "dcf", "valued", 10.0, 12.0, float("nan"))])
    row = blend_values(frame, weights={"dcf": 1.0}).row(0, named=True)
    assert row["high"] is None


bound = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e3))


@st.composite
def company_valuations(draw: st.DrawFn) -> tuple[pl.DataFrame, dict[str, float]]:
    rows = []
    for company in ("A", "B", "C"):
        for method in METHODS:
            status = draw(st.sampled_from(["valued", "valued", "valued", "excluded"]))
            if status != "valued":
                rows.append((company, method, status, None, None, None))
                continue
            base = draw(st.floats(min_value=-1e3, max_value=1e3))
            down, up = draw(bound), draw(bound)
            rows.append(
                (
                    company,
                    method,
                    status,
                    None if down is None else base - down,
                    base,
                    None if up is None else base + up,
                )
            )
    # 0 or a real weight: Polars divides by a scalar through its reciprocal, which a subnormal
    # total (below 2.2e-308) turns into infinity
    weight = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1.0))
    weights = {m: draw(weight) for m in METHODS}
    return valuations(rows), weights


@settings(max_examples=200, deadline=None)
@given(case=company_valuations())
def test_blended_rows_are_ordered_and_spreads_stay_within_the_methods(
    case: tuple[pl.DataFrame, dict[str, float]],
) -> None:
    frame, weights = case
    blend = blend_values(frame, weights=weights)
    for row in blend.iter_rows(named=True):
        used = frame.filter(
            (pl.col("company_id") == row["company_id"])
            & (pl.col("status") == "valued")
            & pl.col("method").is_in([m for m, w in weights.items() if w > 0])
        )
        if row["base"] is None:
            assert row["low"] is None
            assert row["high"] is None
            continue
        tol = 1e-9 * max(1.0, abs(row["base"]))
        ups = (used["high"] - used["value_per_share"]).drop_nulls().to_list()
        downs = (used["value_per_share"] - used["low"]).drop_nulls().to_list()
        if row["high"] is None:
            assert not ups
        else:
            assert row["base"] <= row["high"] + tol
            # near the range deltas: the blended spread lies within the methods' spreads
            assert min(ups) - tol <= row["high"] - row["base"] <= max(ups) + tol
        if row["low"] is None:
            assert not downs
        else:
            assert row["low"] <= row["base"] + tol
            assert min(downs) - tol <= row["base"] - row["low"] <= max(downs) + tol
        complete = used.filter(pl.col("low").is_not_null() & pl.col("high").is_not_null())
        if complete.height == used.height and used.height:
            # every bound present: exactly the weighted averages of the bounds
            w = [weights[m] for m in used["method"]]
            total = sum(w)
            for column, name in (("low", "low"), ("high", "high")):
                expected = math.fsum(a * b for a, b in zip(w, used[column], strict=True)) / total
                assert row[name] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def _bar(fig: object, method_label: str) -> tuple[float | None, float | None, str, str]:
    """(start, width, label on the bar, hover text) of one method's bar."""
    bars = fig.data[0]  # type: ignore[attr-defined]
    i = list(bars.y).index(method_label)
    text = bars.text[i] if bars.text is not None else ""
    hover = bars.hovertext[i] if bars.hovertext is not None else ""
    return bars.base[i], bars.x[i], text, hover


def test_football_field_shows_a_missing_bound_instead_of_hiding_it() -> None:
    frame = valuations(
        [
            ("A", "dcf", "valued", 25.9, 80.0, None),
            ("A", "comparables", "valued", 15.0, 20.0, 25.0),
        ]
    )
    blend = blend_values(frame, weights={"dcf": 0.5, "comparables": 0.5})
    companies = pl.DataFrame({"company_id": ["A"], "name": ["Alpha"]})
    fig = go.Figure(football_field(frame, blend, companies, ["A"]))
    base, width, text, hover = _bar(fig, "DCF")
    # the bar runs from the low to the base (no whisker), and says the high could not be computed
    assert base == pytest.approx(25.9)
    assert width == pytest.approx(80.0 - 25.9)
    assert text == "high could not be computed"
    assert "high could not be computed" in hover
    _, _, complete, _ = _bar(fig, "Comparables")
    assert complete == ""
    start, width, _, _ = _bar(fig, "Blended")
    assert start == pytest.approx(20.45)
    assert start + width == pytest.approx(55.0)  # the blend stays ordered


def test_revalue_blend_is_never_upside_down_at_a_narrow_spread() -> None:
    """The issue's explorer case: r 7 %, g 5.8 % on a sample company, 50/50 with comparables."""
    from wfo_kit.config import load_config
    from wfo_kit.explore import Assumptions, revalue
    from wfo_kit.pipeline import RunContext, run_pipeline

    ctx = run_pipeline(RunContext(load_config()), ["load", "validate", "value"])
    result = revalue(
        ctx, Assumptions("C001", 0.07, 0.058, weights=(("dcf", 0.5), ("comparables", 0.5)))
    )
    dcf = result["methods"].filter(pl.col("method") == "dcf").row(0, named=True)
    assert dcf["high"] is None  # r - 1 pt <= g + 0.5 pt: not a number, and not NaN
    blend = result["blend"]
    assert blend["low"] <= blend["base"] <= blend["high"]
    assert "dcf high" in blend["methods_missing"]
    # the same blend function as the pipeline: same frame in, same row out
    again = blend_values(result["methods"], weights={"dcf": 0.5, "comparables": 0.5})
    assert again.row(0, named=True) == blend
