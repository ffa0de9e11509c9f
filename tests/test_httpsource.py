"""HTTP API sources against a real server on loopback: retries, pagination, run id, confinement."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import SAMPLE
from tests.opservers import Receiver, http_receiver
from wfo_kit.config import Config, TableSource, resolve_config
from wfo_kit.errors import ConfigurationError, DataFormatError, SourceUnavailableError
from wfo_kit.httpsource import check_addresses, fetch
from wfo_kit.io import read_table
from wfo_kit.pipeline import RunContext, run_step

PEERS = pl.read_csv(SAMPLE / "peers.csv", infer_schema=False)
BODY = json.dumps(PEERS.to_dicts()).encode()
JSON = {"Content-Type": "application/json"}


def expected_peers() -> pl.DataFrame:
    return read_table(TableSource(path=str(SAMPLE / "peers.csv")), table="peers")


def config_with(peers: dict, **sections: dict) -> Config:
    data = {
        "companies": str(SAMPLE / "companies.csv"),
        "financials": str(SAMPLE / "financials.csv"),
    }
    return Config.model_validate({"data": {**data, "peers": peers}, **sections})


def test_load_step_retries_5xx_and_429_with_retry_after_then_reads_the_answer() -> None:
    answers = [503, (429, {"Retry-After": "7"}, b"{}")]
    with http_receiver(Receiver(answers=answers, then=(200, JSON, BODY))) as server:
        config = config_with({"url": f"{server.url}/peers?key=${{HOME}}"})
        waits: list[float] = []
        ctx = RunContext(config, sleep=waits.append)
        run_step(ctx, "load")
    assert len(server.requests) == 3
    retries = [e for e in ctx.events if e["event"] == "step_retrying"]
    assert [r["error"]["class"] for r in retries] == ["SourceUnavailableError"] * 2
    assert "HTTP 503" in retries[0]["error"]["message"]
    assert "key=" not in retries[0]["error"]["message"]  # the query string may hold a key
    assert waits[1] >= 7  # the server's Retry-After, above the policy's 1 s backoff
    assert_frame_equal(ctx["input_peers"], expected_peers())


def test_gives_up_after_the_policy_and_4xx_is_not_retried() -> None:
    with http_receiver(Receiver(then=502)) as server:
        config = config_with({"url": server.url}, pipeline={"retry": {"attempts": 2}})
        ctx = RunContext(config, sleep=lambda _s: None)
        with pytest.raises(SourceUnavailableError, match="gave up after 2 attempts"):
            run_step(ctx, "load")
    with http_receiver(Receiver(then=404)) as server:
        ctx = RunContext(config_with({"url": server.url}), sleep=lambda _s: None)
        with pytest.raises(DataFormatError, match="HTTP 404"):
            run_step(ctx, "load")
        assert len(server.requests) == 1


def test_pages_by_number_and_by_link_header_with_a_header_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEERS_TOKEN", "t0ken")
    half = PEERS.height // 2
    pages = [PEERS.head(half), PEERS.tail(PEERS.height - half)]
    bodies = [(200, JSON, json.dumps({"data": p.to_dicts()}).encode()) for p in pages]
    with http_receiver(Receiver(answers=[*bodies, (200, JSON, b'{"data": []}')])) as server:
        source = TableSource(
            url=f"{server.url}/v1/peers",
            records="data",
            headers={"Authorization": "Bearer ${PEERS_TOKEN}"},
            pagination={"style": "page", "page_param": "p"},
        )
        got = fetch(source, table="peers")
    assert [r["path"] for r in server.requests] == [f"/v1/peers?p={n}" for n in (1, 2, 3)]
    assert server.requests[0]["headers"]["Authorization"] == "Bearer t0ken"
    assert_frame_equal(got.frame, PEERS)
    csv = [p.write_csv().encode() for p in pages]
    with http_receiver() as server:
        link = {"Link": f'<{server.url}/next>; rel="next"', "Content-Type": "text/csv"}
        server.answers = [(200, link, csv[0]), (200, {"Content-Type": "text/csv"}, csv[1])]
        source = TableSource(url=server.url, format="csv", pagination={"style": "link"})
        got = fetch(source, table="peers")
    assert [r["path"] for r in server.requests] == ["/", "/next"]
    assert_frame_equal(got.frame, PEERS)
    assert got.pages == 2


def test_a_credential_header_must_come_from_the_environment() -> None:
    peers = {"url": "https://x.example/p", "headers": {"Authorization": "Bearer abc"}}
    with pytest.raises(ConfigurationError, match="Authorization: write the credential as"):
        resolve_config(None, overrides={"data": {"peers": peers}}, environ={})


@pytest.mark.e2e
def test_the_response_is_hashed_into_the_run_id_and_snapshot_for_the_kernel(
    tmp_path: Path,
) -> None:
    from tests.builders import notebook
    from tests.test_notify import PIPELINE_ONLY
    from wfo_kit.runs import run_report

    book = notebook(tmp_path / "pipeline.ipynb", PIPELINE_ONLY)
    with http_receiver(Receiver(answers=[500, 503], then=(200, JSON, BODY))) as server:
        overrides = {
            "data": {
                "companies": str(SAMPLE / "companies.csv"),
                "financials": str(SAMPLE / "financials.csv"),
                "peers": {"url": f"{server.url}/peers"},
            },
            "valuation": {"monte_carlo": {"enabled": False}, "sensitivity": {"enabled": False}},
            "report": {"notebook": str(book)},
            "pipeline": {"retry": {"backoff_seconds": 0.01}},
        }
        resolved = resolve_config(None, overrides=overrides)
        result = run_report(resolved, output_root=tmp_path / "out", reuse_kernel=True)
    assert result.status == "succeeded", result.error
    assert len(server.requests) == 3  # fetched once, before the run: the kernel read the snapshot
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    digest = hashlib.sha256(hashlib.sha256(BODY).digest()).hexdigest()
    assert manifest["inputs_sha256"]["peers"] == digest
    assert manifest["config"]["data"]["peers"]["url"] == f"{server.url}/peers"
    snapshot = pl.read_parquet(result.run_dir / "inputs" / "peers.parquet")
    assert_frame_equal(snapshot, PEERS)
    assert (result.run_dir / "results" / "peer_multiples.parquet").is_file()


def test_confinement_allows_listed_hosts_and_refuses_private_addresses(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/peers"
    base = {"companies": "c.csv", "financials": "f.csv"}
    for name in base.values():
        (tmp_path / name).write_text("x\n", encoding="utf-8")
    params = tmp_path / "p.yaml"
    params.write_text(f"data: {{companies: c.csv, financials: f.csv, peers: {{url: '{url}'}}}}\n")
    with pytest.raises(
        ConfigurationError, match=r"host '127\.0\.0\.1' is not in security\.allowed"
    ):
        resolve_config(params, confine=tmp_path, environ={})
    listed = {"WFO_SECURITY__ALLOWED_HOSTS": "[127.0.0.1]"}
    assert resolve_config(params, confine=tmp_path, environ=listed).config.security.allowed_hosts

    def resolver(addresses: dict[str, list[str]]):
        return lambda host: addresses[host]

    dns = resolver({"api.example.com": ["93.184.216.34", "10.0.0.5"], "meta": ["169.254.169.254"],
                    "localhost": ["127.0.0.1", "::1"]})  # fmt: skip
    check_addresses("https://api.example.com/x", ["api.example.com", "10.0.0.0/8"], table="peers",
                    resolve=dns)  # fmt: skip
    for host, listed_hosts in (
        ("api.example.com", ["api.example.com"]),  # one of its addresses is private
        ("meta", ["meta"]),  # link-local (cloud metadata)
        ("localhost", ["localhost", "127.0.0.1"]),  # ::1 is loopback too, and not listed
    ):
        with pytest.raises(ConfigurationError, match="non-public address"):
            check_addresses(f"https://{host}/x", listed_hosts, table="peers", resolve=dns)


def test_confinement_checks_real_resolution_and_does_not_follow_redirects(tmp_path: Path) -> None:
    with http_receiver() as server:
        server.answers = [(302, {"Location": "http://169.254.169.254/"}, b"")]
        port = server.url.rsplit(":", 1)[1]
        security = Config(security={"confine": str(tmp_path),
                                    "allowed_hosts": ["127.0.0.1"]}).security  # fmt: skip
        with pytest.raises(DataFormatError, match=r"HTTP 302 .* redirects"):
            fetch(TableSource(url=server.url), table="peers", security=security)
        localhost = TableSource(url=f"http://localhost:{port}/")
        named = security.model_copy(update={"allowed_hosts": ["localhost"]})
        with pytest.raises(ConfigurationError, match=r"resolves to .*non-public"):
            fetch(localhost, table="peers", security=named)
    assert len(server.requests) == 1  # the refused host was never contacted


def test_confined_requests_go_to_the_address_that_was_checked(tmp_path: Path) -> None:
    with http_receiver(Receiver(then=(200, JSON, BODY))) as server:
        port = server.url.rsplit(":", 1)[1]
        hosts = ["data.example", "127.0.0.1"]
        security = Config(security={"confine": str(tmp_path), "allowed_hosts": hosts}).security
        # data.example resolves nowhere for real: only the checked (pinned) address is used.
        source = TableSource(url=f"http://data.example:{port}/peers")
        got = fetch(source, table="peers", security=security, resolve=lambda _h: ["127.0.0.1"])
    assert_frame_equal(got.frame, PEERS)
    assert server.requests[0]["headers"]["Host"] == f"data.example:{port}"


def test_a_snapshot_that_does_not_fit_on_the_disk_fails_the_run_cleanly(tmp_path: Path) -> None:
    """The response is fetched, its snapshot does not fit the output disk (a 1 MB tmpfs): exit 3,
    one line, and the run is finished as failed, not left as a `.partial` folder."""
    import os
    import subprocess
    import sys

    from tests.test_faults import one_line, small_disk

    # ~2 MB of Parquet even compressed: random hex does not shrink much
    rows = [{"company_id": os.urandom(16).hex(), "multiple": os.urandom(16).hex()}
            for _ in range(60_000)]  # fmt: skip
    big = json.dumps(rows).encode()
    out = tmp_path / "out"
    with http_receiver(Receiver(then=(200, JSON, big))) as server, small_disk(out, "1m"):
        p = tmp_path / "p.yaml"
        p.write_text(
            f"data:\n  companies: {SAMPLE / 'companies.csv'}\n"
            f"  financials: {SAMPLE / 'financials.csv'}\n  peers: {{url: '{server.url}/peers'}}\n",
            encoding="utf-8",
        )
        wfo = str(Path(sys.executable).parent / "wfo")
        result = subprocess.run(
            [wfo, "run", str(p), "--output", str(out), "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        line = one_line(result.stderr)
        assert result.returncode == 3, result.stderr
        assert "data.peers: the HTTP response could not be saved in the run" in line
        assert "No space left on device" in line
        folders = [p for p in out.iterdir() if p.is_dir()]
        assert [p.name for p in folders if p.name.startswith(".")] == []  # no .partial left
        (run,) = folders
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["status"] == "failed"
        assert "data.peers" in manifest["error"]["message"]
        assert "FAILED" in (run / "report.html").read_text(encoding="utf-8")
        assert list((run / "inputs").iterdir()) == []  # no half-written snapshot either
