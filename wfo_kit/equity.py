"""Equity-side models: dividend discount (Gordon, two-stage, H-model, three-stage) and FCFE.

Both value equity directly, at the cost of equity, per share; vectorized over companies (NumPy over
a companies x years matrix, never a loop per company). Conventions (docs/conventions.md):

* Dividends: D_t = D_0 x prod_{k <= t} (1 + g_k). A row may give next year's dividend instead
  (``dividend_basis`` D1): D_0 is then D_1 / (1 + g_1), so every model reads one base.
* Growth path g_k: g_a through year n1 (``high_growth_years``), then a straight line reaching the
  stable g_n in year n1 + n2 (``transition_years``), g_n after. Two-stage: n2 = 0; Gordon: n1 =
  n2 = 0. Payout (earnings route, a row with ``eps``): DPS_t = EPS_t x payout_t, the payout moving
  the same way from ``payout_ratio`` to ``stable_payout_ratio``.
* Cost of equity path: ke through year n1, then linearly to the stable ke by year n1 + n2
  (as :func:`wfo_kit.dcf.rate_path`, with the fade year per company); cumulative discount
  factors; terminal price at year T = n1 + n2: P_T = DPS_{T+1} / (ke_stable - g_n).
* H-model (Fuller and Hsia): V = D_0 (1 + g_L) / (r - g_L) + D_0 x H x (g_S - g_L) / (r - g_L),
  H = n2 / 2 (the growth rate falls linearly from g_S to g_L over 2H years).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from wfo_kit.config import ValuationConfig, WaccConfig
from wfo_kit.dcf import fcff_expr
from wfo_kit.frames import format_text
from wfo_kit.rates import cost_of_equity

DdmModel = Literal["gordon", "two_stage", "h_model", "three_stage"]
DDM_MODELS: tuple[str, ...] = ("gordon", "two_stage", "h_model", "three_stage")


def _arr(value: np.ndarray | float) -> np.ndarray:
    return np.atleast_1d(np.asarray(value, dtype=np.float64))


def gordon_value(
    dividend: np.ndarray | float,
    cost_of_equity: np.ndarray | float,
    growth: np.ndarray | float,
    *,
    next_dividend: bool = False,
) -> np.ndarray:
    """V_0 = D_1 / (ke - g); D_1 = D_0 x (1 + g) unless ``next_dividend``. NaN where ke <= g.

    >>> gordon_value(3.456, 0.15, 0.07).round(3).tolist()  # D_3 of the two-stage case: P_3
    [46.224]
    >>> gordon_value(3.69792, 0.15, 0.07, next_dividend=True).round(3).tolist()
    [46.224]
    """
    d, ke, g = _arr(dividend), _arr(cost_of_equity), _arr(growth)
    d1 = d if next_dividend else d * (1.0 + g)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ke > g, d1 / (ke - g), np.nan)


def h_model_value(
    dividend: np.ndarray | float,
    cost_of_equity: np.ndarray | float,
    short_growth: np.ndarray | float,
    long_growth: np.ndarray | float,
    *,
    half_life: np.ndarray | float,
) -> np.ndarray:
    """H-model: D_0 (1 + g_L) / (r - g_L) + D_0 H (g_S - g_L) / (r - g_L). NaN where r <= g_L.

    >>> h_model_value(2.0, 0.098, 0.07, 0.05, half_life=1.5).round(6).tolist()
    [45.0]
    """
    d, r = _arr(dividend), _arr(cost_of_equity)
    gs, gl, h = _arr(short_growth), _arr(long_growth), _arr(half_life)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (d * (1.0 + gl) + d * h * (gs - gl)) / (r - gl)
    return np.where(r > gl, value, np.nan)


def _linear(
    start: np.ndarray, end: np.ndarray, n1: np.ndarray, n2: np.ndarray, years: int
) -> np.ndarray:
    """start through year n1, then linear to end reached in year n1 + n2, end after (n x years)."""
    k = np.arange(1, years + 1, dtype=np.float64)[None, :]
    span = np.maximum(n2, 1.0)[:, None]
    weight = np.clip((k - n1[:, None]) / span, 0.0, 1.0)
    return start[:, None] + (end - start)[:, None] * weight


def multistage_value(
    base: np.ndarray | float,
    *,
    cost_of_equity: np.ndarray | float,
    stable_cost_of_equity: np.ndarray | float | None = None,
    growth: np.ndarray | float,
    stable_growth: np.ndarray | float,
    high_growth_years: np.ndarray | float,
    transition_years: np.ndarray | float = 0.0,
    payout: np.ndarray | float = 1.0,
    stable_payout: np.ndarray | float | None = None,
) -> dict[str, np.ndarray]:
    """Two- and three-stage DDM (per share), one value per company; NaN where ke_stable <= g_n.

    ``base`` is D_0 (payouts 1) or EPS_0 (with payouts). Returns ``pv_dividends``,
    ``terminal_price`` (at year T = n1 + n2), ``pv_terminal`` and ``value``.

    Examples
    --------
    D_0 = 2, 20 % for three years, then 7 %, r = 15 % (printed: 36.930057):

    >>> out = multistage_value(2.0, cost_of_equity=0.15, growth=0.20, stable_growth=0.07,
    ...                        high_growth_years=3)
    >>> round(float(out["value"][0]), 6)
    36.930057
    """
    base, ke, g_a, g_n = _arr(base), _arr(cost_of_equity), _arr(growth), _arr(stable_growth)
    n = max(base.size, ke.size, g_a.size, g_n.size, np.size(high_growth_years))
    base, ke, g_a, g_n = (np.broadcast_to(a, (n,)) for a in (base, ke, g_a, g_n))
    ke_st = (
        ke if stable_cost_of_equity is None else np.broadcast_to(_arr(stable_cost_of_equity), (n,))
    )
    n1 = np.broadcast_to(_arr(high_growth_years), (n,))
    n2 = np.broadcast_to(_arr(transition_years), (n,))
    p_hg = np.broadcast_to(_arr(payout), (n,))
    p_st = p_hg if stable_payout is None else np.broadcast_to(_arr(stable_payout), (n,))
    horizon = n1 + n2
    years = int(np.nanmax(horizon, initial=0.0)) + 1  # year T + 1 closes the terminal price
    growth_path = _linear(g_a, g_n, n1, n2, years)
    payout_path = _linear(p_hg, p_st, n1, n2, years)
    earnings = base[:, None] * np.cumprod(1.0 + growth_path, axis=1)
    dividends = earnings * payout_path
    k = np.arange(1, years + 1)[None, :]
    explicit = k <= horizon[:, None]
    # the cost of equity: ke through n1, then linearly to the stable ke by year T (as the DCF's
    # rate path, with the fade year per company)
    rates = _linear(ke, ke_st, n1, n2, years)
    factors = np.cumprod(1.0 / (1.0 + rates), axis=1)
    pv = np.where(explicit, dividends * factors, 0.0).sum(axis=1)
    rows = np.arange(n)
    last = horizon.astype(np.int64)
    next_dividend = dividends[rows, last]  # DPS_{T+1}: stable growth and stable payout
    with np.errstate(divide="ignore", invalid="ignore"):
        price = np.where(ke_st > g_n, next_dividend / (ke_st - g_n), np.nan)
    final = np.where(last > 0, factors[rows, np.maximum(last - 1, 0)], 1.0)
    pv_terminal = price * final
    return {
        "pv_dividends": pv,
        "terminal_price": price,
        "pv_terminal": pv_terminal,
        "value": pv + pv_terminal,
    }


# --------------------------------------------------------------------------------------------
# Frames: the ddm and fcfe methods over the companies (and financials) tables


def cost_of_equity_expr(*, wacc: WaccConfig) -> pl.Expr:
    """The row's ``cost_of_equity``, else CAPM: rf + beta x ERP + premiums (null without beta)."""
    return pl.coalesce(pl.col("cost_of_equity"), cost_of_equity(pl.col("beta"), wacc=wacc))


def _missing(needed: dict[str, pl.Expr]) -> pl.Expr:
    """The names of the inputs whose flag is true, comma separated (null when none)."""
    text = pl.concat_str(
        [pl.when(flag).then(pl.lit(name)) for name, flag in needed.items()],
        separator=", ",
        ignore_nulls=True,
    )
    return pl.when(text != "").then(text)


def ddm_frame(companies: pl.DataFrame, *, valuation: ValuationConfig) -> pl.DataFrame:
    """The DDM inputs per company, with ``reason`` (null when the company can be valued)."""
    eq = valuation.equity
    model = eq.ddm_model
    earnings = pl.col("eps").is_not_null() & pl.col("payout_ratio").is_not_null()
    frame = companies.with_columns(
        cost_of_equity_expr(wacc=valuation.wacc).alias("ke"),
        pl.coalesce(
            pl.col("stable_cost_of_equity"),
            pl.lit(eq.stable_cost_of_equity, pl.Float64),
            cost_of_equity_expr(wacc=valuation.wacc),
        ).alias("ke_stable"),
        pl.col("terminal_growth").fill_null(valuation.terminal_growth).alias("g_stable"),
        pl.col("high_growth_years").fill_null(eq.high_growth_years).cast(pl.Float64).alias("n1"),
        pl.col("transition_years").fill_null(eq.transition_years).cast(pl.Float64).alias("n2"),
        pl.col("dividend_basis").fill_null(pl.lit(eq.dividend_basis)).alias("basis"),
        earnings.alias("earnings_route"),
    )
    if model == "gordon":
        frame = frame.with_columns(pl.lit(0.0).alias("n1"), pl.lit(0.0).alias("n2"))
        frame = frame.with_columns(pl.col("g_stable").alias("g_high"))
    else:
        frame = frame.with_columns(pl.col("dividend_growth").alias("g_high"))
    if model == "two_stage":
        frame = frame.with_columns(pl.lit(0.0).alias("n2"))
    if model == "h_model":
        frame = frame.with_columns(pl.lit(0.0).alias("n1"))
    needed = {
        "dividend_per_share (or eps and payout_ratio)": pl.col("dividend_per_share").is_null()
        & ~(earnings & pl.lit(model in ("two_stage", "three_stage"))),
        "cost_of_equity (or beta)": pl.col("ke").is_null(),
        "dividend_growth": pl.col("g_high").is_null(),
    }
    reason = (
        pl.when(_missing(needed).is_not_null())
        .then(format_text(f"ddm ({model}) needs {{}}", _missing(needed)))
        .when(pl.col("ke_stable") <= pl.col("g_stable"))
        .then(
            format_text(
                "stable cost of equity {} must exceed stable growth {}",
                pl.col("ke_stable"),
                pl.col("g_stable"),
            )
        )
    )
    return frame.with_columns(reason.alias("reason"))


def ddm_values(
    frame: pl.DataFrame, *, model: str, ke_shift: np.ndarray | float = 0.0, g_shift: float = 0.0
) -> dict[str, np.ndarray]:
    """Per-share DDM values of :func:`ddm_frame` rows (all valuable), shifted for the range."""
    num = {c: frame[c].cast(pl.Float64).to_numpy() for c in ("ke", "ke_stable", "g_stable")}
    ke, ke_st = num["ke"] + ke_shift, num["ke_stable"] + ke_shift
    g_n = num["g_stable"] + g_shift
    g_a = frame["g_high"].cast(pl.Float64).to_numpy()
    if model == "gordon":
        g_a = g_n
    n1, n2 = frame["n1"].to_numpy(), frame["n2"].to_numpy()
    dps = frame["dividend_per_share"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    next_basis = (frame["basis"] == "D1").to_numpy()
    first_growth = np.where(
        n1 > 0, g_a, np.where(n2 > 0, g_a - (g_a - g_n) / np.maximum(n2, 1), g_n)
    )
    d0 = np.where(next_basis, dps / (1.0 + first_growth), dps)
    if model == "h_model":
        value = h_model_value(d0, ke, g_a, g_n, half_life=n2 / 2.0)
        return {
            "pv_dividends": np.full(value.shape, np.nan),
            "terminal_price": np.full(value.shape, np.nan),
            "pv_terminal": np.full(value.shape, np.nan),
            "value": value,
        }
    route = frame["earnings_route"].to_numpy() & np.isnan(dps) if model != "gordon" else False
    eps = frame["eps"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    payout = frame["payout_ratio"].cast(pl.Float64).fill_null(1.0).to_numpy()
    stable_payout = frame["stable_payout_ratio"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    stable_payout = np.where(np.isnan(stable_payout), payout, stable_payout)
    return multistage_value(
        np.where(route, eps, d0),
        cost_of_equity=ke,
        stable_cost_of_equity=ke_st,
        growth=g_a,
        stable_growth=g_n,
        high_growth_years=n1,
        transition_years=n2,
        payout=np.where(route, payout, 1.0),
        stable_payout=np.where(route, stable_payout, 1.0),
    )


def value_ddm(
    companies: pl.DataFrame, *, valuation: ValuationConfig
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(valued, ddm_detail, excluded) for the configured DDM. Equity = value x diluted shares.

    The range: low at ke + ``range.rate_delta`` and g - ``range.growth_delta``, high the reverse.
    """
    model = valuation.equity.ddm_model
    frame = ddm_frame(companies.sort("company_id", maintain_order=True), valuation=valuation)
    excluded = frame.filter(pl.col("reason").is_not_null()).select("company_id", "reason")
    ok = frame.filter(pl.col("reason").is_null())
    parts = ddm_values(ok, model=model)
    d = valuation.range
    low = ddm_values(ok, model=model, ke_shift=d.rate_delta, g_shift=-d.growth_delta)["value"]
    high = ddm_values(ok, model=model, ke_shift=-d.rate_delta, g_shift=d.growth_delta)["value"]
    detail = ok.select(
        "company_id",
        pl.lit(model).alias("model"),
        "dividend_per_share",
        "basis",
        "ke",
        "ke_stable",
        "g_high",
        "g_stable",
        "n1",
        "n2",
        "shares_diluted",
    ).with_columns(
        [pl.Series(k, v).fill_nan(None) for k, v in parts.items()]
        + [pl.Series("low", low).fill_nan(None), pl.Series("high", high).fill_nan(None)]
    )
    valued = detail.select(
        "company_id",
        pl.lit(None, pl.Float64).alias("enterprise_value"),
        (pl.col("value") * pl.col("shares_diluted")).alias("equity_value"),
        pl.col("value").alias("value_per_share"),
        "low",
        "high",
    )
    return valued, detail.rename({"value": "value_per_share"}), excluded


def fcfe_expr(basis: str) -> pl.Expr:
    """FCFE per financials row (needs the company's ``tax_rate`` and ``debt`` joined).

    fcff: FCFF - interest x (1 - t) + net borrowing; net_income: net income - (capex - D&A) -
    change in NWC + net borrowing. Interest and net borrowing read as 0 for a company with no
    debt; otherwise a null one makes the FCFE null.
    """
    no_debt = pl.col("debt") == 0
    interest = pl.when(no_debt).then(pl.col("interest_expense").fill_null(0.0))
    interest = interest.otherwise(pl.col("interest_expense"))
    borrowing = pl.when(no_debt).then(pl.col("net_borrowing").fill_null(0.0))
    borrowing = borrowing.otherwise(pl.col("net_borrowing"))
    if basis == "fcff":
        return fcff_expr() - interest * (1 - pl.col("tax_rate")) + borrowing
    return (
        pl.col("net_income")
        - (pl.col("capex") - pl.col("depreciation"))
        - pl.col("change_nwc")
        + borrowing
    )


def fcfe_tables(
    companies: pl.DataFrame, financials: pl.DataFrame, *, valuation: ValuationConfig
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(companies for the FCFE DCF, financials with FCFE in ``fcff``, excluded with reasons).

    The companies carry the cost of equity as ``discount_rate`` (stable: ``stable_discount_rate``)
    and debt 0: the lenders are already paid in FCFE, so the bridge adds cash and non-operating
    assets and takes minority interest and preferred equity, never debt.
    """
    eq = valuation.equity
    frame = companies.with_columns(
        cost_of_equity_expr(wacc=valuation.wacc).alias("_ke"),
        pl.coalesce(
            pl.col("stable_cost_of_equity"), pl.lit(eq.stable_cost_of_equity, pl.Float64)
        ).alias("_ke_stable"),
    )
    no_ke = frame.filter(pl.col("_ke").is_null()).select(
        "company_id", pl.lit("fcfe needs cost_of_equity (or beta)").alias("reason")
    )
    frame = frame.filter(pl.col("_ke").is_not_null())
    rows = financials.join(
        frame.select("company_id", "tax_rate", "debt"), on="company_id", how="inner"
    ).with_columns(pl.when(pl.col("is_forecast")).then(fcfe_expr(eq.fcfe_basis)).alias("_fcfe"))
    needs = (
        "interest_expense and net_borrowing (the company has debt)"
        if eq.fcfe_basis == "fcff"
        else "net_income, capex, depreciation, change_nwc (and net_borrowing with debt)"
    )
    gaps = (
        rows.filter(pl.col("is_forecast") & pl.col("_fcfe").is_null())
        .group_by("company_id", maintain_order=True)
        .agg(pl.col("year").sort().cast(pl.String).str.join(", ").alias("years"))
        .select(
            "company_id",
            format_text(f"fcfe needs {needs} for {{}}", pl.col("years")).alias("reason"),
        )
    )
    keep = ~pl.col("company_id").is_in(gaps["company_id"].implode())
    fin = (
        rows.filter(keep)
        .with_columns(
            pl.when(pl.col("is_forecast"))
            .then(pl.col("_fcfe"))
            .otherwise(pl.col("fcff"))
            .alias("fcff")
        )
        .drop("_fcfe", "tax_rate", "debt")
    )
    comp = (
        frame.filter(keep)
        .with_columns(
            pl.col("_ke").alias("discount_rate"),
            pl.col("_ke_stable").alias("stable_discount_rate"),
            pl.lit(0.0).alias("debt"),
        )
        .drop("_ke", "_ke_stable")
    )
    return comp, fin, pl.concat([no_ke, gaps])
