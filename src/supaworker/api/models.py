"""Request bodies of the API, validated by pydantic (a bad field answers 422 naming it; nothing is written)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from .. import briefs, pipelines
from ..client import DEFAULT_MAX_ATTEMPTS, MAX_TYPE_LENGTH


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
    """`POST /api/briefs`, as the old system's clients send it. The checks match `validate_brief`, so a
    bad field is named in the 422 and nothing is written."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=briefs.MAX_USER_ID_LENGTH, description="Who the brief is for.")
    title: str = Field("", max_length=briefs.MAX_TITLE_LENGTH)
    description: str = Field("", max_length=briefs.MAX_TEXT_LENGTH)
    query: str = Field(min_length=1, max_length=briefs.MAX_TEXT_LENGTH, description="What to make.")
    media_type: str = Field(description=f"One of {', '.join(pipelines.MEDIA_TYPES)}.")
    use_pipeline: StrictBool = Field(False, description="Run the media type's whole pipeline, not only analysis.")

    @field_validator("user_id", "query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("media_type")
    @classmethod
    def _known_media_type(cls, value: str) -> str:
        if value not in pipelines.MEDIA_TYPES:
            raise ValueError(f"must be one of {', '.join(pipelines.MEDIA_TYPES)}")
        return value


class CancelRequest(BaseModel):
    """Optional body of the cancel endpoints."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("cancelled by request", min_length=1, max_length=1000)
