"""``/validate`` and ``/config/schema``: the configuration model, over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from wfo_kit.config import Config, mask_secrets
from wfo_kit.serve import submissions
from wfo_kit.serve.auth import Reader, Validator
from wfo_kit.serve.deps import Settings
from wfo_kit.serve.models import ValidationResult
from wfo_kit.serve.problems import responses
from wfo_kit.serve.runs import PARAMETERS_BODY

router = APIRouter(tags=["configuration"])


@router.post(
    "/validate",
    response_model=ValidationResult,
    openapi_extra=PARAMETERS_BODY,
    responses=responses(400, 401, 403, 413, 415, 422),
    summary="Validate parameters",
)
async def validate(request: Request, _user: Validator, settings: Settings) -> ValidationResult:
    """Resolve a parameters document as a submission would be (confined to the data root),
    without running it: its effective configuration and where each value came from, or a 422
    naming the field."""
    suffix = submissions.suffix_for(request.headers.get("content-type"))
    body = await request.body()
    run_id = f"validate-{submissions.new_run_id()}"

    def check() -> ValidationResult:
        with submissions.spooled(settings.data_root, run_id, body, suffix, keep=False) as path:
            resolved = submissions.resolve(path, settings.data_root)
        sources = {
            k: ("request body" if v.startswith("file:") else v) for k, v in resolved.sources.items()
        }
        return ValidationResult(
            config=mask_secrets(resolved.config.model_dump(mode="json")), sources=sources
        )

    return await run_in_threadpool(check)


@router.get("/config/schema", responses=responses(401, 403), summary="The configuration schema")
def config_schema(_user: Reader) -> dict[str, Any]:
    """The JSON schema of the configuration model: every setting with its description,
    bounds and default."""
    return Config.model_json_schema()
