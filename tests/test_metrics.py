"""Prometheus metrics: `wfo run --metrics-file` and `GET /metrics`, parsed by prometheus_client."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import notebook
from tests.conftest import SAMPLE
from tests.test_notify import PIPELINE_ONLY
from wfo_kit.cli import _write_metrics, build_parser
from wfo_kit.config import resolve_config
from wfo_kit.logsinks import query_logs
from wfo_kit.runs import run_report


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.e2e
def test_run_writes_a_textfile_collector_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    book = notebook(tmp_path / "pipeline.ipynb", PIPELINE_ONLY)
    tables = "".join(f"  {t}: data/{t}.csv\n" for t in ("companies", "financials", "peers"))
    params = tmp_path / "p.yaml"
    params.write_text(
        f"data:\n{tables}valuation:\n  monte_carlo: {{enabled: false}}\n"
        f"  sensitivity: {{enabled: false}}\nreport:\n  notebook: {book}\n",
        encoding="utf-8",
    )
    target = tmp_path / "textfile" / "wfo.prom"
    args = build_parser().parse_args(["run", str(params), "--metrics-file", str(target)])
    assert args.metrics_file == target
    # The run in this process on a warm kernel (as `wfo batch` workers run), then the CLI's writer.
    logs = tmp_path / "logs.sqlite"
    sinks = [f"logging.database={logs}", "logging.http=http://127.0.0.1:9/dead"]
    resolved = resolve_config(params, sets=sinks)
    result = run_report(resolved, output_root=tmp_path / "out", reuse_kernel=True)
    assert result.status == "succeeded"  # with a dead log collector
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert [p.split(":")[0] for p in manifest["problems"]] == ["log sink http"]
    events = {(r["logger"], r["event"]) for r in query_logs(str(logs), run_id=result.run_id)}
    assert ("wfo_kit.step.validate", "step_finished") in events  # from inside the kernel
    assert ("wfo_kit.step.publish", "step_finished") in events  # from this process
    _write_metrics(args.metrics_file, tmp_path / "out", [result.run_id])
    found = samples(target.read_text(encoding="utf-8"))
    assert list(target.parent.iterdir()) == [target]  # no temporary file left beside it
    assert found[("wfo_runs_total", (("outcome", "succeeded"),))] == 1
    assert found[("wfo_runs_total", (("outcome", "failed"),))] == 0
    assert found[("wfo_run_duration_seconds_count", ())] == 1
    for step in ("load", "validate", "value", "output", "report", "publish"):
        assert found[("wfo_step_duration_seconds_count", (("step", step),))] == 1
    assert found[("wfo_rows_processed_total", ())] > found[("wfo_rows_quarantined_total", ())] > 0
    assert 0 < found[("wfo_data_quality_score", ())] < 1  # the sample holds invalid rows
    assert found[("wfo_companies_valued_per_second", ())] > 0
    assert found[("wfo_peak_memory_bytes", ())] > 50e6  # a kernel with Polars loaded
    assert found[("wfo_cpu_seconds_total", ())] > 0
    assert found[("wfo_kernel_starts_total", ())] + found[("wfo_kernel_reuses_total", ())] == 1


@dataclass(frozen=True)
class Served:
    url: str
    token: str  # a viewer's
    data_root: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The real app on uvicorn in this process. Its workers have no kernel (a name that does not
    exist): a run they get fails at once instead of executing a notebook."""
    import uvicorn

    from tests.test_serve import free_port
    from wfo_kit.schedules import add_schedule
    from wfo_kit.serve.app import create_app
    from wfo_kit.serve.settings import ServeSettings
    from wfo_kit.serve.users import add_user

    root = tmp_path_factory.mktemp("served")
    (root / "out").mkdir()
    token = add_user(root / "out" / "users.json", "vic", "viewer")
    # A schedule due since long ago: the server's scheduler starts it once, at start-up.
    (root / "sched.yaml").write_text("report: {kernel: no-such-kernel}\n", encoding="utf-8")
    long_ago = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    add_schedule(root / "out", "minutely", "* * * * *", [str(root / "sched.yaml")], now=long_ago)
    settings = ServeSettings(
        output_root=root / "out", data_root=root, prewarm=False, kernel="no-such-kernel"
    )
    port = free_port()
    os.environ["WFO_SERVE_SCHEDULES"] = "1"
    try:
        app = create_app(settings)
    finally:
        del os.environ["WFO_SERVE_SCHEDULES"]
    config = uvicorn.Config(app, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield Served(f"http://127.0.0.1:{port}", token, root)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_serve_metrics_count_refusals_and_failed_sign_ins(served: Served) -> None:
    from wfo_kit.serve.metrics import count_failed_sign_in

    url, viewer = served.url, {"Authorization": f"Bearer {served.token}"}
    before = samples(httpx.get(f"{url}/metrics", headers=viewer).text)
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/runs", headers={"Authorization": "Bearer wfo_x_y"}).status_code == 401
    assert httpx.post(f"{url}/runs", headers=viewer, content="{}").status_code == 403
    count_failed_sign_in("login_form")
    with httpx.Client(base_url=url, timeout=30) as browser:  # a wrong token in the web form
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/ui/login").text)
        assert csrf is not None
        form = {"name": "vic", "token": "wfo_wrong_guess", "csrf_token": csrf[1]}
        assert browser.post("/ui/login", data=form).status_code == 401
    response = httpx.get(f"{url}/metrics", headers=viewer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert grew("wfo_serve_refused_requests_total", status="401") == 3
    assert grew("wfo_serve_refused_requests_total", status="403") == 1
    assert grew("wfo_serve_failed_sign_ins_total", reason="http_401") == 2
    assert grew("wfo_serve_failed_sign_ins_total", reason="login_form") == 1
    assert grew("wfo_serve_failed_sign_ins_total", reason="web_login") == 1  # once, not twice
    assert after[("wfo_runs_total", (("outcome", "succeeded"),))] == 0  # no runs here yet


def test_signed_inbound_hook_queues_a_run_and_unsigned_ones_are_refused(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfo_kit.notify import sign

    url, token, tmp_path = served.url, served.token, served.data_root
    # A kernel that does not exist: the run is refused at its start, no notebook is executed.
    (tmp_path / "prices.yaml").write_text("report: {kernel: no-such-kernel}\n", encoding="utf-8")
    monkeypatch.setenv("WFO_HOOK_SECRET", "hook-secret")

    def signed(body: bytes, *, secret: str = "hook-secret", age: int = 0) -> dict[str, str]:
        stamp = int(time.time()) - age
        return {"X-WFO-Timestamp": str(stamp), "Content-Type": "application/json",
                "X-WFO-Signature": sign(body, secret=secret, timestamp=stamp)}  # fmt: skip

    body = b'{"params": "prices.yaml"}'
    hook = f"{url}/hooks/run"
    accepted_headers = signed(body)
    accepted = httpx.post(hook, content=body, headers=accepted_headers)
    again = httpx.post(hook, content=body, headers=accepted_headers)  # captured and replayed
    wrong = httpx.post(hook, content=body, headers=signed(body, secret="guess"))
    replayed = httpx.post(hook, content=body, headers=signed(body, age=3600))
    unsigned = httpx.post(hook, content=body)
    escape = b'{"params": "../outside.yaml"}'
    outside = httpx.post(hook, content=escape, headers=signed(escape))
    run_id = accepted.json()["run_id"]
    deadline = time.monotonic() + 90
    while True:  # the run goes through a worker; with no kernel there it fails at once
        status = httpx.get(f"{url}/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
        if (
            status.json()["status"] not in ("queued", "starting", "running")
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.2)
    monkeypatch.delenv("WFO_HOOK_SECRET")
    off = httpx.post(hook, content=body, headers=signed(body))
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["location"] == f"/runs/{run_id}"
    run = status.json()
    assert (run["status"], run["owner"]) == (
        "failed",
        "hook",
    )  # started, then refused by the worker
    assert "no-such-kernel" in run["error"]["message"]
    assert [r.status_code for r in (wrong, replayed, unsigned)] == [401, 401, 401]
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("replayed-hook")
    assert outside.status_code == 422
    assert "data root" in outside.json()["detail"]
    assert str(tmp_path) not in outside.text  # no server paths in messages
    assert off.status_code == 404  # hooks are off without a secret


def test_serve_runs_the_schedules_of_its_outputs_folder(served: Served) -> None:
    viewer = {"Authorization": f"Bearer {served.token}"}
    deadline = time.monotonic() + 90
    while True:  # the schedule was due at start-up; its run fails at once (no such kernel)
        runs = httpx.get(f"{served.url}/runs", params={"owner": "scheduler"}, headers=viewer)
        items = runs.json()["items"]
        if (items and items[0]["status"] == "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [i["status"] for i in items] == ["failed"]  # started once, not once per missed minute
    log = (served.data_root / "out" / "scheduler.jsonl").read_text(encoding="utf-8")
    first = json.loads(log.splitlines()[0])
    assert (first["schedule"], first["action"]) == ("minutely", "started")


def test_remembered_hook_signatures_expire_and_are_bounded() -> None:
    from wfo_kit.serve.hooks import SeenSignatures

    seen = SeenSignatures(limit=2)
    assert seen.admit("sha256=a", now=1000.0) == "new"
    assert seen.admit("sha256=a", now=1599.0) == "replay"  # within twice the 300 s tolerance
    assert seen.admit("sha256=b", now=1100.0) == "new"
    assert seen.admit("sha256=c", now=1200.0) == "full"  # not forgotten to make room
    assert seen.admit("sha256=c", now=1600.0) == "new"  # a expired: room again
    assert seen.admit("sha256=b", now=1650.0) == "replay"
    assert seen.admit("sha256=a", now=1700.0) == "new"  # b expired too
    assert list(seen.seen) == ["sha256=c", "sha256=a"]
