"""A parameters document received over HTTP, resolved in confinement to the server's data root.

The document is written as it came to ``<data root>/.wfo-serve-<run id>.yaml`` (or ``.json``) and
resolved from there by :func:`wfo_kit.config.resolve_config` with ``confine=<data root>``: its
paths are relative to the data root, and absolute paths, ``..``, links that leave the root and a
``security`` section are refused, exactly as for ``wfo run --confine``. The file has to be inside
the data root for that (a parameters file outside the confinement folder is refused), which is why
the server needs write access there. A submitted run keeps its file (its manifest names it); a
refused or merely validated document is removed at once.

Messages never show the server's folders: the file is "the request body" and the data root is
"the data root".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

from wfo_kit.config import ResolvedConfig, resolve_config
from wfo_kit.errors import WfoError
from wfo_kit.serve.problems import Problem

#: Media types accepted for a parameters document (YAML is a superset of JSON).
SUFFIX_BY_MEDIA_TYPE = {
    "application/json": ".json",
    "application/yaml": ".yaml",
    "application/x-yaml": ".yaml",
    "text/yaml": ".yaml",
    "text/x-yaml": ".yaml",
}
SPOOL_PREFIX = ".wfo-serve-"


def suffix_for(content_type: str | None) -> str:
    """The file suffix for a request's media type (415 for anything else)."""
    media = (content_type or "application/yaml").partition(";")[0].strip().lower()
    if media not in SUFFIX_BY_MEDIA_TYPE:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"a parameters document is sent as YAML or JSON, not {media!r}",
            hint=f"send Content-Type: one of {', '.join(SUFFIX_BY_MEDIA_TYPE)}",
        )
    return SUFFIX_BY_MEDIA_TYPE[media]


def new_run_id() -> str:
    """``<UTC time>-api-<6 hex digits>``: runs submitted over HTTP sort with the others by time."""
    from wfo_kit.runs import make_run_id

    return make_run_id(f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-api")


def spool(data_root: Path, run_id: str, body: bytes, suffix: str) -> Path:
    """Write the document beside the data it names (never over an existing file)."""
    path = Path(data_root) / f"{SPOOL_PREFIX}{run_id}{suffix}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    return path


def resolve(path: Path, data_root: Path, *, also: tuple[Path, ...] = ()) -> ResolvedConfig:
    """The effective configuration of a spooled document, confined to ``data_root``.

    Also checks the pipeline's step names, so that a document that cannot run is refused now
    (422) rather than failing in a worker. ``also``: more files written for the request (a
    document with uploads), which messages also call "the request body".
    """
    from wfo_kit.pipeline import check_step_names

    try:
        resolved = resolve_config(path, confine=data_root)
        check_step_names(resolved.config)
    except WfoError as exc:
        cleaned = _without_server_paths(exc, path, Path(data_root))
        for other in also:
            cleaned = _without_server_paths(cleaned, other, Path(data_root))
        raise cleaned from exc
    return resolved


@contextlib.contextmanager
def spooled(
    data_root: Path, run_id: str, body: bytes, suffix: str, *, keep: bool
) -> Iterator[Path]:
    """Spool a document for the block; remove it afterwards unless ``keep`` and no error."""
    path = spool(data_root, run_id, body, suffix)
    try:
        yield path
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if not keep:
        path.unlink(missing_ok=True)


def _without_server_paths(exc: WfoError, spooled_file: Path, data_root: Path) -> WfoError:
    def clean(text: str | None) -> str | None:
        if text is None:
            return None
        text = text.replace(f"parameters file {spooled_file}", "the request body")
        text = text.replace(str(spooled_file), "the request body")
        text = text.replace(spooled_file.name, "the request body")
        return text.replace(str(data_root.resolve()), "the data root").replace(
            str(data_root), "the data root"
        )

    return type(exc)(
        clean(exc.message) or "",
        step=exc.step,
        table=exc.table,
        column=clean(exc.column),
        row=exc.row,
        hint=clean(exc.hint),
    )


def clean_error(exc: WfoError, spooled_file: Path, data_root: Path) -> WfoError:
    """``exc`` without the server's folders (the spooled file is "the request body")."""
    return _without_server_paths(exc, spooled_file, Path(data_root))
