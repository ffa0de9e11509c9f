"""Notifications: one message per finished run, listing every rule that fired (``notify``).

Rules (:class:`~wfo_kit.opsconfig.NotifyRules`) are evaluated over what the run left on disk (its
status, ``metrics.json`` and result tables) and the previous succeeded run with the same
configuration (:func:`previous_run`). Channels: a signed JSON webhook (:func:`send_webhook`) and
SMTP mail (:func:`send_email`). A delivery is retried with backoff; a channel that still fails is
recorded (in the run's log and manifest), never raised: notifications cannot fail a run.

Signatures: ``X-WFO-Signature: sha256=<hex>``, the HMAC-SHA256 with the shared secret of
``"<X-WFO-Timestamp>." + body``. The timestamp is signed so that a captured request cannot be
replayed later (:func:`verify` refuses one older than ``tolerance`` seconds); inbound webhooks
(``POST /hooks/run`` of ``wfo serve``) are checked the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import polars as pl

from wfo_kit.opsconfig import EmailChannel, NotifyConfig, NotifyRules, WebhookChannel

SIGNATURE_HEADER = "X-WFO-Signature"
TIMESTAMP_HEADER = "X-WFO-Timestamp"


# --------------------------------------------------------------------------------------------
# Signatures


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    """The signature header value of ``body`` sent at ``timestamp`` (epoch seconds).

    >>> sign(b'{"a":1}', secret="s", timestamp=1700000000)[:15]
    'sha256=ab7bd212'
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    body: bytes,
    *,
    secret: str,
    timestamp: str | None,
    signature: str | None,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp``, no more than ``tolerance`` s away."""
    if not secret or not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(body, secret=secret, timestamp=sent), signature)


# --------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Facts:
    """What the rules look at: this run and, when there is one, the previous comparable run."""

    status: str
    error: str | None = None
    quality_score: float | None = None
    blend: pl.DataFrame | None = None
    previous_blend: pl.DataFrame | None = None
    previous_run: str | None = None
    diagnostics: pl.DataFrame | None = None
    previous_diagnostics: pl.DataFrame | None = None


def blend_moves(current: pl.DataFrame, previous: pl.DataFrame, *, pct: float) -> pl.DataFrame:
    """Companies whose blended base value moved more than ``pct`` percent (company_id, before,
    after, moved_pct); a company new in this run or without a base value in either is left out.

    >>> a = pl.DataFrame({"company_id": ["x", "y"], "base": [110.0, 100.0]})
    >>> b = pl.DataFrame({"company_id": ["x", "y"], "base": [100.0, 100.0]})
    >>> blend_moves(a, b, pct=5)["company_id"].to_list()
    ['x']
    """
    joined = current.select("company_id", after="base").join(
        previous.select("company_id", before="base"), on="company_id", how="inner"
    )
    moved = ((pl.col("after") - pl.col("before")) / pl.col("before").abs() * 100).alias("moved_pct")
    return (
        joined.filter(pl.col("before").is_not_null() & (pl.col("before") != 0))
        .with_columns(moved)
        .filter(pl.col("moved_pct").abs() > pct)
        .select("company_id", "before", "after", "moved_pct")
        .sort("company_id")
    )


def status_column(frame: pl.DataFrame) -> str | None:
    """The column holding a diagnostic's colour: ``light`` (wfo_kit's diagnostics table) or
    ``status``."""
    return next((c for c in ("light", "status") if c in frame.columns), None)


def turned_red(current: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """Rows of a ``diagnostics`` table that are red and were not red in ``previous``.

    A row is identified by ``company_id`` and ``check`` (else every text column but the colour,
    ``rule`` and ``note``): the measured value may change while the check stays the same.
    """
    colour = status_column(current)
    if colour is None:
        return current.clear()
    keys = [c for c in ("company_id", "check") if c in current.columns] or [
        c for c, t in current.schema.items()
        if c not in (colour, "rule", "note") and t == pl.String
    ]  # fmt: skip
    red = current.filter(pl.col(colour).str.to_lowercase() == "red")
    before_colour = status_column(previous) if previous is not None else None
    if previous is None or before_colour is None or not keys:
        return red
    before = previous.filter(pl.col(before_colour).str.to_lowercase() == "red")
    shared = [k for k in keys if k in before.columns]
    return red.join(before.select(shared).unique(), on=shared, how="anti") if shared else red


def evaluate(rules: NotifyRules, facts: Facts) -> tuple[list[dict[str, Any]], list[str]]:
    """The rules that fired (each ``{rule, message, ...}``) and notes on rules with no effect."""
    fired: list[dict[str, Any]] = []
    notes: list[str] = []
    failed = facts.status in ("failed", "interrupted")
    if rules.run_failed and failed:
        fired.append({"rule": "run_failed", "message": f"run {facts.status}: {facts.error or ''}"})
    if rules.run_succeeded and facts.status == "succeeded":
        fired.append({"rule": "run_succeeded", "message": "run succeeded"})
    if rules.quality_below is not None:
        score = facts.quality_score
        if score is None:
            notes.append("notify.rules.quality_below has no effect: the run has no quality score")
        elif score < rules.quality_below:
            message = f"data quality {score:.3f} is below {rules.quality_below}"
            fired.append({"rule": "quality_below", "message": message, "score": score})
    if rules.value_moved_pct is not None:
        outcome = _value_rule(rules.value_moved_pct, facts)
        if isinstance(outcome, dict):
            fired.append(outcome)
        elif outcome:
            notes.append(f"notify.rules.value_moved_pct has no effect: {outcome}")
    if rules.diagnostics_red:
        if facts.diagnostics is None or status_column(facts.diagnostics) is None:
            notes.append(
                "notify.rules.diagnostics_red has no effect: this run has no `diagnostics` "
                "result table (with a light or status column)"
            )
        else:
            red = turned_red(facts.diagnostics, facts.previous_diagnostics)
            if red.height:
                fired.append(
                    {
                        "rule": "diagnostics_red",
                        "message": f"{red.height} diagnostic(s) turned red",
                        "rows": red.head(50).to_dicts(),
                    }
                )
    return fired, notes


def _value_rule(pct: float, facts: Facts) -> dict[str, Any] | str | None:
    if facts.blend is None:
        return None if facts.status != "succeeded" else "this run has no blend table"
    if facts.previous_blend is None:
        return "no previous succeeded run with the same configuration"
    moved = blend_moves(facts.blend, facts.previous_blend, pct=pct)
    if not moved.height:
        return None
    return {
        "rule": "value_moved",
        "message": f"{moved.height} company value(s) moved more than {pct} % against run "
        f"{facts.previous_run}",
        "previous_run": facts.previous_run,
        "companies": moved.head(50).to_dicts(),
    }


# --------------------------------------------------------------------------------------------
# Facts from disk


def previous_run(root: Path, *, config: Mapping[str, Any], run_id: str) -> Path | None:
    """The newest succeeded run under ``root`` whose manifest holds the same (masked)
    configuration, other than ``run_id``: "the previous run of the same parameters"."""
    from wfo_kit.history import _manifests

    same = [
        (str(m.get("started") or ""), folder)
        for folder, m in _manifests(root)
        if m.get("status") == "succeeded"
        and m.get("run_id") != run_id
        and _without_notify(m.get("config")) == _without_notify(config)
    ]
    return max(same)[1] if same else None


def _without_notify(config: Any) -> Any:
    # Changing who is notified (or where logs go) does not change the numbers being compared.
    if not isinstance(config, Mapping):
        return config
    return {k: v for k, v in config.items() if k not in ("notify", "logging")}


def _read_table(folder: Path | None, name: str) -> pl.DataFrame | None:
    if folder is None:
        return None
    path = folder / "results" / f"{name}.parquet"
    return pl.read_parquet(path) if path.is_file() else None


def gather_facts(
    run_dir: Path, *, root: Path, run_id: str, status: str, error: str | None, config: Any
) -> Facts:
    """What the rules need, read from the run's folder and the previous comparable run."""
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text("utf-8")) if metrics_path.is_file() else {}
    quality = metrics.get("quality") or []
    rows_in = sum(q.get("rows_in") or 0 for q in quality)
    score = sum(q.get("rows_valid") or 0 for q in quality) / rows_in if rows_in else None
    previous = previous_run(root, config=config, run_id=run_id)
    return Facts(
        status=status,
        error=error,
        quality_score=score,
        blend=_read_table(run_dir, "blend"),
        previous_blend=_read_table(previous, "blend"),
        previous_run=previous.name if previous else None,
        diagnostics=_read_table(run_dir, "diagnostics"),
        previous_diagnostics=_read_table(previous, "diagnostics"),
    )


# --------------------------------------------------------------------------------------------
# Channels


@dataclass(frozen=True)
class Delivery:
    """How one channel's delivery went (recorded in the manifest's ``notifications``)."""

    channel: str
    ok: bool
    attempts: int
    seconds: float
    status: int | None = None
    error: str | None = None


def _retrying(
    channel: str, policy: Any, attempt_once: Callable[[], int | None], sleep: Callable
) -> Delivery:
    from wfo_kit.pipeline import backoff_wait

    start = time.perf_counter()
    error = None
    status = None
    for attempt in range(1, policy.attempts + 1):
        try:
            status = attempt_once()
            return Delivery(channel, True, attempt, time.perf_counter() - start, status)
        except _PermanentError as exc:
            return Delivery(
                channel, False, attempt, time.perf_counter() - start, exc.status, str(exc)
            )
        except (OSError, http.client.HTTPException, smtplib.SMTPException, _TransientError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            status = getattr(exc, "status", None)
        if attempt < policy.attempts:
            sleep(backoff_wait(policy, attempt))
    elapsed = time.perf_counter() - start
    return Delivery(channel, False, policy.attempts, elapsed, status, error)


class _TransientError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _PermanentError(_TransientError):
    pass


def send_webhook(
    channel: WebhookChannel,
    payload: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``payload`` as signed JSON; retried on network errors, timeouts, 5xx and 429."""
    environ = os.environ if environ is None else environ
    secret = environ.get(channel.secret_env, "")
    if not secret:
        error = f"no shared secret: set the environment variable {channel.secret_env}"
        return Delivery("webhook", False, 0, 0.0, None, error)
    body = json.dumps(payload, default=str, separators=(",", ":")).encode()

    def once() -> int:
        stamp = int(time.time())
        request = urllib.request.Request(
            channel.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "wfo_kit-notify",
                TIMESTAMP_HEADER: str(stamp),
                SIGNATURE_HEADER: sign(body, secret=secret, timestamp=stamp),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=channel.timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # its response holds the socket
            kind = _TransientError if exc.code >= 500 or exc.code == 429 else _PermanentError
            msg = f"HTTP {exc.code} {exc.reason}"
            raise kind(msg, exc.code) from None

    if not (channel.url or "").lower().startswith(("http://", "https://")):
        return Delivery("webhook", False, 0, 0.0, None, "notify.webhook.url must be http(s)")
    return _retrying("webhook", channel.retry, once, sleep)


_PERMANENT_SMTP = (
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPNotSupportedError,
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    ssl.SSLCertVerificationError,
)


def email_message(
    channel: EmailChannel, payload: Mapping[str, Any], *, report: Path | None
) -> EmailMessage:
    """The mail: a plain-text summary, the report attached (or only linked)."""
    message = EmailMessage()
    rules = ", ".join(f["rule"] for f in payload["fired"])
    message["Subject"] = f"wfo run {payload['run_id']} {payload['status']}: {rules}"
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="wfo-kit")
    lines = [f"Run {payload['run_id']}: {payload['status']}", ""]
    lines += [f"- {f['rule']}: {f['message']}" for f in payload["fired"]]
    for fired in payload["fired"]:
        for company in fired.get("companies", []):
            lines.append(
                f"    {company['company_id']}: {company['before']:.4g} -> {company['after']:.4g} "
                f"({company['moved_pct']:+.1f} %)"
            )
    lines += ["", f"Report: {payload['report']}"]
    message.set_content("\n".join(lines) + "\n")
    if channel.attach_report and report is not None and report.is_file():
        message.add_attachment(
            report.read_bytes(), maintype="text", subtype="html", filename="report.html"
        )
    return message


def send_email(
    channel: EmailChannel,
    payload: Mapping[str, Any],
    *,
    report: Path | None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send the mail over SMTP (STARTTLS unless turned off), logging in with the credentials from
    the environment; retried on connection and SMTP errors."""
    environ = os.environ if environ is None else environ
    user = environ.get(channel.username_env or "", "") if channel.username_env else ""
    password = environ.get(channel.password_env, "")
    message = email_message(channel, payload, report=report)

    def once() -> None:
        try:
            with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout) as smtp:
                smtp.ehlo()
                if channel.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=channel.ca_file))
                    smtp.ehlo()
                if user:
                    smtp.login(user, password)
                smtp.send_message(message)
        except _PERMANENT_SMTP as exc:  # trying again with the same credentials cannot help
            msg = f"{type(exc).__name__}: {exc}"
            raise _PermanentError(msg) from None

    return _retrying("email", channel.retry, once, sleep)


# --------------------------------------------------------------------------------------------
# One run


def report_link(channel: EmailChannel, *, run_id: str, report: Path) -> str:
    if channel.report_url:
        return channel.report_url.replace("{run_id}", run_id)
    return str(report)


def notify_run(
    notify: NotifyConfig,
    facts: Facts,
    *,
    run_id: str,
    report: Path,
    final_report: Path,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Evaluate the rules; when any fired, send one message per configured channel.

    ``report`` is the file to attach now; ``final_report`` where it will be once the run folder
    is renamed (the link). Returns the record kept in the manifest: fired rules, deliveries, notes.
    """
    fired, notes = evaluate(notify.rules, facts)
    channels = [c for c in (notify.webhook.url, notify.email.host) if c is not None]
    if not channels:
        if fired:
            notes.append("notify.rules fired but no channel is configured (notify.webhook/email)")
        return {"fired": fired, "deliveries": [], "notes": notes}
    deliveries: list[Delivery] = []
    if fired:
        payload = {
            "run_id": run_id,
            "status": facts.status,
            "fired": fired,
            "report": report_link(notify.email, run_id=run_id, report=final_report),
            "error": facts.error,
            "sent_at": time.time(),
        }
        if notify.webhook.url is not None:
            deliveries.append(send_webhook(notify.webhook, payload, environ=environ, sleep=sleep))
        if notify.email.host is not None:
            deliveries.append(
                send_email(notify.email, payload, report=report, environ=environ, sleep=sleep)
            )
    return {"fired": fired, "deliveries": [asdict(d) for d in deliveries], "notes": notes}


def check_confined_channels(sources: Mapping[str, str], *, confined: bool) -> None:
    """In confinement (a parameters file submitted remotely), refuse notification channels and
    network log sinks set by the parameters file: they would make the server send data to any
    address it names. The operator sets them through the environment
    (``WFO_NOTIFY__WEBHOOK__URL``, ``WFO_LOGGING__HTTP``) or ``--set``."""
    from wfo_kit.errors import ConfigurationError

    if not confined:
        return
    for key, source in sources.items():
        remote = ("notify.webhook.", "notify.email.", "logging.http", "logging.syslog")
        if key.startswith(remote) and source.startswith("file:"):
            msg = f"{key} is set by a parameters file, which confinement does not allow"
            hint = "set them with WFO_NOTIFY__... / WFO_LOGGING__... variables or --set"
            raise ConfigurationError(msg, column=key, hint=hint)
