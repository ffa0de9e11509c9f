"""Configuration sections of operations: notifications (``notify``) and log sinks (``logging``).

Kept apart from :mod:`wfo_kit.config` (which imports them into :class:`~wfo_kit.config.Config`) so
that the operations code can grow without touching the valuation sections. Credentials are never
values here: each channel names the environment variable that holds its secret.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Ops(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DeliveryRetry(_Ops):
    """Retries of one delivery. The same fields as ``pipeline.retry`` (so that one backoff function,
    :func:`wfo_kit.pipeline.backoff_wait`, serves both), with shorter defaults: a notification
    should not hold a finished run for long."""

    attempts: int = Field(3, ge=1, le=10, description="tries in all, the first included")
    backoff_seconds: float = Field(0.5, ge=0, le=600, description="wait before the second try")
    multiplier: float = Field(2.0, ge=1, le=100, description="each later wait is this times longer")
    max_backoff_seconds: float = Field(10.0, ge=0, le=600, description="cap on one wait, seconds")
    jitter: float = Field(0.1, ge=0, le=1, description="random +- share added to each wait")


class WebhookChannel(_Ops):
    """A JSON POST signed with HMAC-SHA256 (headers ``X-WFO-Timestamp`` and ``X-WFO-Signature:
    sha256=<hex of HMAC(secret, "<timestamp>." + body)>``)."""

    url: str | None = Field(
        None, description="http(s) URL that receives the JSON POST (unset: off)"
    )
    secret_env: str = Field(
        "WFO_WEBHOOK_SECRET", description="environment variable holding the shared secret"
    )
    timeout: float = Field(5.0, gt=0, le=120, description="seconds one attempt may take")
    retry: DeliveryRetry = Field(default_factory=DeliveryRetry)


class EmailChannel(_Ops):
    """Plain-text mail over SMTP (STARTTLS by default) with the HTML report attached or linked."""

    host: str | None = Field(None, description="SMTP server (unset: no mail)")
    port: int = Field(587, ge=1, le=65535, description="SMTP port (587: submission + STARTTLS)")
    starttls: bool = Field(True, description="upgrade the connection with STARTTLS before login")
    ca_file: str | None = Field(
        None, description="PEM file of the CA that signed the server's certificate (else system)"
    )
    username_env: str | None = Field(
        "WFO_SMTP_USER", description="environment variable holding the SMTP user (unset: no login)"
    )
    password_env: str = Field(
        "WFO_SMTP_PASSWORD", description="environment variable holding the SMTP password"
    )
    sender: str | None = Field(None, description="From: address (required with a host)")
    to: list[str] = Field(default_factory=list, description="recipients (required with a host)")
    attach_report: bool = Field(True, description="attach report.html (else only link it)")
    report_url: str | None = Field(
        None,
        description="link to the report, with {run_id} replaced, e.g. "
        "https://wfo.example/runs/{run_id}/report (default: the report's path on disk)",
    )
    timeout: float = Field(10.0, gt=0, le=120, description="seconds one attempt may take")
    retry: DeliveryRetry = Field(default_factory=DeliveryRetry)

    @model_validator(mode="after")
    def _addressed(self) -> EmailChannel:
        if self.host is not None and (not self.sender or not self.to):
            msg = "an email channel with a host needs `sender` and at least one address in `to`"
            raise ValueError(msg)
        return self


class NotifyRules(_Ops):
    """When a run sends its one notification: every rule that fires is listed in it."""

    run_failed: bool = Field(True, description="the run failed (or was interrupted)")
    run_succeeded: bool = Field(False, description="the run succeeded")
    quality_below: float | None = Field(
        None, ge=0, le=1, description="data-quality score (valid rows / rows in) below this"
    )
    value_moved_pct: float | None = Field(
        None,
        gt=0,
        description="a company's blended base value moved more than this many percent against "
        "the previous succeeded run with the same configuration",
    )
    diagnostics_red: bool = Field(
        False,
        description="a row of the `diagnostics` result table turned red (status `red`) that was "
        "not red in the previous run; reported as having no effect when the run has no such table",
    )


class NotifyConfig(_Ops):
    """Notification channels and rules. A failing channel never fails the run."""

    webhook: WebhookChannel = Field(default_factory=WebhookChannel)
    email: EmailChannel = Field(default_factory=EmailChannel)
    rules: NotifyRules = Field(default_factory=NotifyRules)


LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class LoggingConfig(_Ops):
    """Levels per named logger and the sinks every event of a run goes to (besides log.jsonl).

    Loggers: ``wfo_kit.workflow`` (run events), ``wfo_kit.step.<name>`` (step events),
    ``wfo_kit.system`` (errors, retries, notifications). A failing sink never fails the run.
    """

    level: LogLevel = Field("info", description="level of every wfo_kit logger not listed below")
    levels: dict[str, LogLevel] = Field(
        default_factory=dict,
        description="level per logger, e.g. {wfo_kit.step.validate: debug, wfo_kit.system: error}",
    )
    console: bool = Field(False, description="log events on stderr (also --verbose)")
    file: str | None = Field(None, description="rotating log file (text, one line per event)")
    file_max_bytes: int = Field(5_000_000, ge=1024, description="rotate the file at this size")
    file_backups: int = Field(3, ge=0, le=100, description="rotated files kept")
    database: str | None = Field(
        None,
        description="SQL database for events, one row each: a SQLite file path, sqlite:///path "
        "or duckdb:///path (`wfo logs` reads it)",
    )
    syslog: str | None = Field(
        None, description="syslog address: host:port (UDP) or a Unix socket path such as /dev/log"
    )
    http: str | None = Field(None, description="HTTP collector URL: each event POSTed as JSON")
    http_timeout: float = Field(2.0, gt=0, le=60, description="seconds one POST may take")


class HttpPagination(_Ops):
    """How an HTTP source's pages are followed: ``page`` adds ``?<page_param>=N`` from
    ``first_page`` until a page has no rows; ``link`` follows the ``Link: <...>; rel="next"``
    response header."""

    style: Literal["page", "link"] = Field("page", description="page (a query parameter) or link")
    page_param: str = Field("page", description="query parameter carrying the page number")
    first_page: int = Field(1, ge=0, description="number of the first page")
    max_pages: int = Field(100, ge=1, le=10_000, description="stop (with an error) beyond this")


#: Fields only an HTTP source reads (on a file or SQL source they change nothing).
HTTP_FIELDS = ("format", "headers", "records", "pagination", "timeout")


def ops_inert(config: Any) -> list[tuple[str, str]]:
    """(setting prefix, reason) for operations settings that change nothing as configured; read
    by :func:`wfo_kit.effects.setting_effects` with the valuation's own."""
    out: list[tuple[str, str]] = []
    notify, logs = config.notify, config.logging
    if notify.webhook.url is None:
        out.append(("notify.webhook", "notify.webhook.url is unset"))
    if notify.email.host is None:
        out.append(("notify.email", "notify.email.host is unset"))
    if notify.webhook.url is None and notify.email.host is None:
        out.append(("notify.rules", "no channel: set notify.webhook.url or notify.email.host"))
    sinks = {"file": logs.file, "database": logs.database, "syslog": logs.syslog,
             "http": logs.http, "console": logs.console or None}  # fmt: skip
    if not any(sinks.values()):
        reason = "no log sink is set (logging.file, database, syslog, http or console)"
        out += [("logging.level", reason), ("logging.levels", reason)]
    if logs.file is None:
        out += [
            (f"logging.{k}", "logging.file is unset") for k in ("file_max_bytes", "file_backups")
        ]
    if logs.http is None:
        out.append(("logging.http_timeout", "logging.http is unset"))
    if config.security.confine is None:
        reason = "only confined runs (--confine, wfo serve) check the hosts of HTTP sources"
        out.append(("security.allowed_hosts", reason))
    for name, source in config.data:
        node, key = source, f"data.{name}"
        while node is not None:
            http = (node.url or "").lower().startswith(("http://", "https://"))
            for field in HTTP_FIELDS:
                default = type(node).model_fields[field].get_default(call_default_factory=True)
                if not http and getattr(node, field) != default:
                    out.append(
                        (f"{key}.{field}", "only an HTTP source (url: https://...) reads it")
                    )
            if http and node.format == "csv" and node.records is not None:
                out.append((f"{key}.records", "a CSV response has no records key"))
            node, key = node.fallback, f"{key}.fallback"
    return out
