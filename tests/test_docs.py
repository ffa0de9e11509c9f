"""Docs generated from code stay in step with it."""

from __future__ import annotations

import re
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


# Paths the README names that are not files of this repository, by design: the reader's own data
# folder of the "Your own data" example, run outputs and a run folder's `results/`, the virtualenv
# `make setup` creates, a path relative to a parameters file (`../`), an elided one (`.../`), and
# `serve/` named inside the `wfo_kit/` layout list.
NOT_REPO_PATHS = ("data/", "outputs/", "results/", ".venv/", "../", ".../", "serve/")
_PATH = re.compile(r"^[\w.][\w./*-]*(?:/|\.(?:ya?ml|md|py|ipynb|csv|parquet|json|js|css|toml))$")


def readme_paths(text: str) -> set[str]:
    """Every repository path the README's examples and links name: link targets, words in
    ``sh``/``python``/``yaml`` examples and in inline code that look like a path."""
    found = set(re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text))
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    commands = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    for chunk, bare in [*[(c, True) for c in commands], *[(c, False) for c in [*blocks, *inline]]]:
        for word in re.split(r"[\s=(),\[\]{}]+", chunk):
            word = word.strip("\"'`:;,")
            named = "/" in word or (bare and not word.startswith("-"))  # a command's argument
            if named and _PATH.match(word) and not word.startswith(NOT_REPO_PATHS):
                found.add(word)
    # placeholders are in capitals: DATA_ROOT/..., OUTPUT/users.json
    return {p for p in found if not p.startswith("http") and not re.match(r"[A-Z_]+/", p)}


def test_every_path_in_readme_examples_exists() -> None:
    """Issue 12 item 12: no example names a file the repository does not ship."""
    paths = readme_paths((ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"parameters/scenarios/bear.yaml", "parameters/scenarios/*.yaml"} <= paths
    missing = [
        p for p in sorted(paths) if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists())
    ]
    assert missing == []


def test_readme_path_finder_sees_a_missing_example() -> None:
    text = "```sh\nwfo run my.yaml\n```\nsee [x](docs/nothing.md) and `wfo_kit/none.py`"
    assert readme_paths(text) == {"my.yaml", "docs/nothing.md", "wfo_kit/none.py"}
