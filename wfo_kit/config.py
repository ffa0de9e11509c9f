"""Typed, layered configuration.

Sources, lowest to highest precedence::

    built-in defaults < parameters file(s) (``extends:`` chains) < environment (WFO_SECTION__KEY)
    < CLI ``--set section.key=value`` < runtime overrides (a dict from a notebook or the library)

Every value's source is kept (:func:`config_sources`) so ``wfo config show --sources`` can say where
it came from. Unknown keys are errors that suggest the nearest valid key. YAML is read with
``yaml.safe_load``: a ``!!python/...`` tag is an error, never code.

All rates are decimals (0.09 means 9 %). Money is in the currency of each company's row, in the
units of the input tables (the bundled sample uses millions).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from wfo_kit.errors import ConfigurationError, did_you_mean

SAMPLE_DIR = Path(__file__).parent / "sample_data"
ENV_PREFIX = "WFO_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @model_validator(mode="before")
    @classmethod
    def _bare_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _one_source(self) -> TableSource:
        if (self.path is None) == (self.url is None):
            msg = "give exactly one of `path` (a file) or `url` (a SQL database)"
            raise ValueError(msg)
        if self.url is not None and (self.table is None) == (self.query is None):
            msg = "a SQL source needs exactly one of `table` or `query`"
            raise ValueError(msg)
        return self


def _sample(name: str) -> TableSource:
    return TableSource(path=str(SAMPLE_DIR / name))


class DataConfig(_Section):
    """The input tables (see docs/data-contract.md)."""

    companies: TableSource = Field(default_factory=lambda: _sample("companies.csv"))
    financials: TableSource = Field(default_factory=lambda: _sample("financials.csv"))
    peers: TableSource | None = Field(default_factory=lambda: _sample("peers.csv"))
    balance_sheet: TableSource | None = Field(default_factory=lambda: _sample("balance_sheet.csv"))


class ValidationConfig(_Section):
    fail_below: float = Field(
        0.0,
        ge=0,
        le=1,
        description="`wfo validate` exits 2, and a run stops at its validate step "
        "(DataQualityError), when any table's score is below this",
    )
    spread_warning: float = Field(
        0.01, ge=0, description="warn when discount rate - terminal growth is below this (decimal)"
    )


METHOD_NAMES = ("dcf", "comparables", "asset")
MULTIPLES = ("ev_ebitda", "ev_ebit", "ev_sales", "pe")


class WaccConfig(_Section):
    """WACC = E/(D+E) x Ke + D/(D+E) x Kd x (1 - t); Ke = rf + beta x ERP + premiums."""

    risk_free: float = Field(0.04, description="risk-free rate, decimal")
    equity_risk_premium: float = Field(0.05, description="equity (market) risk premium, decimal")
    premiums: float = Field(0.0, description="extra premiums added to Ke (size, country), decimal")
    cost_of_debt: float = Field(0.06, description="pre-tax cost of debt, decimal")
    weights: Literal["market", "debt_to_equity", "debt_to_value"] = Field(
        "market",
        description="market: E = market_cap column (or share_price x shares), D = debt; "
        "debt_to_equity / debt_to_value: the target ratio below",
    )
    target_ratio: float | None = Field(
        None, ge=0, description="target D/E or D/V for the ratio weight modes"
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
    revenue_growth: float = Field(0.05, description="near-term revenue growth, decimal")
    target_margin: float | None = Field(
        None, description="operating (EBIT) margin reached linearly by year N; null: base margin"
    )
    sales_to_capital: float = Field(
        1.5, gt=0, description="reinvestment = change in revenue / sales-to-capital"
    )
    stable_roc: float | None = Field(
        None, gt=0, description="return on capital in stable growth; null: the discount rate"
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
    recovery_rates: dict[str, float] = Field(
        default_factory=lambda: {
            "cash": 1.0,
            "receivables": 0.8,
            "inventory": 0.5,
            "machinery": 0.7,
            "real_estate": 0.9,
            "intangible": 0.0,
        },
        description="recovery per asset class where a balance-sheet row gives none",
    )
    reconcile_tolerance: float = Field(
        0.01, ge=0, description="book + adjustment vs stated adjusted value, absolute money"
    )


class SensitivityConfig(_Section):
    enabled: bool = Field(True, description="compute the grids (rows = companies x 121 x 2)")
    rate_deltas: list[float] = Field(
        default_factory=lambda: [round(-0.02 + 0.004 * i, 4) for i in range(11)],
        description="shifts added to each company's discount rate",
    )
    growth_deltas: list[float] = Field(
        default_factory=lambda: [round(-0.01 + 0.002 * i, 4) for i in range(11)],
        description="shifts added to terminal growth",
    )
    exit_multiples: list[float] = Field(
        default_factory=lambda: [6.0 + i for i in range(11)],
        description="exit EV/EBITDA multiples for the rate x exit-multiple grid",
    )


class Scenario(_Section):
    name: str
    probability: float = Field(ge=0, le=1)
    discount_rate_delta: float = 0.0
    terminal_growth_delta: float = 0.0
    cash_flow_scale: float = Field(1.0, gt=0, description="multiplies every forecast FCFF")


class Distribution(_Section):
    """A scipy.stats distribution, sampled by inverse transform (ppf) of uniform draws."""

    dist: str = Field(description="scipy.stats name, e.g. norm, uniform, triang, lognorm")
    params: dict[str, float] = Field(default_factory=dict, description="e.g. {loc: 0, scale: 0.01}")

    @model_validator(mode="after")
    def _known(self) -> Distribution:
        import scipy.stats

        dist = getattr(scipy.stats, self.dist, None)
        if not isinstance(dist, scipy.stats.rv_continuous):
            msg = f"{self.dist!r} is not a continuous scipy.stats distribution"
            raise ValueError(msg)
        try:
            dist(**self.params)
        except TypeError as exc:
            msg = f"bad parameters for {self.dist}: {exc}"
            raise ValueError(msg) from exc
        return self


class MonteCarloConfig(_Section):
    enabled: bool = True
    draws: int = Field(2000, ge=10, le=10_000_000)
    seed: int = 20261126
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


class RangeConfig(_Section):
    """How the DCF low/high for the football field is taken."""

    rate_delta: float = Field(0.01, ge=0, description="low: r + delta, high: r - delta")
    growth_delta: float = Field(0.005, ge=0, description="low: g - delta, high: g + delta")


class ValuationConfig(_Section):
    """Valuation conventions. Documented once, in docs/conventions.md."""

    methods: list[Literal["dcf", "comparables", "asset"]] = Field(
        default_factory=lambda: list(METHOD_NAMES)
    )
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
        description="decimal; used for companies whose row gives no discount_rate",
    )
    terminal_growth: float = Field(
        0.02,
        gt=-1,
        lt=1,
        description="decimal; Gordon growth for companies whose row gives no terminal_growth",
    )
    terminal: Literal["gordon", "exit_multiple"] = Field(
        "gordon", description="terminal value method"
    )
    exit_multiple: float | None = Field(
        None, gt=0, description="EV/EBITDA at year N; a row's exit_multiple column wins"
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
        "12-31", pattern=r"^\d{2}-\d{2}$", description="MM-DD of every fiscal year end"
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
    blend: dict[str, float] = Field(
        default_factory=lambda: {"dcf": 0.5, "comparables": 0.3, "asset": 0.2},
        description="method weights, summing to 1; renormalised over the methods a company has",
    )
    range: RangeConfig = Field(default_factory=RangeConfig)

    @model_validator(mode="after")
    def _consistent(self) -> ValuationConfig:
        unknown = set(self.blend) - set(METHOD_NAMES)
        if unknown:
            msg = f"blend weights name unknown methods {sorted(unknown)}; known: {METHOD_NAMES}"
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


class OutputConfig(_Section):
    root: str = Field("outputs", description="folder that receives one sub-folder per run")
    formats: list[Literal["parquet", "csv", "json"]] = Field(
        default_factory=lambda: ["parquet"], description="result table formats"
    )


class ReportConfig(_Section):
    title: str = Field("Company valuation report", description="report heading (plain text)")
    companies: list[str] = Field(
        default_factory=list, description="company ids to detail; empty means all"
    )
    detail_limit: int = Field(
        5, ge=1, description="with no `companies` given: detail the first N valued companies"
    )
    masked_columns: list[str] = Field(
        default_factory=list,
        description="columns shown as *** in the report (result files keep them)",
    )
    kernel: str = Field("wfo_kit", description="Jupyter kernel that executes the notebook")
    notebook: str | None = Field(
        None, description="your own report notebook (same parameters cell); null: the bundled one"
    )
    cell_timeout: int = Field(600, gt=0, description="seconds one notebook cell may run")


class RetryPolicy(_Section):
    """Retries of a step, for retryable errors only (see wfo_kit.errors)."""

    attempts: int = Field(3, ge=1, le=20, description="tries in all, the first included")
    backoff_seconds: float = Field(0.5, ge=0, description="wait before the second try, seconds")
    multiplier: float = Field(2.0, ge=1, description="each later wait is this times longer")
    max_backoff_seconds: float = Field(30.0, ge=0, description="cap on one wait, seconds")
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


class Config(_Section):
    """The whole effective configuration of a run."""

    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    valuation: ValuationConfig = Field(default_factory=ValuationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)


# --------------------------------------------------------------------------------------------
# Layers


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        msg = f"parameters file not found: {path}"
        raise ConfigurationError(msg, hint="check the path; it is relative to where you run wfo")
    text = path.read_text(encoding="utf-8")
    try:
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
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


def _resolve_paths(layer: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make data paths (and a report notebook path) in one file's layer relative to that file."""
    out = dict(layer)
    data = layer.get("data")
    if isinstance(data, dict):
        out["data"] = {name: _resolve_source(source, base) for name, source in data.items()}
    report = layer.get("report")
    if isinstance(report, dict) and isinstance(report.get("notebook"), str):
        out["report"] = {**report, "notebook": str((base / report["notebook"]).resolve())}
    return out


def _resolve_source(source: Any, base: Path) -> Any:
    if isinstance(source, str):
        source = {"path": source}
    if not isinstance(source, dict):
        return source
    source = dict(source)
    if isinstance(source.get("path"), str):
        source["path"] = str((base / source["path"]).resolve())
    if isinstance(source.get("url"), str):
        source["url"] = _resolve_sql_url(source["url"], base)
    if source.get("fallback") is not None:
        source["fallback"] = _resolve_source(source["fallback"], base)
    return source


def _resolve_sql_url(url: str, base: Path) -> str:
    for scheme in ("sqlite:///", "duckdb:///"):
        if url.startswith(scheme) and not url.startswith(scheme + "/"):
            return scheme + str((base / url[len(scheme) :]).resolve())
    return url


def file_layers(path: Path, _seen: tuple[Path, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """The layers one parameters file contributes, ``extends:`` parents first."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        msg = f"parameters files extend each other in a cycle: {chain}"
        raise ConfigurationError(msg)
    raw = _read_file(path)
    parent = raw.pop("extends", None)
    layers: list[tuple[str, dict[str, Any]]] = []
    if parent is not None:
        if not isinstance(parent, str):
            msg = f"`extends` in {path} must be a file path"
            raise ConfigurationError(msg)
        layers += file_layers(path.parent / parent, (*_seen, path))
    layers.append((f"file:{path}", _resolve_paths(raw, path.parent)))
    return layers


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
            return yaml.safe_load(stripped)
        except yaml.YAMLError as exc:
            msg = f"cannot parse list/mapping value {value!r}: {exc}"
            raise ConfigurationError(msg) from exc
    return value


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
) -> ResolvedConfig:
    """Build the effective configuration from every layer, remembering each value's source."""
    layers: list[tuple[str, dict[str, Any]]] = [("default", Config().model_dump(mode="json"))]
    if path is not None:
        layers += file_layers(Path(path))
    layers.append(("env", env_layer(environ)))
    layers.append(("--set", sets_layer(sets or [])))
    layers.append(("override", dict(overrides or {})))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for label, layer in layers:
        merged = _merge(merged, layer)
        for key in _flatten(layer):
            sources[key] = label
    config = _validate(merged)
    flat_final = _flatten(config.model_dump(mode="json"))
    return ResolvedConfig(
        config=config,
        sources={key: _source_of(key, sources) for key in flat_final},
    )


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
) -> Config:
    """The effective :class:`Config` (see :func:`resolve_config` for the layers)."""
    return resolve_config(path, sets=sets, overrides=overrides).config


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
    if first["type"] == "literal_error" and isinstance(first.get("input"), str):
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


def mask_secrets(value: Any) -> Any:
    """A copy with passwords in URLs and values under secret-looking keys replaced by ***.

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
        return _URL_PASSWORD.sub(
            lambda m: (
                m.group(0)
                if m.group("secret").startswith("${")
                else f"{m.group('head')}{MASK}{m.group('tail')}"
            ),
            value,
        )
    return value


def externalize_secrets(config: Config) -> tuple[Config, dict[str, str]]:
    """Move literal passwords out of SQL URLs into environment variables.

    Returns the config with ``${WFO_SECRET_n}`` in their place and the variables to set, so that a
    notebook kernel (which inherits the environment) can connect while no file ever holds the
    password: not the executed notebook, not the manifest, not the report.
    """
    env: dict[str, str] = {}
    data = config.data.model_dump(mode="json")
    for name, source in data.items():
        node = source
        while isinstance(node, dict):
            url = node.get("url")
            match = _URL_PASSWORD.search(url) if isinstance(url, str) else None
            if match and not match.group("secret").startswith("${"):
                var = f"WFO_SECRET_{len(env) + 1}"
                env[var] = match.group("secret")
                node["url"] = (
                    url[: match.start("secret")] + f"${{{var}}}" + url[match.end("secret") :]
                )
            node = node.get("fallback")
        data[name] = source
    if not env:
        return config, env
    return config.model_copy(update={"data": DataConfig.model_validate(data)}), env
