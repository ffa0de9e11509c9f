"""`wfo serve`: submit-to-report latency with a warm worker, and `GET /runs` over 1,000 runs.

One `wfo serve` process on loopback (one warm worker) over a copy of the sample data.

- ``serve_submit_to_report``: POST /runs with a parameters document naming the sample, poll
  GET /runs/{id} every 20 ms until it succeeded, then GET its report; against ``wfo run`` of the
  same document (a parameters file in the same folder) in a new process, as a user runs it.
  Turns are interleaved (served, CLI, served, ...). Goal: under 2 s and at least 3x faster.
- ``serve_list_runs_p95``: GET /runs (first page of 50) with 1,000 run folders in the output
  folder (copies of a real run's manifest, each its own id and start time), p95 over 300
  requests after a warm-up; against :func:`wfo_kit.history.run_history` over the same folder
  in this process (what GET /runs did per request before the index), without HTTP. Goal: p95
  under 50 ms.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import figure

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCUMENT = "".join(
    f"  {t}: {t}.csv\n" for t in ("companies", "financials", "peers", "balance_sheet")
)
DOCUMENT = f"data:\n{DOCUMENT}report:\n  title: bench\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(out: Path, data: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    command = [str(BIN / "wfo"), "serve", "--port", str(port), "--output", str(out)]
    command += ["--data-root", str(data), "--workers", "1", "--queue", "16"]
    log = (out.parent / "server.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError((out.parent / "server.log").read_text()[-2000:])
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            msg = "wfo serve did not get ready in 180 s"
            raise RuntimeError(msg)
        time.sleep(0.2)


def _served(client: object) -> str:
    response = client.post("/runs", content=DOCUMENT, headers={"Content-Type": "application/yaml"})  # type: ignore[attr-defined]
    response.raise_for_status()
    run_id = response.json()["run_id"]
    while True:
        status = client.get(f"/runs/{run_id}").json()["status"]  # type: ignore[attr-defined]
        if status == "succeeded":
            break
        if status in ("failed", "interrupted", "incomplete", "unreadable"):
            msg = f"run {run_id} {status}"
            raise RuntimeError(msg)
        time.sleep(0.02)
    report = client.get(f"/runs/{run_id}/report")  # type: ignore[attr-defined]
    report.raise_for_status()
    return run_id


def _cli(params: Path, out: Path) -> None:
    result = subprocess.run(
        [str(BIN / "wfo"), "run", str(params), "--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])


def _history(out: Path, template: Path, runs: int) -> None:
    """``runs`` run folders holding copies of ``template``'s manifest, one id and time each."""
    manifest = json.loads((template / "manifest.json").read_text())
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(runs):
        run_id = f"20260101T000000-hist-{n:06d}"
        folder = out / run_id
        folder.mkdir()
        started = start + dt.timedelta(minutes=n)
        copy = {
            **manifest,
            "run_id": run_id,
            "started": started.isoformat(),
            "finished": (started + dt.timedelta(seconds=3)).isoformat(),
            "owner": ("alice", "bob", None)[n % 3],
        }
        (folder / "manifest.json").write_text(json.dumps(copy))


def run(repeats: int = 5, requests: int = 300, history: int = 1000) -> list[dict]:
    import httpx

    from wfo_kit.history import run_history
    from wfo_kit.serve.users import add_user

    work = Path(tempfile.mkdtemp(prefix="wfo-bench-serve-"))
    data, out, cli_out = work / "data", work / "out", work / "cli"
    shutil.copytree(
        ROOT / "wfo_kit" / "sample_data",
        data,
        ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"),
    )
    out.mkdir()
    params = data / "bench.yaml"
    params.write_text(DOCUMENT, encoding="utf-8")
    token = add_user(out / "users.json", "bench", "analyst")
    process, url = _start(out, data)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            served: list[float] = []
            cli: list[float] = []
            last = _served(client)  # warm-up of both sides, untimed
            _cli(params, cli_out)
            for _ in range(repeats):
                tick = time.perf_counter()
                last = _served(client)
                served.append(time.perf_counter() - tick)
                tick = time.perf_counter()
                _cli(params, cli_out)
                cli.append(time.perf_counter() - tick)

            _history(out, out / last, history)
            for _ in range(20):
                client.get("/runs").raise_for_status()  # warm-up: the index reads each once
            listing: list[float] = []
            for _ in range(requests):
                tick = time.perf_counter()
                response = client.get("/runs")
                listing.append(time.perf_counter() - tick)
                response.raise_for_status()
            total = response.json()["total"]
        scans: list[float] = []
        for _ in range(7):
            tick = time.perf_counter()
            run_history(out)
            scans.append(time.perf_counter() - tick)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    p95 = statistics.quantiles(listing, n=20)[-1] * 1000
    return [
        figure(
            "serve_submit_to_report",
            value=statistics.median(served),
            unit="s/run",
            baseline="wfo run (new process)",
            baseline_value=statistics.median(cli),
            n=repeats,
            higher_is_better=False,
            value_samples=served,
            baseline_samples=cli,
            params={
                "goal": "value < 2 s and ratio <= 1/3",
                "ours": "POST /runs, poll GET /runs/{id} every 20 ms, GET report; one warm worker",
                "baseline": "wfo run DATA/bench.yaml --output DIR: the same document, a new "
                "process (imports, kernel start-up)",
                "document": DOCUMENT,
            },
        ),
        figure(
            "serve_list_runs_p95",
            value=p95,
            unit="ms",
            baseline="run_history scan, in process",
            baseline_value=statistics.median(scans) * 1000,
            n=requests,
            higher_is_better=False,
            value_samples=[t * 1000 for t in listing],
            baseline_samples=[t * 1000 for t in scans],
            params={
                "goal": "p95 < 50 ms",
                "runs_in_history": total,
                "ours": "GET /runs over loopback HTTP (first page of 50), manifests cached by "
                "mtime (RunIndex); p95 of the requests",
                "baseline": "wfo_kit.history.run_history(out): every manifest parsed, no HTTP "
                "(what GET /runs did per request before the index); median of 7",
                "median_ms": statistics.median(listing) * 1000,
            },
        ),
    ]
