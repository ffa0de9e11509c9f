"""Notifications against real servers on loopback: a signed webhook and SMTP with STARTTLS."""

from __future__ import annotations

import email
import json
import shutil
from email import policy
from pathlib import Path

import polars as pl
import pytest

from tests.builders import notebook
from tests.conftest import SAMPLE
from tests.opservers import Receiver, http_receiver, smtp_server
from wfo_kit.errors import ConfigurationError
from wfo_kit.notify import (
    Facts,
    blend_moves,
    evaluate,
    notify_run,
    send_email,
    send_webhook,
    sign,
    turned_red,
    verify,
)
from wfo_kit.opsconfig import (
    DeliveryRetry,
    EmailChannel,
    NotifyConfig,
    NotifyRules,
    WebhookChannel,
)

SECRET = "s3cret-for-tests"
ENV = {"WFO_WEBHOOK_SECRET": SECRET}
FAST = DeliveryRetry(attempts=3, backoff_seconds=0.01, jitter=0)
PAYLOAD = {"run_id": "r1", "status": "failed", "fired": [{"rule": "run_failed", "message": "x"}],
           "report": "/tmp/r1/report.html"}  # fmt: skip


def test_webhook_is_signed_and_retried_until_it_answers() -> None:
    waits: list[float] = []
    with http_receiver(Receiver(answers=[503, 500])) as server:
        channel = WebhookChannel(url=server.url + "/hook", retry=FAST)
        delivery = send_webhook(channel, PAYLOAD, environ=ENV, sleep=waits.append)
    assert (delivery.ok, delivery.attempts, delivery.status) == (True, 3, 200)
    assert (len(server.requests), len(waits)) == (3, 2)
    for request in server.requests:
        headers = request["headers"]
        assert verify(
            request["body"],
            secret=SECRET,
            timestamp=headers["X-WFO-Timestamp"],
            signature=headers["X-WFO-Signature"],
        )
        assert not verify(
            request["body"] + b" ",
            secret=SECRET,
            timestamp=headers["X-WFO-Timestamp"],
            signature=headers["X-WFO-Signature"],
        )
    assert json.loads(server.requests[0]["body"])["run_id"] == "r1"


def test_slow_webhook_times_out_and_failure_is_returned_not_raised() -> None:
    with http_receiver(Receiver(then=("sleep", 1.5))) as server:
        channel = WebhookChannel(
            url=server.url, timeout=0.2, retry=DeliveryRetry(attempts=2, backoff_seconds=0)
        )
        delivery = send_webhook(channel, PAYLOAD, environ=ENV)
    assert (delivery.ok, delivery.attempts) == (False, 2)
    assert "timed out" in delivery.error
    assert delivery.seconds < 1.2  # two 0.2 s attempts, not the server's 1.5 s


def test_webhook_client_errors_are_not_retried_and_a_missing_secret_is_said() -> None:
    with http_receiver(Receiver(then=401)) as server:
        channel = WebhookChannel(url=server.url, retry=FAST)
        delivery = send_webhook(channel, PAYLOAD, environ=ENV)
        unsigned = send_webhook(channel, PAYLOAD, environ={})
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 401)
    assert not unsigned.ok
    assert "WFO_WEBHOOK_SECRET" in unsigned.error
    assert len(server.requests) == 1  # nothing sent without a secret


def test_signature_refuses_replays() -> None:
    body = b"{}"
    signature = sign(body, secret=SECRET, timestamp=1000)
    assert verify(body, secret=SECRET, timestamp="1000", signature=signature, now=1100)
    assert not verify(body, secret=SECRET, timestamp="1000", signature=signature, now=2000)
    assert not verify(body, secret="other", timestamp="1000", signature=signature, now=1000)


def test_email_over_starttls_with_login_and_the_report_attached(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html><body>report <b>body</b></body></html>", encoding="utf-8")
    with smtp_server(tmp_path, user="ops", password="pw") as box:
        channel = EmailChannel(
            host="127.0.0.1",
            port=box.port,
            ca_file=str(tmp_path / "cert.pem"),
            sender="wfo@example.org",
            to=["a@example.org", "b@example.org"],
            report_url="https://wfo.example/runs/{run_id}/report",
            retry=FAST,
        )
        env = {"WFO_SMTP_USER": "ops", "WFO_SMTP_PASSWORD": "pw"}
        delivery = send_email(channel, PAYLOAD, report=report, environ=env)
        refused = send_email(
            channel, PAYLOAD, report=report, environ={**env, "WFO_SMTP_PASSWORD": "wrong"}
        )
    assert delivery.ok, delivery.error
    assert (refused.ok, refused.attempts) == (False, 1)  # a wrong password is not retried
    assert "Authentication" in refused.error
    (received,) = box.messages
    assert received["tls"]
    assert box.logins == ["ops"]
    assert received["to"] == ["a@example.org", "b@example.org"]
    message = email.message_from_bytes(received["data"], policy=policy.default)
    assert message["Subject"] == "wfo run r1 failed: run_failed"
    assert message["From"] == "wfo@example.org"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "- run_failed: x" in body
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "report.html"
    assert attachment.get_content() == report.read_text(encoding="utf-8")


def test_blend_moves_and_turned_red_are_vectorized_joins() -> None:
    now = pl.DataFrame({"company_id": ["a", "b", "c", "d"], "base": [104.0, 80.0, 1.0, None]})
    before = pl.DataFrame({"company_id": ["a", "b", "d", "e"], "base": [100.0, 100.0, 5.0, 1.0]})
    moved = blend_moves(now, before, pct=5)
    assert moved["company_id"].to_list() == ["b"]
    assert moved["moved_pct"].to_list() == pytest.approx([-20.0])
    diag = pl.DataFrame({"company_id": ["a", "b"], "check": ["x", "x"], "status": ["red", "red"],
                         "value": [1.0, 2.0]})  # fmt: skip
    earlier = diag.with_columns(status=pl.Series(["red", "green"]), value=pl.Series([9.0, 9.0]))
    assert turned_red(diag, earlier)["company_id"].to_list() == ["b"]
    assert turned_red(diag, None).height == 2


def test_rules_fire_together_and_inert_rules_are_reported() -> None:
    rules = NotifyRules(
        run_succeeded=True, quality_below=0.95, value_moved_pct=10, diagnostics_red=True
    )
    blend = pl.DataFrame({"company_id": ["a"], "base": [130.0]})
    facts = Facts(
        status="succeeded",
        quality_score=0.9,
        blend=blend,
        previous_blend=blend.with_columns(base=pl.lit(100.0)),
        previous_run="old",
    )
    fired, notes = evaluate(rules, facts)
    assert [f["rule"] for f in fired] == ["run_succeeded", "quality_below", "value_moved"]
    assert fired[2]["companies"][0]["moved_pct"] == pytest.approx(30.0)
    assert notes == [
        "notify.rules.diagnostics_red has no effect: this run has no `diagnostics` result table "
        "(with a light or status column)"
    ]
    fired, notes = evaluate(rules, Facts(status="succeeded", quality_score=1.0, blend=blend))
    assert [f["rule"] for f in fired] == ["run_succeeded"]
    assert any("no previous succeeded run" in n for n in notes)


def test_one_notification_per_run_and_a_dead_channel_only_recorded(tmp_path: Path) -> None:
    config = NotifyConfig(
        webhook=WebhookChannel(url="http://127.0.0.1:9/dead", timeout=0.2, retry=FAST),
        rules=NotifyRules(run_failed=True, run_succeeded=True),
    )
    outcome = notify_run(
        config,
        Facts(status="failed", error="boom"),
        run_id="r",
        report=tmp_path / "x.html",
        final_report=tmp_path / "x.html",
        environ=ENV,
        sleep=lambda _s: None,
    )
    (delivery,) = outcome["deliveries"]
    assert [f["rule"] for f in outcome["fired"]] == ["run_failed"]
    assert (delivery["ok"], delivery["attempts"]) == (False, 3)
    assert "Connection refused" in delivery["error"]


# --------------------------------------------------------------------------------------------
# Through a real run: the manifest and the log record every delivery

FAST_RUN = "valuation:\n  monte_carlo: {enabled: false}\n  sensitivity: {enabled: false}\n"
#: The real pipeline (load, validate, value, output) without the report's charts: the rules read
#: what it writes (metrics.json, results/blend.parquet), and a chart-free report exports fast.
PIPELINE_ONLY = """
import wfo_kit as wfo
config = wfo.Config.model_validate({"data": data, "validation": validation, "valuation": valuation,
                                    "output": output, "report": report, "pipeline": pipeline})
ctx = wfo.start_run(config, run_dir=run_dir, run_id=run_id, sources=sources)
wfo.finish_run(wfo.run_steps(ctx))
"""


@pytest.mark.e2e
def test_runs_notify_with_every_fired_rule_and_value_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfo_kit.config import resolve_config
    from wfo_kit.observers import read_events
    from wfo_kit.runs import run_report

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    params = tmp_path / "p.yaml"
    tables = "".join(f"  {t}: data/{t}.csv\n" for t in ("companies", "financials", "peers"))
    book = notebook(tmp_path / "pipeline.ipynb", PIPELINE_ONLY)
    report = f"report:\n  notebook: {book}\n"
    params.write_text(f"data:\n{tables}{FAST_RUN}{report}", encoding="utf-8")
    monkeypatch.setenv("WFO_WEBHOOK_SECRET", SECRET)
    with http_receiver() as server:
        sets = [
            f"notify.webhook.url={server.url}/hook",
            "notify.rules.run_succeeded=true",
            "notify.rules.value_moved_pct=5",
            "notify.rules.diagnostics_red=true",
            "notify.email.host=127.0.0.1",
            "notify.email.port=9",  # nothing listens: this channel fails, the run does not
            "notify.email.sender=wfo@example.org",
            "notify.email.to=[ops@example.org]",
            "notify.email.timeout=0.5",
            "notify.email.retry.attempts=1",
        ]
        resolved = resolve_config(params, sets=sets)
        first = run_report(resolved, output_root=tmp_path / "out", reuse_kernel=True)
        companies = pl.read_csv(data / "financials.csv")
        scaled = companies.with_columns(pl.col(pl.Float64) * 1.5)
        scaled.write_csv(data / "financials.csv")
        second = run_report(resolved, output_root=tmp_path / "out", reuse_kernel=True)
    assert first.status == second.status == "succeeded"
    assert len(server.requests) == 2  # one notification per run
    bodies = [json.loads(r["body"]) for r in server.requests]
    fired = [{f["rule"]: f for f in body["fired"]} for body in bodies]

    def red(run_dir: Path) -> set[tuple[str, str]]:
        table = pl.read_parquet(run_dir / "results" / "diagnostics.parquet")
        return set(table.filter(pl.col("light") == "red").select("company_id", "check").rows())

    first_red, second_red = red(first.run_dir), red(second.run_dir)
    assert first_red  # the sample has red diagnostics: the rule reads the real table
    rows = {(r["company_id"], r["check"]) for r in fired[0]["diagnostics_red"]["rows"]}
    assert rows == first_red  # no previous run: every red light is new
    assert set(fired[0]) == {"run_succeeded", "diagnostics_red"}
    turned = second_red - first_red  # only lights that were not red before
    assert ("diagnostics_red" in fired[1]) == bool(turned)
    assert {"run_succeeded", "value_moved"} <= set(fired[1])
    assert fired[1]["value_moved"]["previous_run"] == first.run_id
    assert bodies[1]["report"] == str(second.run_dir / "report.html")
    manifest = json.loads((second.run_dir / "manifest.json").read_text())
    deliveries = {d["channel"]: d for d in manifest["notifications"]["deliveries"]}
    assert (deliveries["webhook"]["ok"], deliveries["email"]["ok"]) == (True, False)
    events = [e["event"] for e in read_events(second.run_dir / "log.jsonl")]
    assert (events.count("notification_sent"), events.count("notification_failed")) == (1, 1)


def test_confinement_refuses_channels_from_a_parameters_file(tmp_path: Path) -> None:
    from wfo_kit.config import resolve_config
    from wfo_kit.notify import check_confined_channels

    params = tmp_path / "p.yaml"
    params.write_text("notify:\n  webhook: {url: 'http://10.0.0.1/'}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"notify\.webhook\.url is set by a parameters"):
        resolve_config(params, confine=tmp_path, environ={})
    rules = tmp_path / "rules.yaml"
    rules.write_text("notify:\n  rules: {run_succeeded: true}\n", encoding="utf-8")
    operator = {"WFO_NOTIFY__WEBHOOK__URL": "http://hooks.example/"}
    resolved = resolve_config(rules, confine=tmp_path, environ=operator)
    assert resolved.config.notify.webhook.url == "http://hooks.example/"
    check_confined_channels(resolved.sources, confined=True)
