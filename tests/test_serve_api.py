"""`wfo serve` at scale, over real sockets: two `wfo serve` processes over one output folder, one
of them killed (SIGKILL, with its workers) in the middle of a queue and started again; uploads,
rerun, diff, history, /validate with data; Schemathesis against /openapi.json; a load test.

Every server is a real `wfo serve` process on loopback (plain HTTP: TLS is tested in
tests/test_serve.py), one warm worker each, sharing one output folder and one data root.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import polars as pl
import pytest

from tests.conftest import SAMPLE
from tests.test_serve import FAST, SLOW, YAML, free_port
from wfo_kit.serve.users import add_user

e2e = pytest.mark.e2e
USERS = {"vic": "viewer", "alice": "analyst", "ada": "admin"}
DONE = ("succeeded", "failed", "interrupted", "incomplete", "unreadable")
ONLY_PARAMETERS = (
    "data:\n  financials: financials.csv\n  peers: peers.csv\n"
    "valuation:\n  monte_carlo: {enabled: false}\n  sensitivity: {enabled: false}\n"
)


@dataclass
class Instance:
    """One `wfo serve` process."""

    url: str
    process: subprocess.Popen
    log: Path

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
        )


@dataclass
class Cluster:
    out: Path
    data: Path
    tokens: dict[str, str]
    servers: dict[str, Instance] = field(default_factory=dict)
    #: What the durability test saw, for the checks that follow it.
    killed: dict[str, object] = field(default_factory=dict)

    def client(self, server: str, user: str = "alice") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.Client(base_url=self.servers[server].url, headers=headers, timeout=60)

    def launch(self, name: str, *, queue: int = 5) -> Instance:
        port = free_port()
        wfo = Path(sys.executable).parent / "wfo"
        command = [str(wfo), "serve", "--port", str(port), "--output", str(self.out)]
        command += ["--data-root", str(self.data), "--workers", "1", "--queue", str(queue)]
        command += ["--max-upload-mb", "1"]
        log = self.out.parent / f"server-{name}-{port}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        instance = Instance(f"http://127.0.0.1:{port}", process, log)
        self.servers[name] = instance
        return instance

    def wait_ready(self, name: str, timeout: float = 150) -> None:
        instance = self.servers[name]
        deadline = time.monotonic() + timeout
        while True:
            assert instance.process.poll() is None, instance.log.read_text()
            try:
                if httpx.get(f"{instance.url}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server {name} not ready in {timeout} s"
            time.sleep(0.3)


def stop(instance: Instance, *, signalled: bool = False) -> None:
    """Ctrl-C (once: a second one makes uvicorn quit at once), then wait for a clean exit."""
    if instance.process.poll() is not None:
        return
    if not signalled:
        instance.process.send_signal(signal.SIGINT)
    try:
        instance.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(instance.process.pid, signal.SIGKILL)
        instance.process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Servers "a" and "b" over one output folder, started together."""
    root = tmp_path_factory.mktemp("serve-api")
    data, out = root / "data", root / "out"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    out.mkdir()
    tokens = {name: add_user(out / "users.json", name, role) for name, role in USERS.items()}
    shared = Cluster(out, data, tokens)
    try:
        shared.launch("a")
        shared.launch("b")
        shared.wait_ready("a")
        shared.wait_ready("b")
        yield shared
    finally:
        for instance in shared.servers.values():  # all at once: each waits for its worker
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGINT)
        for instance in shared.servers.values():
            stop(instance, signalled=True)
    for instance in shared.servers.values():
        if instance is not shared.killed.get("instance"):
            assert "Traceback" not in instance.log.read_text(), instance.log.read_text()


def wait_all(client: httpx.Client, run_ids: list[str], timeout: float = 150) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = {r: client.get(f"/runs/{r}").json() for r in run_ids}
        if all(run["status"] in DONE for run in runs.values()):
            return runs
        waiting = {r: run["status"] for r, run in runs.items() if run["status"] not in DONE}
        assert time.monotonic() < deadline, f"still waiting: {waiting}"
        time.sleep(0.3)


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def running_under(out: Path, server_pid: int) -> str | None:
    """A run executing in a worker of the server ``server_pid`` (by its partial manifest)."""
    for folder in out.glob(".*.partial"):
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        pid = manifest.get("pid")
        running = manifest.get("status") == "running" and isinstance(pid, int)
        if running and parent_pid(pid) == server_pid and (folder / "log.jsonl").is_file():
            return manifest["run_id"]
    return None


def audit_starts(out: Path) -> collections.Counter:
    lines = (out / "audit.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return collections.Counter(
        e["run_id"] for e in events if e.get("command") == "run" and e.get("outcome") == "started"
    )


def assert_ran_once(out: Path, run_ids: list[str]) -> None:
    """Each run has one final folder, nothing left waiting or half-built, and started once."""
    starts = audit_starts(out)
    for run_id in run_ids:
        assert (out / run_id / "manifest.json").is_file(), run_id
        assert not (out / f".{run_id}.queued").exists()
        assert not (out / f".{run_id}.partial").exists()
        assert starts[run_id] <= 1, f"{run_id} started {starts[run_id]} times"
        log = out / run_id / "log.jsonl"
        if log.is_file():  # the run's own start (the kernel's pipeline announces itself too)
            events = [json.loads(line) for line in log.read_text().splitlines()]
            own = [e for e in events if e["event"] == "run_started" and "publish" in e["steps"]]
            assert len(own) <= 1


@e2e
def test_a_killed_server_loses_no_accepted_run(cluster: Cluster) -> None:
    """Four runs through server a; a is killed (SIGKILL to it and its worker) while one of them
    runs; b goes on, a is started again: the run a was executing ends interrupted with the
    reason, every other one succeeds, none runs twice, and both servers list the same runs."""
    a = cluster.servers["a"]
    with cluster.client("a") as client:
        run_ids = []
        for _ in range(4):
            response = client.post("/runs", content=FAST, headers=YAML)
            assert response.status_code == 202, response.text
            assert response.json()["status"] in ("queued", "starting", "running")
            run_ids.append(response.json()["run_id"])
    for run_id in run_ids:  # accepted means recorded in the output folder, before it runs
        assert any(
            (cluster.out / name).is_dir()
            for name in (f".{run_id}.queued", f".{run_id}.partial", run_id)
        )
    deadline = time.monotonic() + 90
    while (victim := running_under(cluster.out, a.process.pid)) is None:
        assert time.monotonic() < deadline, "server a never ran one of the runs"
        time.sleep(0.05)
    os.killpg(a.process.pid, signal.SIGKILL)  # the server and its worker, mid-run
    a.process.wait()
    cluster.killed.update(instance=a, run_id=victim)
    cluster.launch("a2")
    cluster.wait_ready("a2")
    with cluster.client("b") as b_client, cluster.client("a2") as a2_client:
        runs = wait_all(b_client, run_ids)
        assert runs[victim]["status"] == "interrupted"
        assert "stopped during the run" in runs[victim]["error"]["message"]
        for run_id in set(run_ids) - {victim}:
            assert runs[run_id]["status"] == "succeeded", runs[run_id]
        assert "INTERRUPTED" in b_client.get(f"/runs/{victim}/report").text
        seen_by_b = {i["run_id"]: i["status"] for i in b_client.get("/runs").json()["items"]}
        seen_by_a2 = {i["run_id"]: i["status"] for i in a2_client.get("/runs").json()["items"]}
    assert seen_by_b == seen_by_a2
    assert set(run_ids) <= set(seen_by_b)
    assert_ran_once(cluster.out, run_ids)
    assert audit_starts(cluster.out)[run_ids[-1]] == 1


@e2e
def test_a_run_is_cancelled_through_the_other_server(cluster: Cluster) -> None:
    """A run executing on one server is stopped through the other: a cancel request in the
    shared folder, acted on by the server running it; the run ends interrupted, with its
    report, and the request is gone."""
    live = [
        n
        for n in ("b", "a2", "a")
        if n in cluster.servers and cluster.servers[n].process.poll() is None
    ]
    with cluster.client(live[0]) as client:
        response = client.post("/runs", content=SLOW, headers=YAML)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
    deadline = time.monotonic() + 90
    runner = None
    while runner is None:
        assert time.monotonic() < deadline, "the run never started"
        runner = next(
            (
                n
                for n in live
                if running_under(cluster.out, cluster.servers[n].process.pid) == run_id
            ),
            None,
        )
        time.sleep(0.05)
    other = next(n for n in live if n != runner)
    with cluster.client(other, "ada") as admin:
        stopping = admin.post(f"/runs/{run_id}/cancel")
        assert stopping.json() == {"run_id": run_id, "status": "cancelling"}, stopping.text
        (run,) = wait_all(admin, [run_id], timeout=60).values()
        assert run["status"] == "interrupted"
        assert "INTERRUPTED" in admin.get(f"/runs/{run_id}/report").text
    assert not (cluster.out / f".{run_id}.cancel").exists()
    assert_ran_once(cluster.out, [run_id])


def form(parameters: str | None, **tables: tuple[str, bytes]) -> dict:
    files = {name: (filename, content) for name, (filename, content) in tables.items()}
    if parameters is not None:
        files["parameters"] = ("parameters.yaml", parameters.encode(), "application/yaml")
    return files


@e2e
def test_uploads_rerun_notebook_manifest_diff_and_history(cluster: Cluster) -> None:
    """A run with its companies table uploaded (the other tables named from the data root),
    then run again from its manifest: every result table identical (GET /diff)."""
    companies = (cluster.data / "companies.csv").read_bytes()
    with cluster.client("b") as client:
        response = client.post(
            "/runs", files=form(ONLY_PARAMETERS, companies=("../../evil name.CSV", companies))
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        stored = cluster.data / ".wfo-uploads" / run_id / "companies.csv"
        assert stored.read_bytes() == companies  # stored under the table's name, not the client's
        (run,) = wait_all(client, [run_id]).values()
        assert run["status"] == "succeeded", run
        assert run["config"]["data"]["companies"]["path"] == str(stored)
        assert run["config"]["data"]["peers"]["path"] == str(cluster.data / "peers.csv")

        manifest = client.get(f"/runs/{run_id}/manifest").json()
        assert manifest["run_id"] == run_id
        assert manifest["inputs_sha256"]["companies"]
        notebook = client.get(f"/runs/{run_id}/notebook")
        assert notebook.headers["content-type"] == "application/x-ipynb+json"
        assert notebook.json()["cells"]

        rerun = client.post(f"/runs/{run_id}/rerun")
        assert rerun.status_code == 202, rerun.text
        again = rerun.json()["run_id"]
        (second,) = wait_all(client, [again]).values()
        assert second["status"] == "succeeded"
        assert second["rerun_of"] == run_id
        diff = client.get("/diff", params={"a": run_id, "b": again}).json()
        assert diff["tables"]
        assert {t["status"] for t in diff["tables"]} == {"identical"}, diff["tables"]
        assert all(v["change"] in (0, None) for v in diff["values"])
        assert diff["parameters"] == []

        history = client.get("/history").json()
        assert history["by_status"]["succeeded"] >= 2
        assert history["total"] == client.get("/runs").json()["total"]

        # Refusals: a file that is no table, a bad suffix, too big, a rerun of nothing.
        assert client.post("/runs", files=form(None, compnies=("c.csv", b"x"))).status_code == 422
        bad = client.post("/runs", files=form(None, companies=("c.exe", b"x")))
        assert bad.status_code == 415
        assert bad.json()["field"] == "companies"
        huge = client.post("/runs", files=form(None, companies=("c.csv", b"x" * 1_200_000)))
        assert huge.status_code == 413
        assert client.post("/runs/20990101T000000-api-000000/rerun").status_code == 404
        assert client.get("/diff", params={"a": run_id, "b": "nope"}).status_code == 404
    with cluster.client("b", "vic") as viewer:
        assert viewer.post(f"/runs/{run_id}/rerun").status_code == 403


@e2e
def test_validate_uploaded_data_returns_quality_and_quarantine(cluster: Cluster) -> None:
    companies = pl.read_csv(cluster.data / "companies.csv")
    first = companies["company_id"][0]
    broken = companies.with_columns(
        pl.when(pl.col("company_id") == first)
        .then(-1.0)
        .otherwise(pl.col("shares_diluted"))
        .alias("shares_diluted")
    )
    buffer = io.BytesIO()
    broken.write_csv(buffer)
    before = sorted(p.name for p in cluster.data.iterdir())
    with cluster.client("b") as client:
        response = client.post(
            "/validate", files=form(ONLY_PARAMETERS, companies=("c.csv", buffer.getvalue()))
        )
        assert response.status_code == 200, response.text
        body = response.json()
        quality = {q["table"]: q for q in body["quality"]}
        assert body["data_checked"] is True
        assert quality["companies"]["rows_in"] == companies.height
        assert quality["companies"]["rows_quarantined"] >= 1
        rows = [q for q in body["quarantine"] if q["table"] == "companies"]
        assert any(q["company_id"] == first and q["reason"] for q in rows), rows
        assert body["quarantine_total"] >= len(rows)
        plain = client.post("/validate", content=FAST, headers=YAML).json()  # data root only
        assert {q["table"] for q in plain["quality"]} >= {"companies", "financials"}
        assert (
            client.post(
                "/validate", content=FAST, headers=YAML, params={"check_data": False}
            ).json()["data_checked"]
            is False
        )
    with cluster.client("b", "vic") as viewer:
        assert viewer.post("/validate", content=FAST, headers=YAML).status_code == 403
    assert sorted(p.name for p in cluster.data.iterdir()) == before  # nothing left behind


@e2e
def test_schemathesis_against_the_openapi_schema(cluster: Cluster) -> None:
    """Every operation of /openapi.json, with generated requests (authenticated as an admin):
    no 5xx, and every response matches the schema documented for it."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    url = cluster.servers["b"].url
    headers = {"Authorization": f"Bearer {cluster.tokens['ada']}"}
    spec = httpx.get(f"{url}/openapi.json", headers=headers).json()
    schema = schemathesis.openapi.from_dict(spec)
    checks = [
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
        content_type_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    def fuzz(operation: object) -> None:
        @given(case=operation.as_strategy())  # type: ignore[attr-defined]
        @settings(
            max_examples=int(os.environ.get("WFO_FUZZ_EXAMPLES", "4")),  # bounded: suite time
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: object) -> None:
            response = case.call_and_validate(base_url=url, headers=headers, checks=checks)  # type: ignore[attr-defined]
            seen[response.status_code] += 1

        check()

    seen: collections.Counter = collections.Counter()
    for operation in operations:
        fuzz(operation)
    assert sum(seen.values()) >= 3 * len(operations)
    assert seen[200] + seen[202] > 0, seen  # valid requests were generated too, not only refusals


@e2e
def test_under_load(cluster: Cluster) -> None:
    """Fifty submissions at once over both servers and a stream of reads from four clients: no
    5xx; beyond the queue bound 429 with Retry-After; every accepted run ends succeeded or
    failed with its reason, once; the servers' memory stays bounded (RSS growth < 150 MB)."""
    names = ("b", "a2" if "a2" in cluster.servers else "a")  # a2: a, started again
    rss_before = {n: cluster.servers[n].rss_kb() for n in names}
    statuses: collections.Counter = collections.Counter()
    accepted: list[str] = []
    lock = threading.Lock()
    stop_reading = threading.Event()
    with cluster.client("b") as probe:
        finished = next(
            i["run_id"] for i in probe.get("/runs", params={"status": "succeeded"}).json()["items"]
        )

    def submit(i: int) -> None:
        with cluster.client(names[i % 2]) as client:
            response = client.post("/runs", content=FAST, headers=YAML)
        with lock:
            statuses[response.status_code] += 1
            if response.status_code == 202:
                accepted.append(response.json()["run_id"])
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) > 0

    def read(i: int) -> int:
        count = 0
        with cluster.client(names[i % 2], "vic") as client:
            while not stop_reading.is_set():
                for url in ("/runs", f"/runs/{finished}", f"/runs/{finished}/report", "/history"):
                    response = client.get(url)
                    with lock:
                        statuses[response.status_code] += 1
                    assert response.status_code == 200, (url, response.text)
                    count += 1
        return count

    started = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=54) as pool:
        readers = [pool.submit(read, i) for i in range(4)]
        try:
            list(pool.map(submit, range(50)))
            with cluster.client("b") as client:
                runs = wait_all(client, list(accepted), timeout=150)
            while time.monotonic() - started < 15:  # reads go on for 15 s at least
                time.sleep(0.2)
        finally:  # a failure above fails the test; the readers must still stop, or it hangs
            stop_reading.set()
        reads = sum(f.result() for f in readers)
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses[202] == len(accepted) >= 5
    assert statuses[202] + statuses[429] == 50
    assert statuses[429] > 0
    for run in runs.values():
        assert run["status"] in ("succeeded", "failed"), run
        if run["status"] == "failed":
            assert run["error"]["message"]
    assert_ran_once(cluster.out, accepted)
    rss_after = {n: cluster.servers[n].rss_kb() for n in names}
    for name in names:
        assert rss_after[name] - rss_before[name] < 150 * 1024, (rss_before, rss_after)
    print(
        f"load: {len(accepted)} accepted, {statuses[429]} refused (429), {reads} reads, "
        f"RSS KB {rss_before} -> {rss_after}"
    )


@e2e
def test_docs_are_served_without_any_outside_host(cluster: Cluster) -> None:
    """/docs and every asset it loads come from the server itself; the schema needs a token."""
    import re

    url = cluster.servers["b"].url
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(references) == 4
    init = ""
    for reference in references:
        assert reference.startswith("/docs/assets/"), reference  # no scheme, no host: this origin
        asset = httpx.get(f"{url}{reference}")
        assert asset.status_code == 200, reference
        init = asset.text if reference.endswith("docs-init.js") else init
    assert "validatorUrl: null" in init
    assert not re.search(r"https?://", page.text + init)
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    assert httpx.get(f"{url}/docs/assets/..%2Fapp.py").status_code == 404


def test_first_admin_token_is_printed_once(tmp_path: Path) -> None:
    """`make serve`'s `--first-admin`: an empty users file gets an admin whose token is printed
    (it verifies); a users file with a user gets no new user and no token printed."""
    from tests.conftest import ROOT
    from wfo_kit.serve.users import TokenVerifier, load_users

    recipe = (ROOT / "Makefile").read_text().split("\nserve: setup\n", 1)[1].split("\n\n", 1)[0]
    assert "wfo serve --data-root outputs/serve-data --output outputs --first-admin admin" in recipe
    out = tmp_path / "out"
    wfo = Path(sys.executable).parent / "wfo"
    command = [str(wfo), "serve", "--port", str(free_port()), "--output", str(out)]
    command += ["--data-root", str(tmp_path), "--first-admin", "admin"]

    def start() -> tuple[str, str]:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        assert process.stderr is not None
        lines = []
        while not (line := process.stderr.readline().decode()).startswith("wfo serve:"):
            assert line, lines
            lines.append(line)
        os.killpg(process.pid, signal.SIGKILL)  # the banner is printed: the users file is done
        stdout, stderr = process.communicate(timeout=30)
        return stdout.decode(), "".join(lines) + line + stderr.decode()

    printed, said = start()
    token = printed.strip()
    assert token.startswith("wfo_")
    assert "admin (admin), the first user" in said
    (admin,) = load_users(out / "users.json")
    assert (admin.name, admin.role) == ("admin", "admin")
    user = TokenVerifier(out / "users.json").verify(token)
    assert user is not None
    assert user.role == "admin"
    printed, said = start()
    assert printed == ""  # never an existing user's token
    assert "the first user" not in said
    assert len(load_users(out / "users.json")) == 1


@e2e
def test_runs_execute_on_a_dask_cluster(tmp_path: Path) -> None:
    """`wfo serve --scheduler`: a submission runs in the Dask cluster's worker process (a
    LocalCluster on loopback), not in a local worker; it ends succeeded, with its report."""
    from distributed import Client, LocalCluster

    from tests.builders import notebook

    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    notebook(data / "fine.ipynb", "x = 41 + 1\nprint(x)")
    token = add_user(out / "users.json", "alice", "analyst")
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # its HTTP server on loopback, on a free port
    ) as dask_cluster:
        with Client(dask_cluster.scheduler_address) as dask_client:
            worker_pids = set(dask_client.run(os.getpid).values())
        port = free_port()
        command = [str(Path(sys.executable).parent / "wfo"), "serve", "--port", str(port)]
        command += ["--output", str(out), "--data-root", str(data)]
        command += ["--scheduler", dask_cluster.scheduler_address]
        log = tmp_path / "server.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        served = Cluster(out, data, {"alice": token})
        served.servers["d"] = Instance(f"http://127.0.0.1:{port}", process, log)
        try:
            served.wait_ready("d", timeout=60)
            with served.client("d") as client:
                ids = []
                for growth in ("0.01",):  # one run: a cold worker's first run costs most
                    document = "report:\n  notebook: fine.ipynb\nvaluation:\n"
                    document += f"  terminal_growth: {growth}\n"
                    response = client.post("/runs", content=document, headers=YAML)
                    assert response.status_code == 202, response.text
                    ids.append(response.json()["run_id"])
                runs = wait_all(client, ids, timeout=120)
                assert {r["status"] for r in runs.values()} == {"succeeded"}, runs
                assert client.get(f"/runs/{ids[0]}/report").status_code == 200
        finally:
            stop(served.servers["d"])
    for run_id in ids:
        manifest = json.loads((out / run_id / "manifest.json").read_text())
        assert manifest["pid"] in worker_pids  # executed by the Dask worker
    assert "dask scheduler" in log.read_text().lower()
    assert "Traceback" not in log.read_text()


def test_a_run_between_claim_and_rename_is_not_reported_incomplete(tmp_path: Path) -> None:
    """The two instants of every run a poller can catch in its .partial folder (just claimed;
    final manifest written, rename pending) read as starting and running, not incomplete; a
    partial run whose process is gone reads as incomplete, with the reason."""
    import platform

    from wfo_kit.serve.index import RunIndex

    here = {"host": platform.node(), "pid": os.getpid()}
    gone = {"host": platform.node(), "pid": 2**22 + 17}  # above the default pid_max: no process
    cases = {
        "claimed": ({"status": "queued", **gone}, "starting"),
        "finishing": ({"status": "succeeded", **here}, "running"),
        "running": ({"status": "running", **here}, "running"),
        "orphan": ({"status": "running", **gone}, "incomplete"),
        "ended-orphan": ({"status": "failed", **gone}, "incomplete"),
    }
    for run_id, (manifest, _) in cases.items():
        folder = tmp_path / f".{run_id}.partial"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"run_id": run_id, **manifest}))
    (tmp_path / ".waiting.queued").mkdir()
    (tmp_path / ".waiting.queued" / "manifest.json").write_text('{"run_id": "waiting"}')
    (tmp_path / "bench").mkdir()  # not a run folder
    index = RunIndex(tmp_path)
    rows = {row["run_id"]: row for row in index.rows()}
    assert set(rows) == {*cases, "waiting"}
    assert rows["waiting"]["status"] == "queued"
    for run_id, (_, expected) in cases.items():
        assert rows[run_id]["status"] == expected, run_id
        found = index.find(run_id)
        assert found is not None
        assert found[1]["status"] == expected
    assert "its process is gone" in rows["orphan"]["error"]
    assert index.find("nope") is None

    # The listing is reused while the folder is unchanged (and settled), never once it changed.
    past = time.time() - 60
    os.utime(tmp_path, (past, past))
    assert len(index.rows()) == len(rows)
    assert index._listing is not None  # cached: the folder's time is over a second old
    (tmp_path / "claimed.json").write_text("{}")  # not a run: the folder changed all the same
    os.replace(tmp_path / ".waiting.queued", tmp_path / ".waiting.partial")
    (tmp_path / ".waiting.partial" / "manifest.json").write_text(
        json.dumps({"run_id": "waiting", "status": "running", **here})
    )
    assert {row["run_id"]: row["status"] for row in index.rows()}["waiting"] == "running"
