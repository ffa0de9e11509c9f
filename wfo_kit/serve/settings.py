"""The server's settings (``wfo serve`` options), parsed once."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    """What one ``wfo serve`` instance serves and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output_root: Path = Field(description="outputs root: one folder per run, audit log, users")
    data_root: Path = Field(description="the folder remote runs may read; they are confined to it")
    users_file: Path | None = Field(None, description="users file (default OUTPUT/users.json)")
    workers: int = Field(1, ge=1, le=64, description="worker processes, one run at a time each")
    queue_capacity: int = Field(16, ge=0, description="runs that may wait; beyond: 429")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="largest request body; 413")
    max_upload_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="largest multipart body (data uploads); 413"
    )
    validations: int = Field(2, ge=1, description="POST /validate checks at once; beyond: 429")
    scheduler: str | None = Field(None, description="a Dask scheduler address: runs execute there")
    kernel: str = "wfo_kit"
    prewarm: bool = Field(True, description="start the workers and their kernels at start-up")
    tls: bool = Field(False, description="served over TLS: HSTS on every response")
    retry_after_seconds: int = Field(10, ge=1, description="Retry-After of a 429")
