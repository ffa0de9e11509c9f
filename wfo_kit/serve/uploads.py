"""Data files uploaded with a submission (``multipart/form-data``), stored inside the data root.

A multipart submission has an optional ``parameters`` part (a YAML or JSON document, as the body
of a plain submission) and one file part per uploaded input table, named after the table
(``companies``, ``financials``, ``peers``, ``balance_sheet``). Each file is stored as
``<data root>/.wfo-uploads/<run id>/<table>.<csv|parquet>``: the client's file name is never
used but for its suffix, so no name it sends becomes a path. The run then reads its uploaded
tables from there and the others from the data root, as its document names them: the server
writes a small document that ``extends`` the submitted one and names the uploaded files, so that
both go through the same confined configuration loader as any parameters file.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.requests import Request

from wfo_kit.config import TABLE_NAMES
from wfo_kit.errors import did_you_mean
from wfo_kit.serve.problems import Problem
from wfo_kit.serve.submissions import SUFFIX_BY_MEDIA_TYPE, suffix_for

UPLOADS = ".wfo-uploads"
MULTIPART = "multipart/form-data"
#: Suffixes the loaders read (:func:`wfo_kit.io.read_table`), by the uploaded file's suffix.
DATA_SUFFIXES = {".csv": ".csv", ".tsv": ".tsv", ".txt": ".txt", ".parquet": ".parquet"}
PARAMETERS_FIELD = "parameters"


@dataclass(frozen=True)
class Submission:
    """A parameters document and uploaded tables, as received (nothing written yet)."""

    document: bytes | None
    suffix: str = ".yaml"
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # table -> suffix, bytes


def is_multipart(request: Request) -> bool:
    media = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
    return media == MULTIPART


async def read_submission(request: Request, *, max_part_bytes: int) -> Submission:
    """The document (and, in a multipart body, the uploaded tables) of a request."""
    if not is_multipart(request):
        suffix = suffix_for(request.headers.get("content-type"))
        return Submission(await request.body(), suffix)
    try:
        form = await request.form(
            max_files=len(TABLE_NAMES) + 1,
            max_fields=len(TABLE_NAMES) + 1,
            max_part_size=max_part_bytes,
        )
    except Exception as exc:  # starlette's MultiPartException and parser errors
        detail = f"cannot read the multipart body: {exc}"
        raise _bad(detail) from exc
    document: bytes | None = None
    suffix = ".yaml"
    files: dict[str, tuple[str, bytes]] = {}
    for name, value in form.multi_items():
        if name == PARAMETERS_FIELD:
            if document is not None:
                detail = "more than one `parameters` part"
                raise _bad(detail, field=name)
            if isinstance(value, UploadFile):
                suffix = _document_suffix(value)
                document = await value.read()
            else:
                document = value.encode("utf-8")
            continue
        if name not in TABLE_NAMES:
            known = [PARAMETERS_FIELD, *TABLE_NAMES]
            msg = f"unknown part {name!r}{did_you_mean(name, known)}"
            raise _bad(msg, field=name, hint=f"parts: {', '.join(known)}")
        if not isinstance(value, UploadFile):
            detail = f"part {name!r} must be a file upload"
            raise _bad(detail, field=name)
        if name in files:
            detail = f"table {name!r} uploaded twice"
            raise _bad(detail, field=name)
        files[name] = (_data_suffix(name, value.filename), await value.read())
    await form.close()
    if document is None and not files:
        detail = "a multipart submission needs a `parameters` part or a data file"
        raise _bad(detail)
    return Submission(document, suffix, files)


def write_submission(
    data_root: Path, run_id: str, submission: Submission
) -> tuple[Path, list[Path]]:
    """Write the submission under the data root; return the parameters file to resolve and
    every path written (to remove when the submission is refused or only validated)."""
    from wfo_kit.serve.submissions import spool

    written: list[Path] = []
    try:
        if not submission.files:
            path = spool(data_root, run_id, submission.document or b"", submission.suffix)
            return path, [path]
        folder = data_root / UPLOADS / run_id
        folder.mkdir(parents=True, exist_ok=False)
        written.append(folder)
        names: dict[str, str] = {}
        for table, (suffix, content) in submission.files.items():
            target = folder / f"{table}{suffix}"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            names[table] = f"{UPLOADS}/{run_id}/{target.name}"
        layer: dict[str, object] = {"data": names}
        if submission.document is not None:
            body = spool(data_root, f"{run_id}-body", submission.document, submission.suffix)
            written.append(body)
            layer = {"extends": body.name, **layer}
        path = spool(data_root, run_id, json.dumps(layer).encode(), ".json")
        written.append(path)
    except BaseException:
        remove(written)
        raise
    return path, written


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _document_suffix(upload: UploadFile) -> str:
    if upload.content_type and upload.content_type.partition(";")[0] in SUFFIX_BY_MEDIA_TYPE:
        return suffix_for(upload.content_type)
    return ".json" if (upload.filename or "").lower().endswith(".json") else ".yaml"


def _data_suffix(table: str, filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower()
    if suffix not in DATA_SUFFIXES:
        detail = f"table {table!r}: a data file is .csv or .parquet, not {suffix or 'no suffix'!r}"
        raise _bad(detail, field=table, status=415)
    return DATA_SUFFIXES[suffix]


def _bad(
    detail: str, *, field: str | None = None, hint: str | None = None, status: int = 422
) -> Problem:
    title = "Unsupported media type" if status == 415 else "Invalid submission"
    kind = "unsupported-media-type" if status == 415 else "invalid-submission"
    return Problem(status, kind, title, detail, field=field, hint=hint)
