"""Docs generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from wfo_kit.schemas import contract_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_data_contract_doc_is_current() -> None:
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert doc == contract_markdown() + "\n", "run `python -m wfo_kit.schemas` to regenerate"


def test_sample_generator_reproduces_the_bundled_files(tmp_path: Path) -> None:
    from wfo_kit.sample_data.generate import build, write

    write(build(), tmp_path)
    for name in ("companies", "financials", "peers", "balance_sheet"):
        bundled = ROOT / "wfo_kit" / "sample_data" / f"{name}.csv"
        assert (tmp_path / f"{name}.csv").read_bytes() == bundled.read_bytes(), name


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_lab_serves_the_project_root_and_runs_as_root() -> None:
    """Issue 12 item 11: `make lab` opens at the project root (parameters/, outputs/, docs/
    reachable) and starts for root too (--allow-root added when uid is 0)."""
    import json
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    port, token = _free_port(), "wfo-test-token"
    args = f"--no-browser --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    lab = subprocess.Popen(
        ["make", "-s", "-o", ".venv/.wfo-installed", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        listing = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lab.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/contents/?token={token}"
                with urllib.request.urlopen(url, timeout=2) as response:
                    listing = json.load(response)
                break
            except OSError:
                time.sleep(0.3)
        assert listing is not None, f"make lab did not serve (exit code {lab.poll()})"
        names = {item["name"] for item in listing["content"]}
        assert {"parameters", "outputs", "docs", "notebooks", "README.md"} <= names
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
