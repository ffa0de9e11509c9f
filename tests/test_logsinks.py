"""The logging hierarchy and its sinks, fed by the real pipeline's event stream."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.opservers import http_receiver
from wfo_kit.cli import main
from wfo_kit.config import load_config
from wfo_kit.logsinks import connect_log_db, open_sinks, query_logs
from wfo_kit.opsconfig import LoggingConfig
from wfo_kit.pipeline import RunContext, run_pipeline

QUICK = {"valuation": {"monte_carlo": {"enabled": False}, "sensitivity": {"enabled": False}}}


def run_with(sinks: object, run_id: str = "run-a") -> RunContext:
    """The sample through load, validate and value, every event to ``sinks``."""
    ctx = RunContext(load_config(overrides=QUICK), run_id=run_id, observers=[sinks])
    return run_pipeline(ctx, ["load", "validate", "value"])


def test_database_rows_follow_the_logger_hierarchy_and_levels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "logs.sqlite"
    config = LoggingConfig(
        level="info",
        levels={"wfo_kit.step.validate": "debug", "wfo_kit.step.value": "error"},
        database=str(database),
    )
    sinks = open_sinks(config)
    run_with(sinks)
    sinks.close()
    assert sinks.problems == []
    rows = query_logs(str(database), run_id="run-a")
    seen = [(r["logger"], r["event"]) for r in rows]
    assert seen == [
        ("wfo_kit.workflow", "run_started"),
        ("wfo_kit.step.load", "step_finished"),  # its step_started is debug: below info
        ("wfo_kit.step.validate", "step_started"),  # debug for this logger
        ("wfo_kit.step.validate", "step_finished"),
        ("wfo_kit.workflow", "run_finished"),  # value's step_finished is info: below error
    ]
    assert json.loads(rows[3]["fields"])["rows_quarantined"] > 0
    assert query_logs(str(database), step="validate", level="info")[0]["event"] == "step_finished"
    assert main(["logs", "--db", str(database), "--run", "run-a", "--step", "validate"]) == 0
    out = capsys.readouterr().out
    assert "step finished validate" in out
    assert "step started load" not in out
    assert main(["logs", "--db", str(tmp_path / "none.sqlite")]) == 2


def test_rotating_file_syslog_and_http_collector_receive_events(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as syslog, http_receiver() as server:
        syslog.bind(("127.0.0.1", 0))
        syslog.settimeout(5)
        config = LoggingConfig(
            file=str(tmp_path / "wfo.log"),
            file_max_bytes=1024,
            file_backups=2,
            syslog=f"127.0.0.1:{syslog.getsockname()[1]}",
            http=f"{server.url}/collect",
        )
        sinks = open_sinks(config)
        for n in range(8):
            run_with(sinks, run_id=f"run-{n}")
        sinks.close()
        datagram = syslog.recv(4096).decode()
    assert sinks.problems == []
    assert "wfo_kit.workflow run=run-0 run started" in datagram
    assert sinks.written["file"] == sinks.written["http"] == sinks.written["syslog"] == 8 * 5
    assert (tmp_path / "wfo.log.1").is_file()  # rotated at 1 kB
    assert sorted(p.name for p in tmp_path.glob("wfo.log*")) == [
        "wfo.log",
        "wfo.log.1",
        "wfo.log.2",
    ]
    posted = [json.loads(r["body"]) for r in server.requests]
    assert posted[0]["logger"] == "wfo_kit.workflow"
    assert posted[0]["event"] == "run_started"
    assert {p["run_id"] for p in posted} == {f"run-{n}" for n in range(8)}


def test_failing_sinks_never_fail_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    config = LoggingConfig(
        file=str(blocker / "wfo.log"),  # a folder that is a file: cannot be opened
        database=str(tmp_path / "logs.sqlite"),
        http="http://127.0.0.1:9/collect",  # nothing listens
    )
    sinks = open_sinks(config)
    ctx = run_with(sinks)
    sinks.close()
    assert "valuations" in ctx.frames  # the run went on
    assert len(sinks.problems) == 2
    assert sinks.problems[0].startswith("log sink file: NotADirectoryError")
    assert sinks.problems[1].startswith("log sink http: URLError")
    assert sinks.written.get("http") is None  # dropped after its first failure
    assert len(query_logs(str(tmp_path / "logs.sqlite"))) == sinks.written["database"] == 5


def test_operations_settings_with_no_effect_are_reported(tmp_path: Path) -> None:
    from tests.conftest import SAMPLE
    from wfo_kit.config import resolve_config
    from wfo_kit.effects import setting_effects

    params = tmp_path / "p.yaml"
    params.write_text(
        f"data:\n  companies: {SAMPLE / 'companies.csv'}\n  financials: "
        f"{SAMPLE / 'financials.csv'}\n  peers: {{path: {SAMPLE / 'peers.csv'}, records: data}}\n",
        encoding="utf-8",
    )
    sets = [
        "notify.rules.run_succeeded=true",
        "notify.webhook.timeout=3",
        "logging.level=debug",
        "security.allowed_hosts=[api.example.org]",
    ]
    resolved = resolve_config(params, sets=sets, environ={})
    notes = dict(
        setting_effects(resolved.config, sources=resolved.sources)
        .select("setting", "note")
        .iter_rows()
    )
    assert notes == {
        "notify.rules.run_succeeded": "has no effect: no channel: set notify.webhook.url or "
        "notify.email.host",
        "notify.webhook.timeout": "has no effect: notify.webhook.url is unset",
        "logging.level": "has no effect: no log sink is set (logging.file, database, syslog, "
        "http or console)",
        "security.allowed_hosts": "has no effect: only confined runs (--confine, wfo serve) "
        "check the hosts of HTTP sources",
        "data.peers.records": "has no effect: only an HTTP source (url: https://...) reads it",
    }
    with_sink = resolve_config(
        None, sets=["logging.level=debug", "logging.console=true"], environ={}
    )
    assert setting_effects(with_sink.config, sources=with_sink.sources).height == 0


def test_confinement_keeps_log_files_inside_and_refuses_network_sinks_from_files(
    tmp_path: Path,
) -> None:
    from wfo_kit.config import resolve_config
    from wfo_kit.errors import ConfigurationError

    params = tmp_path / "p.yaml"
    params.write_text("logging: {file: logs/wfo.log, database: sqlite:///logs.sqlite}\n")
    inside = resolve_config(params, confine=tmp_path, environ={}).config.logging
    assert inside.file == str(tmp_path / "logs" / "wfo.log")  # relative to the parameters file
    assert inside.database == f"sqlite:///{tmp_path / 'logs.sqlite'}"
    for text, key in (
        ("logging: {file: ../escape.log}\n", "logging.file"),
        ("logging: {database: /tmp/x.sqlite}\n", "logging.database"),
        ("logging: {http: 'http://10.0.0.1/'}\n", "logging.http"),
        ("logging: {syslog: '10.0.0.1:514'}\n", "logging.syslog"),
    ):
        params.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigurationError) as refused:
            resolve_config(params, confine=tmp_path, environ={})
        assert key in refused.value.one_line()


def test_a_long_run_reaches_the_database_sink_while_it_runs(tmp_path: Path) -> None:
    """`wfo run`'s validate row is in the database while its notebook is still executing."""
    import subprocess
    import sys
    import time

    from tests.builders import notebook, params

    go, database = tmp_path / "go", tmp_path / "logs.sqlite"
    # The notebook runs load and validate, then waits (at most 150 s) for the test's go file.
    body = (
        "import time\nfrom pathlib import Path\nimport wfo_kit as wfo\n"
        "config = wfo.Config.model_validate({'data': data or wfo.sample_data(),"
        " 'valuation': valuation, 'pipeline': pipeline})\n"
        "ctx = wfo.start_run(config, run_dir=run_dir, run_id=run_id)\n"
        "wfo.run_steps(ctx, ['load', 'validate'])\n"
        "deadline = time.monotonic() + 150\n"
        f"while not Path({str(go)!r}).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    slow = notebook(tmp_path / "slow.ipynb", body)
    p = params(tmp_path, "p", f"report:\n  notebook: {slow}\nlogging:\n  database: {database}\n")
    wfo = str(Path(sys.executable).parent / "wfo")
    command = [wfo, "run", str(p), "--output", str(tmp_path / "out"), "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[dict] = []
    deadline = time.monotonic() + 120  # a cold start on a loaded machine: generous
    try:
        while time.monotonic() < deadline and proc.poll() is None and not seen:
            if database.is_file():
                seen = query_logs(str(database), step="validate", level="info")
            time.sleep(0.1)
    finally:
        go.touch()  # the row arrived while the run waits (or it never did): let the run end
        try:
            _, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert seen, "no validate row while the run was running"
    assert seen[0]["event"] == "step_finished"
    assert proc.returncode == 0, stderr
    rows = query_logs(str(database))
    events = [(r["event"], r["step"]) for r in rows]
    assert len(rows) == len({(r["time"], r["event"], r["step"]) for r in rows})  # once each
    assert events[-1] == ("run_finished", None)
    assert ("step_finished", "publish") in events
    assert {r["run_id"] for r in rows} == {seen[0]["run_id"]}


@pytest.mark.parametrize("scheme", ["sqlite", "duckdb"])
def test_a_log_database_whose_table_is_not_made_yet_has_no_rows(
    tmp_path: Path, scheme: str
) -> None:
    # A sink creates the file, then its table: a reader in between (`wfo logs` while a run
    # starts) got "no such table: wfo_log".
    url = f"{scheme}:///{tmp_path / 'logs.db'}"
    connect_log_db(url).close()  # the file, no table
    assert query_logs(url) == []
    connect_log_db(url, create=True).close()
    assert query_logs(url, step="validate") == []
