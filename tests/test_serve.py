"""`wfo serve` over a real socket: a `wfo serve` process on loopback with TLS (a certificate made
here), one warm worker; submit the sample, poll it, fetch its report and every result format; the
role matrix endpoint by endpoint; problem details; confinement; cancel and the queue bound."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import ROOT, SAMPLE
from tests.opservers import make_certificate
from wfo_kit.cli import main
from wfo_kit.serve.users import TokenVerifier, add_user, load_users, revoke_user

e2e = pytest.mark.e2e

DATA = "".join(f"  {t}: {t}.csv\n" for t in ("companies", "financials", "peers", "balance_sheet"))
FAST = (
    f"data:\n{DATA}valuation:\n  monte_carlo: {{enabled: false}}\n"
    "  sensitivity: {enabled: false}\nreport:\n  title: Served over HTTP\n"
)
# A run still running when the test cancels it: warm kernels and the step cache made the sample
# valuation too quick to rely on, so 2,000,000 Monte Carlo draws per company (seconds).
SLOW = (
    f"data:\n{DATA}valuation:\n  sensitivity: {{enabled: false}}\n"
    "  monte_carlo: {draws: 2000000}\n"
)
YAML = {"Content-Type": "application/yaml"}
DONE = ("succeeded", "failed", "interrupted", "incomplete", "unreadable")
USERS = {"vic": "viewer", "alice": "analyst", "bob": "analyst", "ada": "admin"}


@dataclass
class Server:
    url: str
    tls: ssl.SSLContext
    tokens: dict[str, str]
    out: Path
    data: Path
    users: Path

    def client(self, user: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, verify=self.tls, headers=headers, timeout=60)

    def audit(self) -> list[dict]:
        lines = (self.out / "audit.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def spooled(self) -> list[str]:
        return sorted(p.name for p in self.data.glob(".wfo-serve-*"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    data, out = root / "data", root / "out"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    out.mkdir()
    users = out / "users.json"
    tokens = {name: add_user(users, name, role) for name, role in USERS.items()}
    cert, key = make_certificate(root)
    port = free_port()
    wfo = Path(sys.executable).parent / "wfo"
    command = [str(wfo), "serve", "--port", str(port), "--output", str(out)]
    command += ["--data-root", str(data), "--workers", "1", "--queue", "2"]
    command += ["--certfile", str(cert), "--keyfile", str(key)]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    tls = ssl.create_default_context(cafile=str(cert))
    served = Server(f"https://127.0.0.1:{port}", tls, tokens, out, data, users)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (root / "server.log").read_text()
            try:
                if httpx.get(f"{served.url}/healthz", verify=tls, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not get ready in 120 s"
            time.sleep(0.3)
        yield served
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful stop: the pool stops with it
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    text = (root / "server.log").read_text()
    assert "Traceback" not in text, text


def wait_for(client: httpx.Client, run_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/runs/{run_id}").json()
        if body["status"] in DONE:
            return body
        assert time.monotonic() < deadline, f"run {run_id} still {body['status']}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def sample_run(server: Server) -> tuple[str, float]:
    """The sample, submitted by alice (an analyst) and polled until its report is there."""
    with server.client("alice") as client:
        started = time.perf_counter()
        response = client.post("/runs", content=FAST, headers=YAML)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        assert response.headers["location"] == f"/runs/{run_id}"
        assert response.json()["owner"] == "alice"
        assert response.json()["status"] in ("queued", "starting", "running")
        assert wait_for(client, run_id)["status"] == "succeeded"
        return run_id, time.perf_counter() - started


@e2e
def test_healthz_needs_no_token_and_tls_sends_hsts(server: Server) -> None:
    response = httpx.get(f"{server.url}/healthz", verify=server.tls)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "workers": 1,
        "queued": 0,
        "running": 0,
        "capacity": 2,
    }
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert response.headers["x-content-type-options"] == "nosniff"
    with pytest.raises(httpx.ConnectError):  # the certificate is checked: no other CA signs it
        httpx.get(f"{server.url}/healthz", verify=ssl.create_default_context())


@e2e
def test_submit_poll_report_and_every_result_format(
    server: Server, sample_run: tuple[str, float]
) -> None:
    run_id, seconds = sample_run
    assert seconds < 60
    with server.client("vic") as client:  # a viewer reads what an analyst ran
        run = client.get(f"/runs/{run_id}").json()
        assert run["owner"] == "alice"
        assert run["headline"]["companies"] == 40
        assert run["config"]["report"]["title"] == "Served over HTTP"
        assert run["config"]["security"]["confine"] == str(server.data.resolve())
        assert "valuations" in run["results"]

        report = client.get(run["links"]["report"])
        assert report.status_code == 200
        assert report.headers["content-type"] == "text/html; charset=utf-8"
        assert "sandbox allow-scripts" in report.headers["content-security-policy"]
        assert "Served over HTTP" in report.text

        for table in run["results"]:
            on_disk = pl.read_parquet(server.out / run_id / "results" / f"{table}.parquet")
            parquet = client.get(f"/runs/{run_id}/results/{table}.parquet")
            assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
            assert_frame_equal(pl.read_parquet(io.BytesIO(parquet.content)), on_disk)
            csv = client.get(f"/runs/{run_id}/results/{table}.csv")
            assert csv.headers["content-type"] == "text/csv; charset=utf-8"
            assert pl.read_csv(io.BytesIO(csv.content)).shape == on_disk.shape
            rows = client.get(f"/runs/{run_id}/results/{table}.json").json()
            assert len(rows) == on_disk.height
            if rows:
                assert list(rows[0]) == on_disk.columns

        log = client.get(f"/runs/{run_id}/log")
        assert log.headers["content-type"] == "application/x-ndjson"
        events = [json.loads(line)["event"] for line in log.text.splitlines()]
        assert events[0] == "run_started"
        assert events[-1] == "run_finished"

        mine = client.get("/runs", params={"owner": "alice", "status": "succeeded"}).json()
        assert run_id in [item["run_id"] for item in mine["items"]]
        assert client.get("/runs", params={"owner": "bob"}).json()["items"] == []
        page = client.get("/runs", params={"limit": 1}).json()
        assert len(page["items"]) == 1
        assert page["total"] >= 1

    manifest = json.loads((server.out / run_id / "manifest.json").read_text())
    assert manifest["owner"] == "alice"
    assert manifest["params_file"] == str(server.data.resolve() / f".wfo-serve-{run_id}.yaml")
    submitted = [a for a in server.audit() if a.get("run_id") == run_id and a["command"] == "serve"]
    assert submitted[0]["api_user"] == "alice"
    assert submitted[0]["status"] == 202
    assert submitted[0]["url"] == "/runs"


VALID = "valuation:\n  terminal_growth: 0.021\n"
INVALID = "valuation:\n  terminal_grwth: 0.021\n"  # refused before any run starts
ROLES = {"viewer": "vic", "analyst (owner)": "alice", "other analyst": "bob", "admin": "ada"}
# (endpoint as the README's role table names it, URL, body, expected status per role in ROLES):
# `{run}` is alice's finished sample run.
MATRIX = [
    ("GET /runs", "/runs", None, (200, 200, 200, 200)),
    ("GET /runs/{id}", "/runs/{run}", None, (200, 200, 200, 200)),
    ("GET /runs/{id}/manifest", "/runs/{run}/manifest", None, (200, 200, 200, 200)),
    ("GET /runs/{id}/log", "/runs/{run}/log", None, (200, 200, 200, 200)),
    ("GET /runs/{id}/notebook", "/runs/{run}/notebook", None, (200, 200, 200, 200)),
    ("GET /runs/{id}/report", "/runs/{run}/report", None, (200, 200, 200, 200)),
    (
        "GET /runs/{id}/results/{table}.{fmt}",
        "/runs/{run}/results/valuations.csv",
        None,
        (200, 200, 200, 200),
    ),
    ("GET /config/schema", "/config/schema", None, (200, 200, 200, 200)),
    ("GET /openapi.json", "/openapi.json", None, (200, 200, 200, 200)),
    ("GET /diff", "/diff?a={run}&b={run}", None, (200, 200, 200, 200)),
    ("GET /history", "/history", None, (200, 200, 200, 200)),
    ("POST /validate", "/validate", VALID, (403, 200, 200, 200)),
    ("POST /runs", "/runs", INVALID, (403, 422, 422, 422)),
    # an invalid flag: refused (422) after the role check, so that no run is queued here
    (
        "POST /runs/{id}/rerun",
        "/runs/{run}/rerun?accept_changed_inputs=maybe",
        None,
        (403, 422, 422, 422),
    ),
    ("POST /runs/{id}/cancel", "/runs/{run}/cancel", None, (403, 409, 403, 409)),  # finished
]


def test_the_readme_role_table_is_the_tested_matrix() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Roles (tests/test_serve.py checks this table", 1)[1]
    table = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            if table:
                break
            continue
        endpoint, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        table[endpoint.strip("`")] = cells
    assert table.pop("GET /healthz") == ["no token needed"] * 3
    assert set(table) == {endpoint for endpoint, *_ in MATRIX}
    for endpoint, _, _, expected in MATRIX:
        viewer, owner, other, admin = (status != 403 for status in expected)
        analyst = {(True, True): "yes", (True, False): "own runs", (False, False): "no"}
        assert table[endpoint] == [
            "yes" if viewer else "no",
            analyst[(owner, other)],
            ("any run" if endpoint.endswith("cancel") else "yes") if admin else "no",
        ], endpoint


@e2e
@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize(
    ("endpoint", "path", "body", "expected"), MATRIX, ids=[m[0] for m in MATRIX]
)
def test_role_matrix(
    server: Server,
    sample_run: tuple[str, float],
    role: str,
    endpoint: str,
    path: str,
    body: str | None,
    expected: tuple[int, ...],
) -> None:
    method = endpoint.split()[0]
    url = path.replace("{run}", sample_run[0])
    with server.client(ROLES[role]) as client:
        response = client.request(method, url, content=body, headers=YAML if body else {})
    assert response.status_code == expected[list(ROLES).index(role)], response.text
    if response.status_code == 403:
        assert response.json()["type"] == "urn:wfo:problem:forbidden"


@e2e
@pytest.mark.parametrize(
    ("endpoint", "path", "body"), [m[:3] for m in MATRIX], ids=[m[0] for m in MATRIX]
)
def test_every_route_but_healthz_needs_a_valid_token(
    server: Server, sample_run: tuple[str, float], endpoint: str, path: str, body: str | None
) -> None:
    method = endpoint.split()[0]
    url = path.replace("{run}", sample_run[0])
    headers = YAML if body else {}
    with server.client() as client:
        missing = client.request(method, url, content=body, headers=headers)
        forged = client.request(
            method, url, content=body, headers={**headers, "Authorization": "Bearer wfo_x_y"}
        )
        stolen = server.tokens["ada"][:-2] + "xx"  # right id, wrong secret
        wrong = client.request(
            method, url, content=body, headers={**headers, "Authorization": f"Bearer {stolen}"}
        )
    for response in (missing, forged, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"


@e2e
def test_a_revoked_token_is_refused_at_once(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "add", "carol", "--role", "viewer", "--users", str(server.users)]) == 0
    token = capsys.readouterr().out.strip()
    headers = {"Authorization": f"Bearer {token}"}
    with server.client() as client:
        assert client.get("/runs", headers=headers).status_code == 200
        assert main(["users", "revoke", "carol", "--users", str(server.users)]) == 0
        assert client.get("/runs", headers=headers).status_code == 401


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert set(body) <= {"type", "title", "status", "detail", "field", "hint"}
    assert body["status"] == status
    assert body["type"].startswith("urn:wfo:problem:")
    assert body.get("field") == field
    assert "Traceback" not in response.text
    assert str(Path.cwd()) not in response.text
    return body


@e2e
def test_problem_details(server: Server, sample_run: tuple[str, float]) -> None:
    run_id = sample_run[0]
    with server.client("alice") as client:
        assert_problem(client.get("/runs/20991231T000000-api-000000"), 404, "run_id")
        assert_problem(client.get("/runs/a..b"), 422, "run_id")
        assert_problem(client.get("/runs/.hidden"), 422, "run_id")
        assert_problem(client.get("/runs/x/y/z/w"), 404)  # no such route
        assert_problem(client.get(f"/runs/{run_id}/results/nope.csv"), 404, "name")
        assert_problem(client.get(f"/runs/{run_id}/results/valuations.xlsx"), 422, "name")
        assert_problem(client.get("/runs", params={"limit": 0}), 422, "limit")
        assert_problem(client.get("/runs", params={"status": "done"}), 422, "status")
        unknown = assert_problem(
            client.post("/validate", content=INVALID, headers=YAML),
            422,
            "valuation.terminal_grwth",
        )
        assert "did you mean 'terminal_growth'" in unknown["detail"]
        assert unknown["hint"].startswith("known keys here:")
        malformed = assert_problem(
            client.post(
                "/runs", content='{"valuation": [', headers={"Content-Type": "application/json"}
            ),
            400,
        )
        assert malformed["detail"].startswith("cannot parse the request body")
        assert_problem(
            client.post("/runs", content="x", headers={"Content-Type": "text/html"}), 415
        )
        huge = "# padding\n" * 30_000
        assert_problem(client.post("/runs", content=huge, headers=YAML), 413)
        chunked = (chunk.encode() for chunk in [huge[:100_000]] * 3)  # no Content-Length
        assert_problem(client.post("/validate", content=chunked, headers=YAML), 413)
        assert_problem(client.delete("/runs"), 405)


@e2e
@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("data:\n  companies: /etc/passwd\n", "data.companies"),
        ("data:\n  companies: ../outside.csv\n", "data.companies"),
        ("data:\n  companies: link.csv\n", "data.companies"),  # a link that leaves the root
        ("data:\n  companies: {url: 'sqlite:////etc/x.db', table: t}\n", "data.companies"),
        ("report:\n  notebook: /etc/passwd\n", "report.notebook"),
        ("extends: ../../etc/passwd\n", "extends in the request body"),
        ("security:\n  confine: /\n", "security"),
    ],
    ids=["absolute", "dotdot", "link", "sqlite", "notebook", "extends", "security"],
)
def test_paths_outside_the_data_root_are_refused(server: Server, document: str, field: str) -> None:
    link = server.data / "link.csv"
    if not link.is_symlink():
        link.symlink_to("/etc/passwd")
    before = server.spooled()
    with server.client("alice") as client:
        for route in ("/validate", "/runs"):
            body = assert_problem(client.post(route, content=document, headers=YAML), 422, field)
            assert str(server.data.resolve()) not in body["detail"]
    assert server.spooled() == before  # a refused document leaves nothing behind


@e2e
def test_validate_a_json_document(server: Server) -> None:
    document = {"data": {"companies": "companies.csv"}, "valuation": {"terminal_growth": 0.031}}
    before = server.spooled()
    with server.client("alice") as client:
        response = client.post("/validate", json=document)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["config"]["valuation"]["terminal_growth"] == 0.031
    assert body["config"]["data"]["companies"]["path"] == str(server.data / "companies.csv")
    assert body["config"]["data"]["peers"] is None
    assert body["sources"]["valuation.terminal_growth"] == "request body"
    assert server.spooled() == before


@e2e
def test_openapi_and_the_configuration_schema(server: Server) -> None:
    with server.client("vic") as client:
        spec = client.get("/openapi.json").json()
        schema = client.get("/config/schema").json()
    routes = {(m.upper(), p) for p, methods in spec["paths"].items() for m in methods}
    assert {
        ("POST", "/runs"),
        ("GET", "/runs"),
        ("GET", "/runs/{run_id}"),
        ("GET", "/runs/{run_id}/log"),
        ("GET", "/runs/{run_id}/report"),
        ("GET", "/runs/{run_id}/results/{name}"),
        ("POST", "/runs/{run_id}/cancel"),
        ("POST", "/validate"),
        ("GET", "/config/schema"),
        ("GET", "/healthz"),
    } <= routes
    assert {"RunDetail", "RunList", "ProblemDetails", "CancelResult"} <= set(
        spec["components"]["schemas"]
    )
    submit = spec["paths"]["/runs"]["post"]
    assert {"application/yaml", "application/json"} <= set(submit["requestBody"]["content"])
    assert {"202", "401", "403", "413", "422", "429"} <= set(submit["responses"])
    assert {"data", "valuation", "report"} <= set(schema["properties"])


@e2e
def test_cancel_rights_and_the_queue_bound(server: Server, sample_run: tuple[str, float]) -> None:
    """One worker, a queue of 2: a slow run A runs, B and C wait, D is refused (429). Bob (an
    analyst) cannot cancel Alice's run; Alice cancels B, an admin cancels C, Alice stops A."""
    with server.client("alice") as alice, server.client("bob") as bob, server.client("ada") as ada:
        ids = []
        for document in (SLOW, FAST, FAST):
            response = alice.post("/runs", content=document, headers=YAML)
            assert response.status_code == 202, response.text
            ids.append(response.json()["run_id"])
            if document is SLOW:  # A on the worker before B and C wait (else C finds 2 waiting)
                deadline = time.monotonic() + 60
                while alice.get(f"/runs/{ids[0]}").json()["status"] != "running":
                    assert time.monotonic() < deadline, "run A never started"
                    time.sleep(0.05)
        a, b, c = ids
        full = alice.post("/runs", content=FAST, headers=YAML)
        assert_problem(full, 429)
        assert full.headers["retry-after"] == "10"
        assert [
            i["run_id"] for i in alice.get("/runs", params={"status": "queued"}).json()["items"]
        ] == [b, c]

        assert_problem(bob.post(f"/runs/{b}/cancel"), 403)
        assert alice.post(f"/runs/{b}/cancel").json() == {"run_id": b, "status": "cancelled"}
        assert ada.post(f"/runs/{c}/cancel").json() == {"run_id": c, "status": "cancelled"}
        for run_id, who in ((b, "alice"), (c, "ada")):
            run = alice.get(f"/runs/{run_id}").json()
            assert run["status"] == "interrupted"
            assert run["owner"] == "alice"
            assert run["error"]["message"] == f"cancelled by {who} before it started"
            assert alice.get(f"/runs/{run_id}/report").status_code == 200

        assert_problem(bob.post(f"/runs/{a}/cancel"), 403)
        stopping = alice.post(f"/runs/{a}/cancel")
        assert stopping.json() == {"run_id": a, "status": "cancelling"}, stopping.text
        run = wait_for(alice, a)
        assert run["status"] == "interrupted"
        assert "INTERRUPTED" in alice.get(f"/runs/{a}/report").text
        assert_problem(alice.post(f"/runs/{a}/cancel"), 409)
        assert_problem(ada.post(f"/runs/{sample_run[0]}/cancel"), 409)
    refused = [e for e in server.audit() if e.get("status") in (403, 429)]
    assert any(e["url"] == f"/runs/{b}/cancel" and e["api_user"] == "bob" for e in refused)
    assert any(e["url"] == "/runs" and e["status"] == 429 for e in refused)


def test_plain_http_has_no_hsts(tmp_path: Path) -> None:
    """An in-process uvicorn server (a real socket, no TLS, no workers started)."""
    import uvicorn

    from wfo_kit.serve.app import create_app
    from wfo_kit.serve.settings import ServeSettings

    settings = ServeSettings(output_root=tmp_path / "out", data_root=tmp_path, prewarm=False)
    port = free_port()
    config = uvicorn.Config(create_app(settings), port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert response.status_code == 200
        assert "strict-transport-security" not in response.headers
        assert httpx.get(f"http://127.0.0.1:{port}/runs").status_code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_users_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["users", "add", "alice", "--role", "analyst", "--output", str(out)]) == 0
    printed = capsys.readouterr()
    token = printed.out.strip()
    assert token.startswith("wfo_")
    assert "shown only now" in printed.err
    path = out / "users.json"
    assert (path.stat().st_mode & 0o777) == 0o600
    stored = path.read_text()
    assert token not in stored
    assert token.rpartition("_")[2] not in stored
    assert load_users(path)[0].token_hash.startswith("$argon2id$")

    assert main(["users", "add", "alice", "--role", "admin", "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["users", "list", "--output", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing
    assert "analyst" in listing
    assert "argon2" not in listing
    assert main(["users", "revoke", "alcie", "--output", str(out)]) == 2
    assert "did you mean 'alice'" in capsys.readouterr().err
    assert main(["users", "add", "Alice!", "--role", "viewer", "--output", str(out)]) == 2
    assert main(["users", "revoke", "alice", "--output", str(out)]) == 0
    assert main(["users", "list", "--output", str(out)]) == 0
    assert "revoked" in capsys.readouterr().out


def test_token_verifier_follows_the_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    token = add_user(path, "alice", "analyst")
    other = add_user(path, "bob", "viewer")
    verifier = TokenVerifier(path)
    alice = verifier.verify(token)
    assert alice is not None
    assert (alice.name, alice.role) == ("alice", "analyst")
    assert verifier.verify(token) == alice  # remembered: no second Argon2 check
    assert verifier.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert verifier.verify(other.replace("wfo_", "wfo_0", 1)) is None
    assert verifier.verify("") is None
    revoke_user(path, "alice")
    assert verifier.verify(token) is None
    bob = verifier.verify(other)
    assert bob is not None
    assert bob.role == "viewer"
