"""``/validate`` and ``/config/schema``: the configuration model and the data checks, over HTTP."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from wfo_kit.config import Config, ResolvedConfig, mask_secrets
from wfo_kit.errors import WfoError
from wfo_kit.serve import submissions, uploads
from wfo_kit.serve.auth import Reader, Validator
from wfo_kit.serve.deps import Settings
from wfo_kit.serve.models import ValidationResult
from wfo_kit.serve.problems import Problem, responses
from wfo_kit.serve.runs import SUBMISSION_BODY

router = APIRouter(tags=["configuration"])


def data_checks(resolved: ResolvedConfig, *, limit: int) -> dict[str, Any]:
    """What a run's load and validate steps decide about the data: quality per table and the
    quarantined rows with their reasons (the first ``limit``), without valuing anything."""
    from wfo_kit.io import load_tables
    from wfo_kit.validate import validate_tables

    config = resolved.config
    if config.data.companies is None or config.data.financials is None:
        return {"data_checked": False}
    checked = validate_tables(
        load_tables(config.data), validation=config.validation, valuation=config.valuation
    )
    return {
        "data_checked": True,
        "quality": checked.quality.to_dicts(),
        "quarantine": checked.quarantine.head(limit).to_dicts(),
        "quarantine_total": checked.quarantine.height,
        "warnings": checked.warnings.head(limit).to_dicts(),
    }


def _slots(request: Request) -> threading.BoundedSemaphore:
    state = request.app.state
    if getattr(state, "validations", None) is None:
        state.validations = threading.BoundedSemaphore(state.settings.validations)
    return state.validations


@router.post(
    "/validate",
    response_model=ValidationResult,
    openapi_extra=SUBMISSION_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429, 503),
    summary="Validate parameters and data",
)
async def validate(
    *,
    request: Request,
    _user: Validator,
    settings: Settings,
    check_data: bool = True,
    quarantine_limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> ValidationResult:
    """Resolve a parameters document as a submission would be (confined to the data root;
    data files may be uploaded as multipart parts, as for ``POST /runs``), without running it:
    its effective configuration and where each value came from, then (unless ``check_data`` is
    false) the data's quality per table and its quarantined rows with their reasons, or a 422
    naming the field. At most a few checks run at once (429 beyond)."""
    submission = await uploads.read_submission(request, max_part_bytes=settings.max_body_bytes)
    run_id = f"validate-{submissions.new_run_id()}"
    slots = _slots(request)
    if not slots.acquire(blocking=False):
        raise Problem(
            429,
            "busy",
            "Too many validations at once",
            f"{settings.validations} validations are running; try again shortly",
            headers={"Retry-After": "2"},
        )

    def check() -> ValidationResult:
        path, written = uploads.write_submission(settings.data_root, run_id, submission)
        try:
            resolved = submissions.resolve(path, settings.data_root, also=tuple(written))
            try:
                checks = (
                    data_checks(resolved, limit=quarantine_limit)
                    if check_data
                    else {"data_checked": False}
                )
            except WfoError as exc:  # a data file that cannot be read: say so, without paths
                raise submissions.clean_error(exc, path, settings.data_root) from exc
        finally:
            uploads.remove(written)
        sources = {
            k: ("request body" if v.startswith("file:") else v) for k, v in resolved.sources.items()
        }
        return ValidationResult(
            config=mask_secrets(resolved.config.model_dump(mode="json")),
            sources=sources,
            **checks,
        )

    try:
        return await run_in_threadpool(check)
    finally:
        slots.release()


@router.get("/config/schema", responses=responses(401, 403), summary="The configuration schema")
def config_schema(_user: Reader) -> dict[str, Any]:
    """The JSON schema of the configuration model: every setting with its description,
    bounds and default."""
    return Config.model_json_schema()
