"""``report.pdf: true`` (or ``wfo run --pdf``): the HTML report printed to ``report.pdf``.

Printed by headless Chromium (``--print-to-pdf``), the browser the tests already use: Debian's
``chromium`` on the PATH, or the executable named by ``WFO_CHROMIUM``. Charts are drawn before
the page is printed: the report inflates plotly.js and draws each chart in the page, so Chromium
is given virtual time (``--virtual-time-budget``) to run those scripts to the end first. A
missing browser is an :class:`~wfo_kit.errors.InfrastructureError` (exit code 3, like a missing
kernel), said before the run starts; a browser that fails or hangs (``timeout``) fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from wfo_kit.errors import InfrastructureError
from wfo_kit.io import atomic_path

#: Executables tried on the PATH when WFO_CHROMIUM is not set, in this order.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Milliseconds of page time Chromium runs scripts for before printing (plotly.js inflates and
#: every chart draws well within it; virtual time runs faster than the clock on an idle page).
VIRTUAL_TIME_MS = 30_000
#: Seconds the whole print may take before it is stopped.
TIMEOUT_S = 120.0
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-extensions", "--no-pdf-header-footer",
          "--run-all-compositor-stages-before-draw")  # fmt: skip


def find_chromium() -> str:
    """The Chromium executable: ``WFO_CHROMIUM`` if set, else the first of :data:`CANDIDATES`.

    Raises :class:`~wfo_kit.errors.InfrastructureError` (one line, with how to fix it) when there
    is none.
    """
    named = os.environ.get("WFO_CHROMIUM")
    if named is not None:
        found = shutil.which(named) if named else None
        if found is None:
            msg = f"WFO_CHROMIUM={named!r} is not an executable Chromium: cannot print report.pdf"
            raise InfrastructureError(msg, hint="point WFO_CHROMIUM at chromium, or unset it")
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    msg = "no Chromium found to print report.pdf (looked for chromium on the PATH)"
    raise InfrastructureError(
        msg, hint="apt-get install chromium, set WFO_CHROMIUM, or drop report.pdf / --pdf"
    )


def print_pdf(
    html: Path, target: Path, *, chromium: str | None = None, timeout: float = TIMEOUT_S
) -> Path:
    """Print ``html`` to ``target`` with headless Chromium (atomic write; checked to be a PDF)."""
    browser = chromium or find_chromium()
    html = Path(html).resolve()
    with tempfile.TemporaryDirectory(prefix="wfo-chromium-") as profile, atomic_path(target) as tmp:
        command = [
            browser,
            *_FLAGS,
            f"--user-data-dir={profile}",  # its own profile: parallel runs never share a lock
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            f"--print-to-pdf={tmp}",
            html.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            msg = f"Chromium did not finish printing {html.name} within {timeout:g} s"
            raise InfrastructureError(msg, hint="try again; a busy machine prints slowly") from exc
        except OSError as exc:
            msg = f"cannot start Chromium ({browser}): {exc.strerror or exc}"
            raise InfrastructureError(msg) from exc
        head = tmp.read_bytes()[:5] if tmp.is_file() else b""
        if done.returncode != 0 or head != b"%PDF-":
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            why = lines[-1][:200] if lines else f"exit code {done.returncode}"
            msg = f"Chromium could not print {html.name} to PDF: {why}"
            raise InfrastructureError(msg)
    return Path(target)
