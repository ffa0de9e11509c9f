"""Typed, layered configuration.

Sources, lowest to highest precedence::

    built-in defaults < parameters file(s) (``extends:`` chains) < environment (WFO_SECTION__KEY)
    < CLI ``--set section.key=value`` < runtime overrides (a dict from a notebook or the library)

Every value's source is kept (:func:`config_sources`) so ``wfo config show --sources`` can say where
it came from. Unknown keys are errors that suggest the nearest valid key. YAML is read with
``yaml.safe_load``: a ``!!python/...`` tag is an error, never code.

All rates are decimals (0.09 means 9 %). Money is in the currency of each company's row, in the
units of the input tables (the bundled sample uses millions).

Every number must be finite: NaN and infinity (``.nan``, ``.inf`` in YAML) are refused in every
setting, list item and mapping value, and each field's description states its allowed range.
Parameters files are bounded (:data:`MAX_FILE_BYTES`, :data:`MAX_DEPTH`, :data:`MAX_VALUES` after
YAML aliases are expanded, :data:`MAX_EXTENDS`), and a key written twice in one mapping is an error.

Input tables come only from where they are named: a parameters file that leaves out ``peers`` has
no peers table (each method that needs it excludes every company with the reason). With no
parameters file at all, :func:`resolve_config` (and ``load_config()``) use the bundled sample
(:func:`sample_data`), as the notebooks do with an empty ``data`` section.
"""

from __future__ import annotations

import datetime as dt
import json
import json.decoder
import json.scanner
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from wfo_kit.errors import ConfigurationError, did_you_mean
from wfo_kit.opsconfig import HttpPagination, LoggingConfig, NotifyConfig

SAMPLE_DIR = Path(__file__).parent / "sample_data"
ENV_PREFIX = "WFO_"


class _Section(BaseModel):
    # allow_inf_nan=False reaches every float of every section: fields, list items, dict values.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TableSource(_Section):
    """Where one input table comes from: a CSV/Parquet file, or a SQL database.

    A bare string in a parameters file is a file path. Relative paths are relative to the
    parameters file that names them.
    """

    path: str | None = Field(None, description="CSV or Parquet file (by its suffix)")
    url: str | None = Field(
        None,
        description="SQL database URL: sqlite:///file.db or duckdb:///file.duckdb; a password "
        "belongs in an environment variable, written ${VAR} here",
    )
    table: str | None = Field(None, description="table name in the database at `url`")
    query: str | None = Field(None, description="SQL query against the database at `url`")
    lock_timeout: float = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description="seconds a SQLite read waits for a lock held by another connection before "
        "failing as retryable (the step's retry policy then retries with backoff)",
    )
    fallback: TableSource | None = Field(
        None, description="read instead by the load_fallback step (e.g. a cached snapshot)"
    )
    format: Literal["json", "csv"] = Field(
        "json", description="HTTP source (`url: https://...`): the response format"
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP source: request headers; credentials written ${VAR} (from the "
        "environment), e.g. {Authorization: 'Bearer ${PEERS_TOKEN}'}",
    )
    records: str | None = Field(
        None, description="HTTP JSON source: key holding the list of rows (none: the body is it)"
    )
    pagination: HttpPagination | None = Field(None, description="HTTP source: follow pages")
    timeout: float = Field(30.0, gt=0, le=600, description="HTTP source: seconds per request")

    @model_validator(mode="before")
    @classmethod
    def _bare_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _one_source(self) -> TableSource:
        if (self.path is None) == (self.url is None):
            msg = "give exactly one of `path` (a file) or `url` (a SQL database)"
            raise ValueError(msg)
        if self.url is not None and is_http(self.url):
            if self.table is not None or self.query is not None:
                msg = "an HTTP source takes no `table` or `query`"
                raise ValueError(msg)
            for name, value in self.headers.items():
                if _SECRET_HEADER.search(name) and "${" not in value:
                    msg = f"header {name}: write the credential as ${{VAR}} (from the environment)"
                    raise ValueError(msg)
            return self
        if self.url is not None and (self.table is None) == (self.query is None):
            msg = "a SQL source needs exactly one of `table` or `query`"
            raise ValueError(msg)
        return self


def is_http(url: str) -> bool:
    """Whether a source URL is an HTTP API (else a SQL database)."""
    return url.lower().startswith(("http://", "https://"))


_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|key|password", re.IGNORECASE)


TABLE_NAMES = ("companies", "financials", "peers", "balance_sheet", "dated_flows")
#: Tables without which nothing can be valued; the others only feed their method.
REQUIRED_TABLES = ("companies", "financials")


def sample_data() -> dict[str, str]:
    """The ``data`` section naming the bundled sample's four tables (absolute paths).

    >>> sorted(sample_data())
    ['balance_sheet', 'companies', 'financials', 'peers']
    """
    return {
        name: str(SAMPLE_DIR / f"{name}.csv")
        for name in TABLE_NAMES
        if (SAMPLE_DIR / f"{name}.csv").is_file()  # the sample has no dated flows
    }


class DataConfig(_Section):
    """The input tables (see docs/data-contract.md). A table not given is absent (None): never
    filled from the bundled sample. ``companies`` and ``financials`` are needed to load."""

    companies: TableSource | None = Field(None, description="one row per company (required)")
    financials: TableSource | None = Field(
        None, description="one row per company and year (required)"
    )
    peers: TableSource | None = Field(
        None, description="comparable companies; not given: the comparables method values none"
    )
    balance_sheet: TableSource | None = Field(
        None, description="balance-sheet items; not given: the asset method values none"
    )
    dated_flows: TableSource | None = Field(
        None,
        description="cash flows on dates (deal-style); not given: the dated method values none",
    )


def given_tables(data: DataConfig) -> list[tuple[str, str]]:
    """(table, where it comes from) for each input table: a path, a SQL URL with its password
    masked and the table (or "query"), or "not given".

    >>> given_tables(DataConfig(companies="c.csv"))[:2]
    [('companies', 'c.csv'), ('financials', 'not given')]
    """
    rows = []
    for name in TABLE_NAMES:
        source = getattr(data, name)
        if source is None:
            where = "not given"
        elif source.path is not None:
            where = source.path
        else:
            what = f"table {source.table}" if source.table is not None else "query"
            where = f"{mask_secrets(source.url)} ({what})"
        rows.append((name, where))
    return rows


def require_tables(data: DataConfig) -> None:
    """Raise a ConfigurationError naming the first required table that is not given."""
    for name in REQUIRED_TABLES:
        if getattr(data, name) is None:
            msg = f"no {name} table given (data.{name})"
            hint = (
                f"name it in the parameters file, e.g. `data: {{{name}: {name}.csv}}`; "
                f"the bundled sample is {SAMPLE_DIR / name}.csv"
            )
            raise ConfigurationError(msg, table=name, column=f"data.{name}", hint=hint)


class ValidationConfig(_Section):
    fail_below: float = Field(
        0.0,
        ge=0,
        le=1,
        description="`wfo validate` exits 2, and a run stops at its validate step "
        "(DataQualityError), when any table's score is below this",
    )
    spread_warning: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="warn when discount rate - terminal growth is below this (decimal, 0 <= x < 1)",
    )


METHOD_NAMES = ("dcf", "comparables", "asset", "ddm", "fcfe", "dated")
#: the methods run when valuation.methods is not set (the equity models are chosen explicitly)
DEFAULT_METHODS = ("dcf", "comparables", "asset")
#: A shift added to a rate or a growth rate (decimal).
_Delta = Annotated[float, Field(gt=-1, lt=1)]
#: An EV/EBITDA multiple.
_Multiple = Annotated[float, Field(gt=0, le=1000)]
MULTIPLES = ("ev_ebitda", "ev_ebit", "ev_sales", "pe")


class WaccConfig(_Section):
    """WACC = E/(D+E) x Ke + D/(D+E) x Kd x (1 - t); Ke = rf + beta x ERP + premiums."""

    risk_free: float = Field(
        0.04, ge=-0.1, le=0.5, description="risk-free rate, decimal, -0.1 <= x <= 0.5"
    )
    equity_risk_premium: float = Field(
        0.05, ge=0, le=0.5, description="equity (market) risk premium, decimal, 0 <= x <= 0.5"
    )
    premiums: float = Field(
        0.0,
        ge=-0.5,
        le=0.5,
        description="extra premiums added to Ke (size, country), decimal, -0.5 <= x <= 0.5",
    )
    cost_of_debt: float = Field(
        0.06, ge=0, lt=1, description="pre-tax cost of debt, decimal, 0 <= x < 1"
    )
    weights: Literal["market", "debt_to_equity", "debt_to_value"] = Field(
        "market",
        description="market: E = market_cap column (or share_price x shares), D = debt; "
        "debt_to_equity / debt_to_value: the target ratio below",
    )
    target_ratio: float | None = Field(
        None,
        ge=0,
        le=100,
        description="target D/E (0 <= x <= 100) or D/V (0 <= x < 1) for the ratio weight modes",
    )

    @model_validator(mode="after")
    def _ratio_given(self) -> WaccConfig:
        if self.weights != "market" and self.target_ratio is None:
            msg = f"wacc.weights={self.weights} needs wacc.target_ratio"
            raise ValueError(msg)
        if self.weights == "debt_to_value" and (self.target_ratio or 0) >= 1:
            msg = "wacc.target_ratio is D/V here and must be below 1"
            raise ValueError(msg)
        return self


class DriversConfig(_Section):
    """Driver-based forecast (Damodaran style); a company row's own driver columns win."""

    years: int = Field(10, ge=1, le=50, description="forecast horizon N, years")
    high_growth_years: int = Field(
        5, ge=0, description="years at the near-term growth before it fades linearly to g"
    )
    revenue_growth: float = Field(
        0.05, gt=-1, le=10, description="near-term revenue growth, decimal, -1 < x <= 10"
    )
    target_margin: float | None = Field(
        None,
        gt=-1,
        lt=1,
        description="operating (EBIT) margin reached linearly by year N, -1 < x < 1; "
        "null: base margin",
    )
    sales_to_capital: float = Field(
        1.5,
        gt=0,
        le=100,
        description="reinvestment = change in revenue / sales-to-capital, 0 < x <= 100",
    )
    stable_roc: float | None = Field(
        None,
        gt=0,
        le=10,
        description="return on capital in stable growth, 0 < x <= 10; null: the discount rate",
    )


class ComparablesConfig(_Section):
    multiples: list[Literal["ev_ebitda", "ev_ebit", "ev_sales", "pe"]] = Field(
        default_factory=lambda: ["ev_ebitda"],
        description="EV/EBITDA, EV/EBIT, EV/Sales (then the bridge) and P/E (equity, no bridge)",
    )
    statistic: Literal["median", "mean", "harmonic_mean", "trimmed_mean"] = "median"
    trim: float = Field(0.1, ge=0, lt=0.5, description="share cut from each end (trimmed_mean)")
    min_peers: int = Field(3, ge=1, description="fewer valid peers than this: fall back / exclude")
    basis: Literal["ntm", "ltm"] = Field(
        "ntm", description="target metric: first forecast year (ntm) or last actual year (ltm)"
    )


class AssetConfig(_Section):
    basis: Literal["adjusted_nav", "liquidation"] = Field(
        "adjusted_nav", description="which asset-based value is the method's base value"
    )
    liquidation_cost_rate: float = Field(
        0.05, ge=0, lt=1, description="liquidation costs as a share of gross proceeds"
    )
    recovery_rates: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: {
            "cash": 1.0,
            "receivables": 0.8,
            "inventory": 0.5,
            "machinery": 0.7,
            "real_estate": 0.9,
            "intangible": 0.0,
        },
        description="recovery per asset class where a balance-sheet row gives none, 0 <= x <= 1",
    )
    reconcile_tolerance: float = Field(
        0.01, ge=0, description="book + adjustment vs stated adjusted value, absolute money, >= 0"
    )


class SensitivityConfig(_Section):
    enabled: bool = Field(True, description="compute the grids (rows = companies x 121 x 2)")
    rate_deltas: list[_Delta] = Field(
        default_factory=lambda: [round(-0.02 + 0.004 * i, 4) for i in range(11)],
        description="shifts added to each company's discount rate, decimal, each -1 < x < 1",
    )
    growth_deltas: list[_Delta] = Field(
        default_factory=lambda: [round(-0.01 + 0.002 * i, 4) for i in range(11)],
        description="shifts added to terminal growth, decimal, each -1 < x < 1",
    )
    exit_multiples: list[_Multiple] = Field(
        default_factory=lambda: [6.0 + i for i in range(11)],
        description="exit EV/EBITDA multiples for the rate x exit-multiple grid, "
        "each 0 < x <= 1000",
    )


class Scenario(_Section):
    name: str
    probability: float = Field(ge=0, le=1, description="0 <= x <= 1; all scenarios sum to 1")
    discount_rate_delta: _Delta = Field(0.0, description="added to the discount rate, -1 < x < 1")
    terminal_growth_delta: _Delta = Field(0.0, description="added to terminal growth, -1 < x < 1")
    cash_flow_scale: float = Field(
        1.0, gt=0, le=100, description="multiplies every forecast FCFF, 0 < x <= 100"
    )


class Distribution(_Section):
    """A scipy.stats distribution, sampled by inverse transform (ppf) of uniform draws.

    The parameters must be valid for scipy (``scale`` > 0, shapes in their domain): the
    distribution's quantiles at 1e-6, 0.5 and 1 - 1e-6 must all be finite numbers, so that no draw
    is lost to an invalid parameter.
    """

    dist: str = Field(description="scipy.stats name, e.g. norm, uniform, triang, lognorm")
    params: dict[str, float] = Field(
        default_factory=dict,
        description="scipy keyword parameters, finite, scale > 0, e.g. {loc: 0, scale: 0.01}",
    )

    @model_validator(mode="after")
    def _known(self) -> Distribution:
        if (self.dist, tuple(sorted(self.params.items()))) in SHIPPED_DISTRIBUTIONS:
            # checked by tests/test_config.py against scipy; importing scipy.stats costs 1.6 s,
            # which a batch would otherwise pay before its first worker starts
            return self
        return self.checked()

    def checked(self) -> Distribution:
        """This distribution, once scipy.stats has confirmed its name and parameters."""
        import warnings

        import numpy as np
        import scipy.stats

        dist = getattr(scipy.stats, self.dist, None)
        if not isinstance(dist, scipy.stats.rv_continuous):
            msg = f"{self.dist!r} is not a continuous scipy.stats distribution"
            raise ValueError(msg)
        scale = self.params.get("scale")
        if scale is not None and scale <= 0:
            msg = f"{self.dist} scale must be > 0, got {scale:g}"
            raise ValueError(msg)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                quantiles = dist(**self.params).ppf([1e-6, 0.5, 1 - 1e-6])
        except (TypeError, ValueError) as exc:
            msg = f"bad parameters for {self.dist}: {exc}"
            raise ValueError(msg) from exc
        if np.isnan(quantiles).any():
            msg = f"parameters {self.params} are not valid for {self.dist} (scipy gives no values)"
            raise ValueError(msg)
        if not np.isfinite(quantiles).all():
            msg = f"draws from {self.dist} with {self.params} are not finite"
            raise ValueError(msg)
        return self


#: The Monte Carlo defaults (name, sorted parameters), valid without asking scipy each time.
SHIPPED_DISTRIBUTIONS = frozenset(
    {
        ("norm", (("loc", 0.0), ("scale", 0.01))),
        ("uniform", (("loc", -0.005), ("scale", 0.01))),
        ("norm", (("loc", 1.0), ("scale", 0.1))),
    }
)


class MonteCarloConfig(_Section):
    enabled: bool = True
    draws: int = Field(2000, ge=10, le=10_000_000)
    seed: int = Field(20261126, ge=0, lt=2**63, description="0 <= seed < 2**63 (numpy)")
    sampler: Literal["random", "sobol"] = Field(
        "sobol", description="sobol: scrambled, quasi-random"
    )
    discount_rate_shift: Distribution | None = Field(
        default_factory=lambda: Distribution(dist="norm", params={"loc": 0.0, "scale": 0.01}),
        description="added to each company's discount rate",
    )
    terminal_growth_shift: Distribution | None = Field(
        default_factory=lambda: Distribution(dist="uniform", params={"loc": -0.005, "scale": 0.01}),
        description="added to terminal growth",
    )
    cash_flow_scale: Distribution | None = Field(
        default_factory=lambda: Distribution(dist="norm", params={"loc": 1.0, "scale": 0.1}),
        description="multiplies every forecast FCFF",
    )


def known_methods() -> tuple[str, ...]:
    """Built-in method names, then plug-ins (registered in code or installed entry points)."""
    from wfo_kit.plugins import METHOD_GROUP, plugin_names

    return (*METHOD_NAMES, *(n for n in plugin_names(METHOD_GROUP) if n not in METHOD_NAMES))


def _known_methods_in_schema(schema: dict[str, Any]) -> None:
    """The JSON schema lists the method names known when it is made (plug-ins included), so the
    configuration form offers them as choices and clients see them."""
    schema["items"] = {**schema.get("items", {}), "enum": list(known_methods())}


def _method_name(name: str) -> str:
    known = known_methods()
    if name not in known:
        kind, template = "unknown_name", "unknown name {input}"
        raise PydanticCustomError(kind, template, {"input": name, "expected": ", ".join(known)})
    return name


class EquityConfig(_Section):
    """Equity-side models (methods ddm and fcfe); a company row's own column wins."""

    ddm_model: Literal["gordon", "two_stage", "h_model", "three_stage"] = Field(
        "two_stage",
        description="gordon: D1 / (ke - g); two_stage: n1 years of dividend_growth then stable; "
        "h_model: growth falls linearly over 2H = transition_years; three_stage: n1 years high, "
        "n2 years linear decline, then stable",
    )
    dividend_basis: Literal["D0", "D1"] = Field(
        "D0", description="D0: dividend_per_share was just paid; D1: it is next year's"
    )
    high_growth_years: int = Field(5, ge=0, le=100, description="n1 where a row gives none")
    transition_years: int = Field(5, ge=0, le=100, description="n2 where a row gives none")
    stable_cost_of_equity: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="cost of equity in stable growth where a row gives none; unset: the "
        "company's cost of equity",
    )
    fcfe_basis: Literal["fcff", "net_income"] = Field(
        "fcff",
        description="fcff: FCFE = FCFF - interest x (1 - t) + net borrowing; net_income: FCFE = "
        "net income - (capex - D&A) - change in NWC + net borrowing",
    )


class TaxConfig(_Section):
    """Ginzu-style taxes on explicit forecasts (optional; docs/conventions.md)."""

    carry_forward_losses: bool = Field(
        False,
        description="carry net operating losses forward for every company: a loss adds to the "
        "NOL, later profits are taxed only beyond it (a row's nol column turns it on for that "
        "company, from that starting NOL); false: a loss is taxed at the rate (a tax credit)",
    )
    fade_from_year: int = Field(
        5,
        ge=0,
        le=100,
        description="a row's effective_tax_rate holds through this year, then moves linearly to "
        "its marginal tax_rate, reached in year N",
    )


class DiagnosticsConfig(_Section):
    """Traffic-light thresholds of the DCF diagnostics (table ``diagnostics``)."""

    roic_spread_green: float = Field(0.02, gt=-1, lt=1, description="ROIC - r at or above: green")
    roic_spread_amber: float = Field(0.0, gt=-1, lt=1, description="ROIC - r at or above: amber")
    terminal_share_green: float = Field(
        0.75, ge=0, le=1, description="PV(TV) / EV at or below: green"
    )
    terminal_share_amber: float = Field(
        0.85, ge=0, le=1, description="PV(TV) / EV at or below: amber"
    )
    spread_green: float = Field(0.03, ge=0, lt=1, description="r - g at or above: green")
    spread_amber: float = Field(0.015, ge=0, lt=1, description="r - g at or above: amber")
    peer_multiple_tolerance: float = Field(
        0.25,
        ge=0,
        le=10,
        description="implied EV/EBITDA within the peers' quartiles: green; within this share "
        "beyond them (q1 / (1 + x) .. q3 x (1 + x)): amber",
    )
    growth_gap_green: float = Field(
        0.01, ge=0, lt=1, description="|g - reinvestment rate x ROIC| at or below: green"
    )
    growth_gap_amber: float = Field(
        0.03, ge=0, lt=1, description="|g - reinvestment rate x ROIC| at or below: amber"
    )

    @model_validator(mode="after")
    def _ordered(self) -> DiagnosticsConfig:
        pairs = [
            ("roic_spread", self.roic_spread_amber <= self.roic_spread_green),
            ("terminal_share", self.terminal_share_green <= self.terminal_share_amber),
            ("spread", self.spread_amber <= self.spread_green),
            ("growth_gap", self.growth_gap_green <= self.growth_gap_amber),
        ]
        for name, ok in pairs:
            if not ok:
                msg = f"diagnostics.{name}_amber must be looser than {name}_green"
                raise ValueError(msg)
        return self


class RangeConfig(_Section):
    """How the DCF low/high for the football field is taken."""

    rate_delta: float = Field(
        0.01, ge=0, lt=1, description="low: r + delta, high: r - delta; decimal, 0 <= x < 1"
    )
    growth_delta: float = Field(
        0.005, ge=0, lt=1, description="low: g - delta, high: g + delta; decimal, 0 <= x < 1"
    )


#: Assumptions a company row (or a balance-sheet line) may give itself, each with the setting
#: that gives it where the row does not. ``valuation.precedence`` says which of the two wins.
ASSUMPTIONS: dict[str, str] = {
    "discount_rate": "valuation.discount_rate",
    "terminal_growth": "valuation.terminal_growth",
    "exit_multiple": "valuation.exit_multiple",
    "revenue_growth": "valuation.drivers.revenue_growth",
    "target_margin": "valuation.drivers.target_margin",
    "sales_to_capital": "valuation.drivers.sales_to_capital",
    "stable_roc": "valuation.drivers.stable_roc",
    "recovery_rate": "valuation.asset.recovery_rates",
}
Assumption = Literal[
    "discount_rate",
    "terminal_growth",
    "exit_multiple",
    "revenue_growth",
    "target_margin",
    "sales_to_capital",
    "stable_roc",
    "recovery_rate",
]


class ValuationConfig(_Section):
    """Valuation conventions. Documented once, in docs/conventions.md."""

    precedence: Literal["rows", "config"] | list[Assumption] = Field(
        "rows",
        description="rows: a row's own discount_rate, terminal_growth, exit_multiple, driver "
        "columns and recovery_rate win over the configured values, which fill the rows that give "
        "none; config: every configured value that is set wins over the rows; a list, e.g. "
        "[discount_rate]: the configured value wins for those assumptions only",
    )

    methods: list[Annotated[str, AfterValidator(_method_name)]] = Field(
        default_factory=lambda: list(DEFAULT_METHODS),
        description="valuation methods to run: dcf (FCFF), comparables, asset, ddm (dividend "
        "discount, valuation.equity.ddm_model), fcfe (free cash flow to equity), or a plug-in's "
        "name (wfo_kit.register_method, or entry-point group wfo_kit.methods)",
        json_schema_extra=_known_methods_in_schema,
    )
    routes: dict[str, list[Annotated[str, AfterValidator(_method_name)]]] = Field(
        default_factory=dict,
        description="company_id or sector -> the only methods that value it, e.g. {Banks: [ddm, "
        "fcfe]}: a bank is then excluded from dcf with the reason; a company_id key wins over "
        "its sector's",
    )
    equity: EquityConfig = Field(default_factory=lambda: EquityConfig())
    diagnostics: DiagnosticsConfig = Field(default_factory=lambda: DiagnosticsConfig())
    taxes: TaxConfig = Field(default_factory=lambda: TaxConfig())
    forecast: Literal["explicit", "drivers"] = Field(
        "explicit",
        description="explicit: forecast rows in financials; drivers: growth, margin, reinvestment",
    )
    rate_source: Literal["given", "wacc"] = Field(
        "given",
        description="given: the row's discount_rate, else `discount_rate` below; wacc: computed",
    )
    discount_rate: float | None = Field(
        None,
        gt=-1,
        lt=1,
        description="decimal, -1 < x < 1; used for companies whose row gives no discount_rate",
    )
    terminal_growth: float = Field(
        0.02,
        gt=-1,
        lt=1,
        description="decimal, -1 < x < 1; Gordon growth for companies whose row gives no "
        "terminal_growth",
    )
    stable_discount_rate: float | None = Field(
        None,
        gt=-1,
        lt=1,
        description="decimal, -1 < x < 1; the discount rate of the stable phase (Ginzu): held "
        "at the company's rate through `rate_fade_from_year`, then a straight line to this rate "
        "by year N; the terminal value uses it in (r - g). A row's stable_discount_rate wins; "
        "unset and no row value: one rate throughout",
    )
    rate_fade_from_year: int = Field(
        5,
        ge=0,
        le=100,
        description="the discount rate is held through this forecast year, then moves linearly "
        "to the stable rate, reached in year N (with stable_discount_rate)",
    )
    terminal: Literal["gordon", "exit_multiple"] = Field(
        "gordon", description="terminal value method"
    )
    exit_multiple: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="EV/EBITDA at year N, 0 < x <= 1000; a row's exit_multiple column wins",
    )
    timing: Literal["end_of_year", "mid_year"] = Field(
        "end_of_year",
        description="cash flow of forecast year t is discounted over t (end_of_year) or t - 0.5 "
        "(mid_year) years; the terminal value always uses the year-N factor",
    )
    valuation_date: dt.date | None = Field(
        None,
        description="date-based discounting: year fractions ACT/365 from this date to each "
        "fiscal year end; a first year already under way is a stub",
    )
    fiscal_year_end: str = Field(
        "12-31",
        pattern=r"^\d{2}-\d{2}$",
        description="MM-DD of every fiscal year end: a real day; 02-29 is refused (use 02-28)",
    )
    wacc: WaccConfig = Field(default_factory=WaccConfig)
    drivers: DriversConfig = Field(default_factory=DriversConfig)
    comparables: ComparablesConfig = Field(default_factory=ComparablesConfig)
    asset: AssetConfig = Field(default_factory=AssetConfig)
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig)
    scenarios: list[Scenario] = Field(
        default_factory=lambda: [
            Scenario(
                name="bear",
                probability=0.25,
                discount_rate_delta=0.01,
                terminal_growth_delta=-0.005,
                cash_flow_scale=0.9,
            ),
            Scenario(name="base", probability=0.5),
            Scenario(
                name="bull",
                probability=0.25,
                discount_rate_delta=-0.005,
                terminal_growth_delta=0.005,
                cash_flow_scale=1.1,
            ),
        ]
    )
    monte_carlo: MonteCarloConfig = Field(default_factory=MonteCarloConfig)
    blend: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: {"dcf": 0.5, "comparables": 0.3, "asset": 0.2},
        description="method weights, each 0 <= x <= 1, summing to 1; renormalised over the "
        "methods a company has",
    )
    range: RangeConfig = Field(default_factory=RangeConfig)

    @field_validator("precedence", mode="before")
    @classmethod
    def _precedence_names(cls, value: Any) -> Any:
        # One clear message for a misspelt name (a union would report each of its branches).
        names = value if isinstance(value, list) else [value]
        known = ("rows", "config") if not isinstance(value, list) else tuple(ASSUMPTIONS)
        for name in names:
            if isinstance(name, str) and name not in known:
                msg = f"unknown precedence {name!r}{did_you_mean(name, known)}; known: " + (
                    "rows, config, or a list of " + ", ".join(ASSUMPTIONS)
                )
                raise ValueError(msg)
        return value

    @field_validator("fiscal_year_end")
    @classmethod
    def _real_day(cls, value: str) -> str:
        month, day = int(value[:2]), int(value[3:])
        if (month, day) == (2, 29):
            msg = (
                "fiscal_year_end 02-29 does not exist in three years of four: write 02-28 for a "
                "year that ends on the last day of February"
            )
            raise ValueError(msg)
        try:
            dt.date(2001, month, day)
        except ValueError:
            msg = f"fiscal_year_end {value!r} is not a day of the year (MM-DD)"
            raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ValuationConfig:
        for key, names in self.routes.items():
            off = [m for m in names if m not in self.methods]
            if off:
                msg = (
                    f"routes.{key} names {off}, not in valuation.methods {self.methods}: add "
                    f"them to methods"
                )
                raise ValueError(msg)
        unknown = set(self.blend) - set(known_methods())
        if unknown:
            msg = f"blend weights name unknown methods {sorted(unknown)}; known: {known_methods()}"
            raise ValueError(msg)
        if any(w < 0 for w in self.blend.values()):
            msg = "blend weights must not be negative"
            raise ValueError(msg)
        total = sum(self.blend.values())
        if abs(total - 1.0) > 1e-9:
            msg = f"blend weights must sum to 1, got {total:g}"
            raise ValueError(msg)
        if self.scenarios:
            names = [s.name for s in self.scenarios]
            if len(set(names)) != len(names):
                msg = f"scenario names must be unique, got {names}"
                raise ValueError(msg)
            total = sum(s.probability for s in self.scenarios)
            if abs(total - 1.0) > 1e-9:
                msg = f"scenario probabilities must sum to 1, got {total:g}"
                raise ValueError(msg)
        return self


def config_wins(valuation: ValuationConfig) -> tuple[str, ...]:
    """The assumptions for which the configured value wins over a row's own (precedence).

    >>> config_wins(ValuationConfig(precedence=["discount_rate"]))
    ('discount_rate',)
    >>> config_wins(ValuationConfig())
    ()
    """
    if valuation.precedence == "rows":
        return ()
    if valuation.precedence == "config":
        return tuple(ASSUMPTIONS)
    return tuple(dict.fromkeys(valuation.precedence))


def configured_value(valuation: ValuationConfig, assumption: str) -> Any:
    """The configured value of one assumption (None: not set); recovery rates are a mapping.

    >>> configured_value(ValuationConfig(drivers={"sales_to_capital": 2.0}), "sales_to_capital")
    2.0
    """
    node: Any = valuation
    for part in ASSUMPTIONS[assumption].split(".")[1:]:
        node = getattr(node, part)
    return node


class OutputConfig(_Section):
    root: str = Field(
        "outputs",
        description="folder that receives one sub-folder per run; relative to the parameters "
        "file that sets it (the default, `outputs`, is relative to the working directory)",
    )
    formats: list[Literal["parquet", "csv", "json", "xlsx"]] = Field(
        default_factory=lambda: ["parquet"],
        description="result table formats: a file per table (parquet, csv, json), or one "
        "workbook results.xlsx with a sheet per table (xlsx)",
    )


class ReportConfig(_Section):
    title: str = Field("Company valuation report", description="report heading (plain text)")
    companies: list[str] = Field(
        default_factory=list,
        description="company ids the detail sections offer in their company picker, in this "
        "order; empty: the first `detail_limit` valued companies",
    )
    detail_limit: int = Field(
        40,
        ge=1,
        description="with no `companies` given: detail the first N valued companies (each adds "
        "about 10 KB to report.html; README, Reading the report)",
    )
    units: str = Field(
        "millions",
        min_length=1,
        max_length=40,
        description="unit of the money amounts in the input tables, shown in headers and axis "
        "titles (per-share amounts are in currency units)",
    )
    masked_columns: list[str] = Field(
        default_factory=list,
        description="columns whose values appear in no file of the run: *** in the report, "
        "the notebook, charts and result files (README, Trust boundary)",
    )
    kernel: str = Field("wfo_kit", description="Jupyter kernel that executes the notebook")
    notebook: str | None = Field(
        None,
        pattern=r"\.ipynb$",
        description="your own report notebook, a .ipynb file (same parameters cell); null: the "
        "bundled one. Relative to the parameters file; inside the confinement folder if any",
    )
    cell_timeout: int = Field(600, gt=0, description="seconds one notebook cell may run")
    pdf: bool = Field(
        False,
        description="also print the report to report.pdf with headless Chromium (`wfo run "
        "--pdf`; the browser from WFO_CHROMIUM or chromium on the PATH)",
    )

    @model_validator(mode="after")
    def _company_id_stays(self) -> ReportConfig:
        if "company_id" in self.masked_columns:
            msg = (
                "report.masked_columns cannot hold company_id: it is the key that joins every "
                "table and chart; mask `name` (and other descriptive columns) instead"
            )
            raise ValueError(msg)
        return self


class RetryPolicy(_Section):
    """Retries of a step, for retryable errors only (see wfo_kit.errors)."""

    attempts: int = Field(3, ge=1, le=20, description="tries in all, the first included")
    backoff_seconds: float = Field(
        0.5, ge=0, le=3600, description="wait before the second try, seconds, 0 <= x <= 3600"
    )
    multiplier: float = Field(
        2.0, ge=1, le=100, description="each later wait is this times longer, 1 <= x <= 100"
    )
    max_backoff_seconds: float = Field(
        30.0, ge=0, le=3600, description="cap on one wait, seconds, 0 <= x <= 3600"
    )
    jitter: float = Field(0.1, ge=0, le=1, description="random +- share added to each wait")


class PipelineConfig(_Section):
    """Which steps run, in order, and how failures are handled."""

    steps: list[str] = Field(
        default_factory=lambda: ["load", "validate", "value", "output"],
        description="step names from wfo_kit.pipeline.STEPS; `wfo run` adds the report step",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    step_retry: dict[str, RetryPolicy] = Field(
        default_factory=dict, description="per-step retry policies, by step name"
    )
    fallbacks: dict[str, str] = Field(
        default_factory=dict,
        description="step -> alternative step run when it fails, e.g. {load: load_fallback}",
    )


class SecurityConfig(_Section):
    """What a parameters file may reach. Chosen by whoever runs wfo, never by the file itself."""

    confine: str | None = Field(
        None,
        description="folder that every path of the run must stay inside (parameters files, "
        "`extends:`, data, SQL databases, report notebook, output root): absolute paths, `..` "
        "and symbolic links that leave it are refused. Set by `--confine DIR` or "
        "WFO_SECURITY__CONFINE; a parameters file cannot set it. On for remote submissions.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="in confinement, the hosts HTTP sources may read from; a host resolving to a "
        "loopback, link-local or private address is refused unless that address (or a network "
        "holding it, e.g. 10.0.0.0/8) is listed too",
    )


class CacheConfig(_Section):
    """The step cache: load and validate results reused while their inputs and settings hold."""

    enabled: bool = Field(
        True, description="reuse cached load and validate results (`--no-cache` sets false)"
    )
    dir: str | None = Field(
        None,
        description="folder for cached step results; empty: $XDG_CACHE_HOME/wfo_kit/steps "
        "(~/.cache/wfo_kit/steps)",
    )
    max_mb: float = Field(
        1024,
        ge=0,
        description="disk bound in MB: the least recently used entries are evicted; 0: no disk "
        "cache",
    )
    memory_mb: float = Field(
        512,
        ge=0,
        description="bound in MB of the cache kept in memory by one process (a kernel); 0: none",
    )


class Config(_Section):
    """The whole effective configuration of a run."""

    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    valuation: ValuationConfig = Field(default_factory=ValuationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)


# --------------------------------------------------------------------------------------------
# Reading parameters files: bounded, so that no file can crash, hang or exhaust the process

#: A parameters file holds settings, not data: larger files are refused before they are read.
MAX_FILE_BYTES = 1 << 20
#: Nesting of mappings and lists, counted after YAML aliases are expanded.
MAX_DEPTH = 50
#: Values (scalars, mappings and lists) in one file or ``--set`` value, after alias expansion.
MAX_VALUES = 10_000
#: Files in one ``extends:`` chain, the first included.
MAX_EXTENDS = 20


class _RefusedError(ValueError):
    """A parameters text breaks one of the limits above (or repeats a key)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


_DEPTH_HINT = f"settings need a few levels of nesting; at most {MAX_DEPTH} are read"
_DUPLICATE_HINT = "keep one of them: otherwise the last would silently win"


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and nesting deeper than MAX_DEPTH.

    Composition is the only recursive stage of PyYAML, so depth is bounded there; aliases are
    measured on the composed node graph (:func:`_measure_nodes`) before anything is constructed.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                msg = f"is nested more than {MAX_DEPTH} levels deep (line {line})"
                raise _RefusedError(msg, _DEPTH_HINT)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            line = key.start_mark.line + 1
            first = seen.get((key.tag, key.value))
            if first is not None:
                msg = f"duplicate key {key.value!r} (lines {first} and {line})"
                raise _RefusedError(msg, _DUPLICATE_HINT)
            seen[key.tag, key.value] = line
        return node


def _measure_nodes(root: yaml.Node) -> None:
    """Refuse a composed YAML graph whose expansion is too big, too deep, or refers to itself.

    Each node is measured once (aliases share nodes), in document order, so an alias always
    meets a node already measured: the work is linear in the file, whatever the expansion.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, depth) once expanded
    open_nodes: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in measured:
            return measured[key]
        if key in open_nodes:
            line = node.start_mark.line + 1
            msg = f"has a YAML alias that refers to itself (the node at line {line})"
            raise _RefusedError(msg, "an alias may only name an anchor outside itself")
        if isinstance(node, yaml.ScalarNode):
            return 1, 0
        open_nodes.add(key)
        children = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        sizes = [measure(child) for child in children]
        open_nodes.discard(key)
        values = 1 + sum(size for size, _ in sizes)
        depth = 1 + max((depth for _, depth in sizes), default=0)
        if values > MAX_VALUES:
            msg = f"expands to more than {MAX_VALUES} values (YAML aliases repeat what they name)"
            raise _RefusedError(msg, "a YAML alias bomb? write the settings out plainly")
        if depth > MAX_DEPTH:
            msg = f"is nested more than {MAX_DEPTH} levels deep once its aliases are expanded"
            raise _RefusedError(msg, _DEPTH_HINT)
        measured[key] = (values, depth)
        return values, depth

    measure(root)


def _load_yaml(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure_nodes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class _DuplicateJsonKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateJsonKeyError(key)
        out[key] = value
    return out


def _load_json(text: str) -> Any:
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                msg = f"is nested more than {MAX_DEPTH} levels deep (line {line})"
                raise _RefusedError(msg, _DEPTH_HINT)
        elif token in "]}":
            depth -= 1
    decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs)

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> Any:
        try:
            return json.decoder.JSONObject(s_and_end, *args)
        except _DuplicateJsonKeyError as exc:
            lines = _json_key_lines(s_and_end[0], s_and_end[1], exc.key, scan_once)
            msg = f"duplicate key {exc.key!r} (lines {lines[0]} and {lines[-1]})"
            raise _RefusedError(msg, _DUPLICATE_HINT) from None

    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    scan_once = json.scanner.py_make_scanner(decoder)  # the C scanner ignores parse_object
    decoder.scan_once = scan_once  # type: ignore[attr-defined]
    loaded = decoder.decode(text)
    stack, values = [loaded], 0
    while stack:
        item = stack.pop()
        values += 1
        if values > MAX_VALUES:
            msg = f"holds more than {MAX_VALUES} values"
            raise _RefusedError(msg, "a parameters file holds settings, not data")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return loaded


def _json_key_lines(text: str, pos: int, key: str, scan_once: Any) -> list[int]:
    """Lines of the first two occurrences of ``key`` in the JSON object whose body starts at pos."""
    lines: list[int] = []
    while len(lines) < 2:
        pos = _JSON_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] != '"':
            break
        name, end = json.decoder.scanstring(text, pos + 1)
        if name == key:
            lines.append(text.count("\n", 0, pos) + 1)
        pos = _JSON_SPACE.match(text, end).end() + 1  # type: ignore[union-attr]  # past ':'
        pos = _JSON_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        _, pos = scan_once(text, pos)
        pos = _JSON_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        pos += text[pos : pos + 1] == ","
    return lines or [0]


def _decode(data: bytes, path: Path) -> str:
    hint = "save the file as UTF-8 text"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (
        len(data) >= 2 and b"\x00" in data[:2] and data[:64].count(b"\x00") * 3 >= len(data[:64])
    ):
        msg = f"parameters file {path} is UTF-16 text, not UTF-8"
        raise ConfigurationError(msg, hint=hint)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        msg = f"parameters file {path} is not UTF-8 text (undecodable byte at line {line})"
        raise ConfigurationError(msg, hint=hint) from exc
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        msg = f"parameters file {path} holds NUL bytes (line {line}): it is not a text file"
        raise ConfigurationError(msg, hint=hint)
    return text


def _resolved(path: Path, what: str) -> Path:
    """``path.resolve()``, with a symbolic link loop as a ConfigurationError naming ``what``."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: Python < 3.13 on a loop
        msg = f"{what}: cannot resolve {path}: symbolic link loop ({exc})"
        raise ConfigurationError(msg, hint="point it at a real file") from exc


# --------------------------------------------------------------------------------------------
# Layers


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        msg = f"parameters file not found: {path}"
        raise ConfigurationError(msg, hint="check the path; it is relative to where you run wfo")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        msg = f"cannot read parameters file {path}: {exc.strerror or exc}"
        raise ConfigurationError(msg) from exc
    if len(data) > MAX_FILE_BYTES:
        msg = f"parameters file {path} is larger than 1 MiB"
        hint = "a parameters file holds settings; tables belong in data files named under `data:`"
        raise ConfigurationError(msg, hint=hint)
    text = _decode(data, path)
    try:
        loaded = _load_json(text) if path.suffix == ".json" else _load_yaml(text)
    except _RefusedError as exc:
        sep = ":" if str(exc).startswith("duplicate") else ""
        msg = f"parameters file {path}{sep} {exc}"
        raise ConfigurationError(msg, hint=exc.hint) from exc
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as exc:  # ValueError: a bad date
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"cannot parse parameters file {path}: {first}"
        raise ConfigurationError(msg, hint="only plain YAML/JSON is accepted") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        msg = f"parameters file {path} must hold a mapping of sections, not {type(loaded).__name__}"
        raise ConfigurationError(msg)
    return loaded


def _resolve_paths(layer: dict[str, Any], base: Path, jail: Path | None) -> dict[str, Any]:
    """Make every path in one file's layer relative to that file (data sources, SQL database
    files, the report notebook, log files, the step cache folder, the output root); in
    confinement, check each stays inside."""
    out = dict(layer)
    data = layer.get("data")
    if isinstance(data, dict):
        out["data"] = {
            name: _resolve_source(source, base, f"data.{name}", jail)
            for name, source in data.items()
        }
    report = layer.get("report")
    if isinstance(report, dict) and isinstance(report.get("notebook"), str):
        notebook = _confined_path(report["notebook"], base, "report.notebook", jail)
        out["report"] = {**report, "notebook": str(notebook)}
    logs = layer.get("logging")
    if isinstance(logs, dict):
        out["logging"] = _resolve_log_paths(logs, base, jail)
    cache = layer.get("cache")
    if isinstance(cache, dict) and isinstance(cache.get("dir"), str) and cache["dir"]:
        # cache entries are written there: a submitted file must not name a folder outside
        out["cache"] = {**cache, "dir": str(_confined_path(cache["dir"], base, "cache.dir", jail))}
    output = layer.get("output")
    if isinstance(output, dict) and isinstance(output.get("root"), str):
        out["output"] = {
            **output,
            "root": str(_confined_path(output["root"], base, "output.root", jail)),
        }
    return out


def _resolve_log_paths(logs: dict[str, Any], base: Path, jail: Path | None) -> dict[str, Any]:
    """``logging.file`` and ``logging.database`` (a path, or ``scheme:///path``) relative to the
    parameters file, inside the confinement folder."""
    out = dict(logs)
    for key in ("file", "database"):
        value = logs.get(key)
        if isinstance(value, str):
            scheme, sep, rest = value.partition(":///")
            path = _confined_path(rest if sep else value, base, f"logging.{key}", jail)
            out[key] = f"{scheme}:///{path}" if sep else str(path)
    return out


def _resolve_source(source: Any, base: Path, key: str, jail: Path | None) -> Any:
    if isinstance(source, str):
        source = {"path": source}
    if not isinstance(source, dict):
        return source
    source = dict(source)
    if isinstance(source.get("path"), str):
        source["path"] = str(_confined_path(source["path"], base, key, jail))
    if isinstance(source.get("url"), str):
        source["url"] = _resolve_sql_url(source["url"], base, key, jail)
    if source.get("fallback") is not None:
        source["fallback"] = _resolve_source(source["fallback"], base, f"{key}.fallback", jail)
    return source


def _resolve_sql_url(url: str, base: Path, key: str, jail: Path | None) -> str:
    for scheme in ("sqlite:///", "duckdb:///"):
        if url.startswith(scheme):
            return scheme + str(_confined_path(url[len(scheme) :], base, key, jail))
    return url


def _confined_path(text: str, base: Path, key: str, jail: Path | None) -> Path:
    """``base / text`` resolved; in confinement, a relative path that stays inside ``jail``.

    Absolute paths and ``..`` are refused as written (before any link is followed), then the
    resolved path (symbolic links followed) must still be inside: a link that leaves is refused.
    """
    if jail is not None:
        written = Path(text)
        if written.is_absolute() or ".." in written.parts:
            what = "an absolute path" if written.is_absolute() else "a path through `..`"
            msg = f"{key}: {text!r} is {what}, refused in confinement to {jail}"
            raise ConfigurationError(msg, column=key, hint=_CONFINE_HINT)
    resolved = _resolved(base / text, key)
    if jail is not None:
        ensure_inside(resolved, jail, key)
    return resolved


_CONFINE_HINT = "write paths relative to the parameters file, inside the confinement folder"


def ensure_inside(path: Path, jail: Path, key: str) -> None:
    """Refuse ``path`` (already resolved) unless it is ``jail`` or inside it."""
    if path != jail and jail not in path.parents:
        msg = f"{key}: {path} is outside the confinement folder {jail}"
        raise ConfigurationError(msg, column=key, hint=_CONFINE_HINT)


def file_layers(path: Path, *, jail: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The layers one parameters file contributes, ``extends:`` parents first.

    A chain holds at most :data:`MAX_EXTENDS` files; a cycle is an error naming the files. In
    confinement (``jail``) every file of the chain must be inside it.
    """
    chain: list[tuple[Path, dict[str, Any]]] = []
    current = _resolved(Path(path), "parameters file")
    while True:
        if jail is not None:
            ensure_inside(current, jail, "parameters file")
        if current in (p for p, _ in chain):
            cycle = " -> ".join(str(p) for p in (*(p for p, _ in chain), current))
            msg = f"parameters files extend each other in a cycle: {cycle}"
            raise ConfigurationError(msg)
        if len(chain) == MAX_EXTENDS:
            msg = f"`extends:` chain longer than {MAX_EXTENDS} files, starting at {chain[0][0]}"
            hint = f"merge some of the files: at most {MAX_EXTENDS} are read in one chain"
            raise ConfigurationError(msg, hint=hint)
        raw = _read_file(current)
        if "security" in raw:
            msg = f"parameters file {current} sets `security`, which only whoever runs wfo may set"
            hint = "use `wfo ... --confine DIR` or WFO_SECURITY__CONFINE"
            raise ConfigurationError(msg, column="security", hint=hint)
        parent = raw.pop("extends", None)
        chain.append((current, raw))
        if parent is None:
            break
        if not isinstance(parent, str):
            msg = f"`extends` in {current} must be a file path"
            raise ConfigurationError(msg)
        current = _confined_path(parent, current.parent, f"extends in {current.name}", jail)
    return [(f"file:{p}", _resolve_paths(raw, p.parent, jail)) for p, raw in reversed(chain)]


def environment_file(params: Path, name: str) -> Path:
    """``prices.yaml`` + ``prod`` -> ``prices.prod.yaml`` (same folder; ``.yml``/``.json`` when
    that is what exists)."""
    for suffix in (".yaml", ".yml", ".json"):
        candidate = params.with_name(f"{params.stem}.{name}{suffix}")
        if candidate.is_file():
            return candidate
    return params.with_name(f"{params.stem}.{name}.yaml")


def environment_layers(
    path: str | Path | None, name: str, *, jail: Path | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The layers of the environment file for ``--env NAME`` (see :func:`resolve_config`)."""
    if path is None or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        what = "needs a parameters file" if path is None else "must be letters, digits, - or _"
        msg = f"environment name {name!r} (--env / WFO_ENV) {what}"
        raise ConfigurationError(msg, column="env")
    target = environment_file(Path(path), name)
    if not target.is_file():
        msg = f"no environment file {target} for environment {name!r} (--env / WFO_ENV)"
        hint = f"create {target.name} beside {Path(path).name}, or drop --env / unset WFO_ENV"
        raise ConfigurationError(msg, column="env", hint=hint)
    return [(f"env-file:{label[5:]}", layer) for label, layer in file_layers(target, jail=jail)]


def env_layer(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``WFO_VALUATION__TERMINAL_GROWTH=0.03`` -> ``{"valuation": {"terminal_growth": "0.03"}}``."""
    environ = os.environ if environ is None else environ
    layer: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
        _set_dotted(layer, dotted, _parse_scalar(value))
    return layer


def sets_layer(assignments: list[str]) -> dict[str, Any]:
    """``["valuation.terminal_growth=0.03"]`` -> nested dict. Values are typed by the model."""
    layer: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            msg = f"--set needs key.path=value, got {item!r}"
            raise ConfigurationError(msg)
        _set_dotted(layer, key.strip(), _parse_scalar(value))
    return layer


def _parse_scalar(value: str) -> Any:
    # Only lists and mappings are parsed here; scalars stay text so that pydantic converts them to
    # the field's declared type (a str field keeps "1e3" as text, a float field gets 1000.0).
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return _load_yaml(stripped)
        except _RefusedError as exc:
            msg = f"list/mapping value {_shorten(value)} {exc}"
            raise ConfigurationError(msg, hint=exc.hint) from exc
        except (yaml.YAMLError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            msg = f"cannot parse list/mapping value {_shorten(value)}: {first}"
            raise ConfigurationError(msg) from exc
    return value


def _shorten(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            msg = f"cannot set {dotted!r}: {part!r} is not a section"
            raise ConfigurationError(msg)
    target[leaf] = value


def _merge(
    low: dict[str, Any], high: Mapping[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    merged = dict(low)
    for key, value in high.items():
        here = (*path, key)
        if (
            isinstance(value, Mapping)
            and isinstance(merged.get(key), dict)
            and not _replaces(here, value)
        ):
            merged[key] = _merge(merged[key], value, here)
        else:
            merged[key] = value
    return merged


def _replaces(path: tuple[str, ...], value: Mapping[str, Any]) -> bool:
    # A table source that names a new file or database replaces the lower one whole: a `url`
    # must not inherit the default `path` beside it.
    if path == ("valuation", "blend"):
        return True  # weights must sum to 1: a new set replaces the old one, never mixes with it
    return len(path) == 2 and path[0] == "data" and ("path" in value or "url" in value)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


class ResolvedConfig(BaseModel):
    """A config together with the source of every value."""

    model_config = ConfigDict(frozen=True)

    config: Config
    sources: dict[str, str]


def resolve_config(
    path: str | Path | None = None,
    *,
    sets: list[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    confine: str | Path | None = None,
    env_name: str | None = None,
) -> ResolvedConfig:
    """Build the effective configuration from every layer, remembering each value's source.

    ``env_name`` (``--env NAME``, else the ``WFO_ENV`` variable) adds the environment file
    ``<params stem>.<NAME>.yaml`` beside the parameters file, above it and below environment
    variables (source ``env-file:<path>``).

    ``confine`` (or ``security.confine`` from the environment, ``--set`` or runtime overrides,
    never from a parameters file) keeps every path of the run inside one folder.

    With no parameters file (``path=None``) the data section names the bundled sample (source
    ``sample``); a parameters file gets only the tables it (or a file it extends) names.
    """
    env, cli, runtime = env_layer(environ), sets_layer(sets or []), dict(overrides or {})
    jail = _jail(confine, runtime, cli, env)  # highest precedence first
    layers: list[tuple[str, dict[str, Any]]] = [("default", Config().model_dump(mode="json"))]
    if path is None:
        layers.append(("sample", {"data": sample_data()}))  # no file: the bundled sample
    else:
        layers += file_layers(Path(path), jail=jail)
    if env_name is None and jail is None:  # a confined (remote) run chooses no file by WFO_ENV
        env_name = (os.environ if environ is None else environ).get("WFO_ENV") or None
    if env_name is not None:
        layers += environment_layers(path, env_name, jail=jail)
    layers.append(("env", env))
    layers.append(("--set", cli))
    layers.append(("override", runtime))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for label, layer in layers:
        merged = _merge(merged, layer)
        for key in _flatten(layer):
            sources[key] = label
    if jail is not None:
        merged = _merge(merged, {"security": {"confine": str(jail)}})
        if sources.get("output.root", "default") == "default":
            # In confinement the default output root is inside the folder, not the cwd.
            merged = _merge(merged, {"output": {"root": str(jail / "outputs")}})
            sources["output.root"] = "security.confine"
    config = _validate(merged)
    if jail is not None:
        check_confined(config, jail)
        from wfo_kit.notify import check_confined_channels

        check_confined_channels(sources, confined=True)
    flat_final = _flatten(config.model_dump(mode="json"))
    return ResolvedConfig(
        config=config,
        sources={key: _source_of(key, sources) for key in flat_final},
    )


def _jail(confine: str | Path | None, *layers: dict[str, Any]) -> Path | None:
    """The confinement folder, resolved, from the argument or the first layer that sets it."""
    for layer in layers:
        security = layer.get("security")
        if confine is None and isinstance(security, dict) and security.get("confine"):
            confine = security["confine"]
    if confine is None:
        return None
    jail = _resolved(Path(str(confine)), "security.confine")
    if not jail.is_dir():
        msg = f"security.confine: {jail} is not a folder"
        raise ConfigurationError(msg, column="security.confine")
    return jail


def check_confined(config: Config, jail: Path) -> None:
    """Every path of an effective configuration inside ``jail`` (whatever layer set it)."""
    for name, source in config.data:
        node, key = source, f"data.{name}"
        while node is not None:
            if node.path is not None:
                ensure_inside(_resolved(Path(node.path), key), jail, key)
            if node.url is not None and is_http(node.url):
                from wfo_kit.httpsource import check_host_listed

                check_host_listed(node.url, config.security.allowed_hosts, key=key)
            elif node.url is not None:
                database = node.url.partition(":///")[2]
                ensure_inside(_resolved(Path(database), key), jail, key)
            node, key = node.fallback, f"{key}.fallback"
    if config.report.notebook is not None:
        notebook = _resolved(Path(config.report.notebook), "report.notebook")
        ensure_inside(notebook, jail, "report.notebook")
    ensure_inside(_resolved(Path(config.output.root), "output.root"), jail, "output.root")


def _source_of(key: str, sources: dict[str, str]) -> str:
    # A value set as a whole section (e.g. a bare path string) is credited to its parent key.
    while key:
        if key in sources:
            return sources[key]
        key = key.rpartition(".")[0]
    return "default"


def load_config(
    path: str | Path | None = None,
    *,
    sets: list[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    confine: str | Path | None = None,
) -> Config:
    """The effective :class:`Config` (see :func:`resolve_config` for the layers)."""
    return resolve_config(path, sets=sets, overrides=overrides, confine=confine).config


def _validate(merged: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(merged)
    except PydanticValidationError as exc:
        raise _config_error(exc) from exc


def _config_error(exc: PydanticValidationError) -> ConfigurationError:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    dotted = ".".join(loc)
    if first["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        msg = f"unknown configuration key {dotted!r}{did_you_mean(loc[-1], known)}"
        hint = f"known keys here: {', '.join(sorted(known))}"
        return ConfigurationError(msg, column=dotted, hint=hint, details=exc.errors())
    if first["type"] in ("literal_error", "unknown_name") and isinstance(first.get("input"), str):
        expected = [
            e.strip(" '") for e in str(first["ctx"]["expected"]).replace(" or ", ", ").split(",")
        ]
        msg = f"unknown name {first['input']!r} at {dotted}{did_you_mean(first['input'], expected)}"
        return ConfigurationError(
            msg, column=dotted, hint=f"known names: {', '.join(expected)}", details=exc.errors()
        )
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    msg = f"invalid configuration value at {dotted or '<root>'}: {first['msg']}{tail}"
    return ConfigurationError(msg, column=dotted, details=exc.errors())


def _known_keys(loc: list[str]) -> list[str]:
    model: Any = Config
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            break
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def config_sources(resolved: ResolvedConfig) -> list[tuple[str, Any, str]]:
    """Rows of (key, value, source) for printing."""
    flat = _flatten(resolved.config.model_dump(mode="json"))
    return [(key, flat[key], resolved.sources.get(key, "default")) for key in sorted(flat)]


# --------------------------------------------------------------------------------------------
# Secrets

_URL_PASSWORD = re.compile(r"(?P<head>//[^:/@\s]+:)(?P<secret>[^@\s]+)(?P<tail>@)")
_SECRET_KEYS = re.compile(r"(password|passwd|secret|token|api_?key)", re.IGNORECASE)
MASK = "***"


def is_secret_key(key: str) -> bool:
    """Whether a (dotted) key names a secret: password, secret, token, api key."""
    return bool(_SECRET_KEYS.search(key.rpartition(".")[2]))


#: A credential written as a literal inside a string (a SQL query, a connection string): a
#: secret-looking key, then a quoted value (``SECRET 'x'``, ``password = 'x'``) or, after ``=`` or
#: ``:``, a bare one (``password=x`` in a query string). Only the value is replaced.
_CREDENTIAL = re.compile(
    r"""\b(?:password|passwd|pwd|secret(?:_access_key)?|client_secret|(?:session_|access_|auth_)?token
       |api_?key|key_id|access_key(?:_id)?)\b
       (?:\s*[=:]\s*|\s+)
       (?:'(?P<single>(?:[^']|'')*)'|"(?P<double>[^"]*)"|(?<=[=:])\s*(?P<bare>[^\s,;)&'"(]+)
          |(?<=[=:]\s)(?P<bare2>[^\s,;)&'"(]+))""",
    re.IGNORECASE | re.VERBOSE,
)


def _credential_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every literal credential value in ``text``; ``${VAR}`` references are not
    literals."""
    spans = []
    for match in _CREDENTIAL.finditer(text):
        for group in ("single", "double", "bare", "bare2"):
            if match.group(group) is not None:
                start, end = match.span(group)
                if end > start and not match.group(group).startswith("${"):
                    spans.append((start, end))
                break
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]], make: Any) -> str:
    for start, end in reversed(spans):
        text = text[:start] + make(text[start:end]) + text[end:]
    return text


def mask_secrets(value: Any) -> Any:
    """A copy with credentials replaced by ***: passwords in URLs, values under secret-looking
    keys, and credentials written inside strings (``SECRET '...'``, ``password=...`` in a SQL
    query or a connection string).

    ``${VAR}`` references are kept: they name a secret without revealing it.
    """
    if isinstance(value, Mapping):
        return {
            k: MASK if _SECRET_KEYS.search(str(k)) and v not in (None, "") else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        value = _replace_spans(value, _credential_spans(value), lambda _secret: MASK)
        return _URL_PASSWORD.sub(
            lambda m: (
                m.group(0)
                if m.group("secret").startswith("${")
                else f"{m.group('head')}{MASK}{m.group('tail')}"
            ),
            value,
        )
    return value


def literal_credentials(config: Config) -> list[str]:
    """Where a parameters value holds a literal credential, as notes that say how to move it.

    Literals are kept out of every output file all the same (masked, and passed to the kernel
    through the environment); the note is for the parameters file, which may be shared.
    """
    notes = []
    for name, source in config.data:
        node, key = source, f"data.{name}"
        while node is not None:
            url_secret = _URL_PASSWORD.search(node.url or "")
            if url_secret and not url_secret.group("secret").startswith("${"):
                notes.append(f"{key}.url holds a literal password")
            if node.query and _credential_spans(node.query):
                notes.append(f"{key}.query holds a literal credential")
            node, key = node.fallback, f"{key}.fallback"
    return [
        f"{note}: set it in an environment variable and write ${{VAR}} in its place "
        "(it is masked in every output file meanwhile)"
        for note in notes
    ]


def externalize_secrets(config: Config) -> tuple[Config, dict[str, str]]:
    """Move literal credentials out of SQL URLs and queries into environment variables.

    Returns the config with ``${WFO_SECRET_n}`` in their place and the variables to set, so that a
    notebook kernel (which inherits the environment) can connect while no file ever holds the
    credential: not the executed notebook, not the manifest, not the report. The loader expands
    ``${WFO_SECRET_n}`` (and only those) in a query.
    """
    env: dict[str, str] = {}

    def stash(secret: str) -> str:
        var = f"WFO_SECRET_{len(env) + 1}"
        env[var] = secret
        return f"${{{var}}}"

    data = config.data.model_dump(mode="json")
    for name, source in data.items():
        node = source
        while isinstance(node, dict):
            url = node.get("url")
            match = _URL_PASSWORD.search(url) if isinstance(url, str) else None
            if match and not match.group("secret").startswith("${"):
                span = [match.span("secret")]
                node["url"] = _replace_spans(url, span, stash)
            query = node.get("query")
            if isinstance(query, str):
                node["query"] = _replace_spans(query, _credential_spans(query), stash)
            node = node.get("fallback")
        data[name] = source
    if not env:
        return config, env
    return config.model_copy(update={"data": DataConfig.model_validate(data)}), env
