"""The step cache: a step's frames kept under a hash of everything the step reads.

A re-run that changes only valuation settings (a notebook re-run in the same kernel, or another
``wfo run``) re-uses the load and validate results instead of reading and checking the same inputs
again. The key of an entry is a SHA-256 over the step's name, the code (every ``wfo_kit`` module and
the Polars version), the configuration the step reads and the content of its inputs: the bytes of
each input file or database (:func:`source_digest`), or the key of the step that produced each frame
it reads. Any changed byte or setting gives a new key, so a stale entry is never read; it ages out.

Two levels:

- memory: a per-process LRU bounded by ``cache.memory_mb`` (frames are shared copy-on-write, so a
  later step cannot change an entry);
- disk: one folder per key under ``cache.dir`` holding an Arrow IPC file per frame and
  ``entry.json`` with each file's size and CRC-32. A folder is built under a temporary name and
  renamed into place (readers see whole entries or none); an entry whose files do not match
  (truncated, corrupt, half-deleted) is a miss and is removed. The folder is bounded by
  ``cache.max_mb``, least recently used entries evicted first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from wfo_kit.config import CacheConfig, TableSource

#: Bumped when the entry layout changes: older entries are then never read.
FORMAT = 1
_ENTRY = "entry.json"
#: A file modified this recently is hashed again next time (its timestamp may not have ticked).
_RACY_SECONDS = 2.0


@dataclass(frozen=True)
class Hit:
    """Frames found in the cache, and where (``memory`` or ``disk``)."""

    frames: dict[str, pl.DataFrame]
    where: str


# --------------------------------------------------------------------------------------------
# Keys


@cache
def code_fingerprint() -> str:
    """SHA-256 of every ``wfo_kit`` module, the Polars version and the entry format.

    A change to any step's code (also an edit without a version bump) gives new keys.
    """
    digest = hashlib.sha256(f"{FORMAT}\0{pl.__version__}\0".encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def step_key(step: str, material: dict[str, Any]) -> str:
    """The cache key of ``step`` over ``material`` (JSON-able: settings and input digests)."""
    payload = json.dumps(
        {"step": step, "code": code_fingerprint(), **material}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


#: (path, device, inode, size, mtime_ns, ctime_ns) -> SHA-256, for files hashed in this process.
_DIGESTS: dict[tuple[Any, ...], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered in this process while its stat is unchanged.

    Any write changes the file's ctime (which no user call can set back), so a remembered digest
    is only used for a file nobody wrote since; a file written in the last two seconds is hashed
    again each time, for file systems with coarse timestamps.
    """
    stat = path.stat()
    token = (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size)
    token += (stat.st_mtime_ns, stat.st_ctime_ns)
    known = _DIGESTS.get(token)
    if known is not None:
        return known
    from wfo_kit.runs import file_sha256

    digest = file_sha256(path)
    if time.time() - max(stat.st_mtime, stat.st_ctime) > _RACY_SECONDS:
        _DIGESTS[token] = digest
    return digest


def source_digest(source: TableSource) -> str | None:
    """SHA-256 of what one input source reads, as the run's input hashes have it (None: the
    source is not there: no caching; the step then fails with its own reason)."""
    from wfo_kit.runs import source_sha256

    return source_sha256(source, file_hash=file_digest)


# --------------------------------------------------------------------------------------------
# Memory

_MEMORY: OrderedDict[str, tuple[dict[str, pl.DataFrame], int]] = OrderedDict()
_MEMORY_LOCK = threading.Lock()  # runs in threads of one process (wfo serve) share it


def _remember(key: str, frames: dict[str, pl.DataFrame], *, limit_bytes: float) -> None:
    size = sum(int(f.estimated_size()) for f in frames.values())
    if size > limit_bytes:
        return
    with _MEMORY_LOCK:
        _MEMORY[key] = ({n: f.clone() for n, f in frames.items()}, size)
        _MEMORY.move_to_end(key)
        while sum(s for _, s in _MEMORY.values()) > limit_bytes:
            _MEMORY.popitem(last=False)


def _recall(key: str) -> dict[str, pl.DataFrame] | None:
    with _MEMORY_LOCK:
        if key not in _MEMORY:
            return None
        _MEMORY.move_to_end(key)
        return {n: f.clone() for n, f in _MEMORY[key][0].items()}


def clear_memory() -> None:
    """Forget every entry kept in this process (the disk cache stays)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()
        _DIGESTS.clear()


# --------------------------------------------------------------------------------------------
# Disk


def cache_dir(config: CacheConfig) -> Path:
    """``cache.dir``, or ``$XDG_CACHE_HOME/wfo_kit/steps`` (``~/.cache/wfo_kit/steps``)."""
    if config.dir:
        return Path(config.dir)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wfo_kit" / "steps"


def _read_entry(folder: Path) -> dict[str, pl.DataFrame] | None:
    """The frames of one disk entry, or None when anything does not match its record."""
    try:
        record = json.loads((folder / _ENTRY).read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            return None
        frames = {}
        for name, item in record["frames"].items():
            data = (folder / item["file"]).read_bytes()
            if len(data) != item["bytes"] or zlib.crc32(data) != item["crc32"]:
                return None
            frames[name] = pl.read_ipc(io.BytesIO(data))
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        return None
    return frames


def _write_entry(root: Path, key: str, frames: dict[str, pl.DataFrame]) -> int:
    """Write one entry atomically (a temporary folder renamed into place); its size in bytes."""
    # Entries hold input tables (a SQL query's rows too): readable by their owner only.
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = root / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(mode=0o700)
    try:
        record: dict[str, Any] = {"format": FORMAT, "key": key, "frames": {}}
        for index, (name, frame) in enumerate(frames.items()):
            buffer = io.BytesIO()
            frame.write_ipc(buffer, compression="lz4")
            data = buffer.getvalue()
            file = f"{index}.arrow"
            (tmp / file).write_bytes(data)
            record["frames"][name] = {"file": file, "bytes": len(data), "crc32": zlib.crc32(data)}
        (tmp / _ENTRY).write_text(json.dumps(record), encoding="utf-8")
        try:
            tmp.rename(root / key)
        except OSError:  # another process stored the same key first: its entry is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sum(item["bytes"] for item in record["frames"].values())


def _entries(root: Path) -> list[tuple[float, int, Path]]:
    """(last use, bytes, folder) of every entry under ``root``; only folders named by a key."""
    found = []
    for folder in root.iterdir() if root.is_dir() else ():
        if len(folder.name) != 64 or not folder.is_dir():
            continue
        with contextlib.suppress(OSError):
            marker = folder / _ENTRY
            size = sum(p.stat().st_size for p in folder.iterdir())
            found.append((marker.stat().st_mtime, size, folder))
    return found


def evict(root: Path, *, max_bytes: float) -> list[str]:
    """Remove least recently used entries until the folder holds at most ``max_bytes``; return
    the keys removed. Only folders named by a key are touched, never other files."""
    entries = sorted(_entries(root))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, folder in entries:
        if total <= max_bytes:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
        removed.append(folder.name)
    return removed


# --------------------------------------------------------------------------------------------
# The two levels together


def lookup(key: str, config: CacheConfig) -> Hit | None:
    """The frames stored under ``key`` (memory first, then disk), or None."""
    remembered = _recall(key)
    if remembered is not None:
        return Hit(remembered, "memory")
    if config.max_mb <= 0:
        return None
    folder = cache_dir(config) / key
    if not folder.is_dir():
        return None
    frames = _read_entry(folder)
    if frames is None:
        shutil.rmtree(folder, ignore_errors=True)  # corrupt or partial: a miss, and gone
        return None
    with contextlib.suppress(OSError):
        os.utime(folder / _ENTRY)  # its last use, for the LRU eviction
    _remember(key, frames, limit_bytes=config.memory_mb * 1e6)
    return Hit(frames, "disk")


def store(key: str, frames: dict[str, pl.DataFrame], config: CacheConfig) -> None:
    """Keep ``frames`` under ``key`` in memory and on disk, then evict beyond the bounds.

    A disk that cannot take the entry (full, read-only) leaves the run as it was: the cache is an
    optimisation, never a reason for a run to fail.
    """
    _remember(key, frames, limit_bytes=config.memory_mb * 1e6)
    if config.max_mb <= 0:
        return
    root = cache_dir(config)
    with contextlib.suppress(OSError):
        _write_entry(root, key, frames)
        evict(root, max_bytes=config.max_mb * 1e6)
