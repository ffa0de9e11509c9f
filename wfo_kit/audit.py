"""Reading the audit log (``<outputs>/audit.jsonl``): who ran, read or changed what, and when.

Every line is one JSON object written by :func:`wfo_kit.runs.append_audit`: ``wfo`` commands
(``command`` = run, batch, users, ...), runs (``command: run``, started and finished), and
requests to ``wfo serve`` (``command: serve``: every state-changing request, allowed or refused,
every sign-in to the web pages, and every report, result table or log read through them).
:func:`audit_entries` turns them into one shape; ``wfo audit`` prints them and the web UI's audit
page (admins) shows them, with the same filters.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wfo_kit.errors import ConfigurationError

FAILED_OUTCOMES = frozenset({"failed", "refused", "interrupted", "incomplete"})
_SPAN = re.compile(r"^(?P<n>\d+)(?P<unit>[mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log, as people read it."""

    time: dt.datetime | None
    who: str
    role: str | None
    action: str
    target: str | None
    outcome: str
    client: str | None
    detail: str | None

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES


def parse_since(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """``2026-11-28``, ``2026-11-28T10:00`` (UTC unless given) or a span back: ``30m``, ``12h``,
    ``7d``, ``2w``.

    >>> now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    >>> parse_since("12h", now=now).isoformat()
    '2026-11-28T00:00:00+00:00'
    >>> parse_since("2026-11-01").isoformat()
    '2026-11-01T00:00:00+00:00'
    """
    now = now or dt.datetime.now(dt.UTC)
    span = _SPAN.match(text.strip())
    if span:
        return now - dt.timedelta(seconds=int(span["n"]) * _UNIT_SECONDS[span["unit"]])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"--since {text!r} is neither a date (2026-11-28, 2026-11-28T10:00) nor a span"
        raise ConfigurationError(msg, hint="a span back from now: 30m, 12h, 7d, 2w") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _entry(record: dict[str, Any]) -> AuditEntry:
    command = str(record.get("command") or "?")
    if command == "serve":
        who = record.get("api_user") or record.get("attempted_user") or "(no user)"
        event = record.get("event")
        action = f"{record.get('method', '?')} {record.get('url', '?')}"
        action = f"{event}: {action}" if event else action
        detail = f"HTTP {record['status']}" if "status" in record else None
        client = record.get("client")
    else:
        who = str(record.get("user") or "?")
        arguments = record.get("arguments")
        action = "wfo " + " ".join(arguments) if isinstance(arguments, list) else f"wfo {command}"
        detail = record.get("error")
        client = record.get("host")
    try:
        time = dt.datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        time = None
    return AuditEntry(
        time=time,
        who=str(who),
        role=record.get("role"),
        action=action,
        target=record.get("run_id"),
        outcome=str(record.get("outcome") or "?"),
        client=client,
        detail=str(detail) if detail is not None else None,
    )


def read_audit(path: Path) -> tuple[list[AuditEntry], int]:
    """Every readable line of the log, oldest first, and how many lines could not be read."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return [], 0
    entries, bad = [], 0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict):
            entries.append(_entry(record))
        else:
            bad += 1
    return entries, bad


def filter_entries(
    entries: Iterable[AuditEntry],
    *,
    user: str | None = None,
    since: dt.datetime | None = None,
    failed: bool = False,
) -> list[AuditEntry]:
    """Entries of ``user`` (who acted, or whose name a failed sign-in gave), at or after
    ``since``, only failed or refused ones with ``failed``."""
    return [
        e
        for e in entries
        if (user is None or e.who == user)
        and (since is None or (e.time is not None and e.time >= since))
        and (not failed or e.failed)
    ]


def format_entries(entries: list[AuditEntry]) -> list[str]:
    """Console lines: time, who (role), outcome, action, run, detail."""
    lines = []
    for e in entries:
        when = e.time.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if e.time else "?"
        who = f"{e.who} ({e.role})" if e.role else e.who
        tail = "".join(
            f"  {part}" for part in (e.target and f"run {e.target}", e.detail, e.client) if part
        )
        lines.append(f"{when}  {who:<22} {e.outcome:<10} {e.action}{tail}")
    return lines


def cmd_audit(args: Any) -> int:
    """``wfo audit``: print the audit log, filtered."""
    from wfo_kit.errors import EXIT_OK

    since = parse_since(args.since) if args.since else None
    path = Path(args.output) / "audit.jsonl"
    entries, bad = read_audit(path)
    chosen = filter_entries(entries, user=args.user, since=since, failed=args.failed)
    if args.limit:
        chosen = chosen[-args.limit :]
    for line in format_entries(chosen):
        print(line)
    note = f"{len(chosen)} of {len(entries)} entries in {path}"
    if bad:
        note += f"; {bad} unreadable line(s) skipped"
    import sys

    print(f"wfo: {note}", file=sys.stderr)
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """``wfo audit`` on the ``wfo`` command line."""
    audit = commands.add_parser(
        "audit",
        help="who ran, read or changed what, and when (failed sign-ins included)",
        description="Print the audit log OUTPUT/audit.jsonl, oldest first: wfo commands, runs, "
        "and wfo serve requests (state changes, sign-ins, reports read), allowed or refused.",
    )
    audit.add_argument("--output", type=Path, default=Path("outputs"), help="output root folder")
    audit.add_argument("--user", help="only what this user did (or tried to sign in as)")
    audit.add_argument(
        "--since", metavar="WHEN", help="from a date or time (UTC), or a span back: 12h, 7d"
    )
    audit.add_argument(
        "--failed", action="store_true", help="only failed or refused actions (sign-ins too)"
    )
    audit.add_argument("--limit", type=int, default=0, help="only the last N entries")
