"""The run folders of an output root, read fast: manifests cached by modification time.

A run lives in one of three folders during its life, each renamed atomically into the next:
``.<id>.queued`` (accepted by a server, waiting), ``.<id>.partial`` (claimed, running) and
``<id>`` (finished). The folders are the only source of truth, so that several servers sharing one
output root agree; this module only avoids parsing a thousand manifests per ``GET /runs``: a
manifest is parsed again only when its size or modification time changed (a manifest is always
replaced whole, by an atomic rename, so either changes with it).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wfo_kit.history import _alive, _partial_state, history_row, read_manifest

Kind = Literal["queued", "partial", "final"]
SUFFIXES: dict[str, Kind] = {".queued": "queued", ".partial": "partial"}
#: Lifecycle order: a run found in none of them on one pass may have moved on; look again.
LIFECYCLE: tuple[Kind, ...] = ("queued", "partial", "final")


@dataclass(frozen=True)
class RunEntry:
    run_id: str
    kind: Kind
    folder: Path


def folder_of(root: Path, run_id: str, kind: Kind) -> Path:
    return root / (run_id if kind == "final" else f".{run_id}.{kind}")


def entry_of(name: str, root: Path) -> RunEntry | None:
    """What a name under the output root is (None: not a run folder)."""
    if name.startswith("."):
        for suffix, kind in SUFFIXES.items():
            if name.endswith(suffix) and len(name) > len(suffix) + 1:
                return RunEntry(name[1 : -len(suffix)], kind, root / name)
        return None
    return RunEntry(name, "final", root / name)


def live_state(manifest: dict[str, Any]) -> dict[str, Any]:
    """The state of a run still in its ``.partial`` folder, as a client polling it should see it.

    Two moments of every run are not failures: just claimed (its folder renamed from
    ``.queued``, the claim not written yet: ``starting``) and just ended (its final manifest
    written, the folder about to be renamed: still ``running`` while its process lives). Else as
    :func:`wfo_kit.history.run_history` says (``running``, or ``incomplete`` with the reason).
    """
    status = manifest.get("status")
    if status == "queued":
        return {**manifest, "status": "starting"}
    ended = status in ("succeeded", "failed", "interrupted")
    if ended and _alive(manifest.get("pid"), manifest.get("host")):
        return {**manifest, "status": "running"}
    return _partial_state(manifest)


class RunIndex:
    """Rows of the run history over one output root, re-reading only manifests that changed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], dict[str, Any], dict[str, Any]]] = {}
        self._listing: list[tuple[RunEntry, dict[str, Any]]] | None = None
        self._listing_stamp: int | None = None

    def manifest(self, entry: RunEntry) -> dict[str, Any] | None:
        """The run's manifest (its live state for a ``.partial`` run); None if the folder moved."""
        found = self._read(entry)
        return None if found is None else found[0]

    def find(self, run_id: str) -> tuple[RunEntry, dict[str, Any]] | None:
        """A run by id, wherever it is in its life (None: no such run)."""
        for _ in range(3):  # it may move on between two looks: look again
            for kind in LIFECYCLE:
                entry = RunEntry(run_id, kind, folder_of(self.root, run_id, kind))
                if entry.folder.is_dir():
                    found = self._read(entry)
                    if found is not None:
                        return entry, found[0]
        return None

    def rows(self) -> list[dict[str, Any]]:
        """One row per run (:func:`wfo_kit.history.history_row`, plus ``submitted``), waiting
        runs first in the order they will run, then the others newest first.

        The listing of the output folder is reused while the folder's modification time stays
        the same (a run appearing, moving on or being removed changes it) and is over a second
        old (so that two changes within one tick of the file system's clock are never merged);
        only ``.partial`` runs, whose manifests change in place, are read again each time.
        """
        try:
            stamp = os.stat(self.root).st_mtime_ns
        except FileNotFoundError:
            return []
        settled = time.time_ns() - stamp > 1_000_000_000
        with self._lock:
            listing = self._listing if settled and self._listing_stamp == stamp else None
        if listing is None:
            listing = self._scan()
            with self._lock:
                self._listing, self._listing_stamp = (listing, stamp) if settled else (None, None)
        rows = []
        for entry, row in listing:
            if entry.kind == "partial":
                found = self._read(entry)
                if found is None:
                    continue  # it moved on since the listing: the next listing shows it
                row = found[1]
            rows.append(row)
        queued = sorted(
            (r for r in rows if r["status"] == "queued"), key=lambda r: str(r["submitted"] or "")
        )
        others = sorted(
            (r for r in rows if r["status"] != "queued"),
            key=lambda r: (r["started"] is not None, r["started"] or 0, r["run_id"]),
            reverse=True,
        )
        return [*queued, *others]

    def _scan(self) -> list[tuple[RunEntry, dict[str, Any]]]:
        """Every run folder with its row, manifests read only when they changed."""
        listing: list[tuple[RunEntry, dict[str, Any]]] = []
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            names = []
        for name in names:
            entry = entry_of(name, self.root)
            if entry is None:
                continue
            found = self._read(entry, require_manifest=entry.kind == "final")
            if found is not None:
                listing.append((entry, found[1]))
        seen = {str(entry.folder) for entry, _ in listing}
        with self._lock:
            for key in set(self._cache) - seen:
                del self._cache[key]
        return listing

    def _read(
        self, entry: RunEntry, *, require_manifest: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        path = entry.folder / "manifest.json"
        key = str(entry.folder)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            if require_manifest or not entry.folder.is_dir():
                return None  # not a run folder (e.g. bench/), or it moved on
            stamp = (0, 0)
        except OSError:
            stamp = (-1, -1)
        else:
            stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] == stamp and entry.kind != "partial":
            return cached[1], cached[2]
        manifest = read_manifest(path)
        if stamp == (0, 0) and entry.kind == "queued":
            manifest = {"status": "queued"}
        manifest.setdefault("run_id", entry.run_id)
        if entry.kind == "partial":
            manifest = live_state(manifest)  # alive or not: never cached
        elif entry.kind == "queued":
            manifest["status"] = "queued"
        row = history_row(entry.folder, manifest)
        row["submitted"] = manifest.get("submitted")
        with contextlib.suppress(KeyError):
            row.pop("path")
        with self._lock:
            self._cache[key] = (stamp, manifest, row)
        return manifest, row
