"""Request bodies of the API, validated by pydantic (a bad field answers 422 naming it; nothing is written)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ..client import DEFAULT_MAX_ATTEMPTS, MAX_TYPE_LENGTH

MAX_TEXT_LENGTH = 20_000


class JobCreate(BaseModel):
    """`POST /api/jobs`: the fields of `supaworker.create_job`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=MAX_TYPE_LENGTH, description="Job type (a registered handler).")
    payload: Any = Field(default_factory=dict, description="JSON handed to the handler.")
    priority: int = Field(0, ge=-(2**31), lt=2**31, description="Lower runs first.")
    run_at: datetime | None = Field(None, description="Not before this time (timezone-aware).")
    delay: float | None = Field(None, ge=0, description="Seconds from now before it may run.")
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, ge=1, lt=2**31)
    timeout: float | None = Field(None, gt=0, description="Per-attempt timeout in seconds.")
    brief_id: UUID | None = None
    queue: str = Field("default", min_length=1, max_length=MAX_TYPE_LENGTH)


class BriefCreate(BaseModel):
    """`POST /api/briefs`, as the old system's clients send it."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=255)
    title: str = Field("", max_length=500)
    description: str = Field("", max_length=MAX_TEXT_LENGTH)
    query: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    media_type: str = Field(description="video, image, audio or text.")
    use_pipeline: bool = False


class CancelRequest(BaseModel):
    """Optional body of the cancel endpoints."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("cancelled by request", min_length=1, max_length=1000)
