"""Request bodies of the API, validated by pydantic (a bad field answers 422 naming it; nothing is written)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonDict

from .. import pipelines, rules, validation
from ..errors import InvalidJob
from ..new_job import NewJob
from ..rules import MAX_REASON_LENGTH
from .contract import JSON_VALUE_MARK, NOT_BLANK_PATTERN, RUN_AT_PATTERN, STORABLE_PATTERN


def _storable_text(value: str) -> str:
    problem = validation.text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# A string PostgreSQL can store (no NUL, no lone surrogate): the body's strings and the query parameters.
StorableText = Annotated[str, AfterValidator(_storable_text), Field(json_schema_extra={"pattern": STORABLE_PATTERN})]
# The same, for text the API (or the function it calls) refuses blank: the document says so too.
NonBlankText = Annotated[StorableText, Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN})]


def _whole_number(value: Any) -> Any:
    """JSON's `3.0` is the integer 3 (JSON Schema's `integer` says so); `3.5`, `true` and `"3"` stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a body takes an int, or a float with nothing after the point: `Annotated[StrictInt,
# Field(<bounds>), WHOLE_NUMBER]` (the bounds before it, or the document loses them).
WHOLE_NUMBER = BeforeValidator(_whole_number)

# Arbitrary JSON that jsonb stores (`validation.check_json`): contract.refine_document describes it.
JSON_VALUE_REF: JsonDict = {JSON_VALUE_MARK: True}


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _date_time_text(value: Any) -> Any:
    """Only an ISO 8601 date-time: pydantic would also read a number as seconds since 1970."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _NUMBER.fullmatch(value):
        raise ValueError("must be an ISO 8601 date-time with a time zone, e.g. 2030-01-01T00:00:00Z")
    return value


# A date-time parameter or field: ISO 8601 text only.
DateTimeText = Annotated[datetime, BeforeValidator(_date_time_text)]


def _run_at(value: datetime | None) -> datetime | None:
    return None if value is None else validation.check_run_at(value)


class JobCreate(BaseModel):
    """`POST /api/jobs`: the fields of `supaworker.create_job`, with the limits of `supaworker.rules`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {"not": {"required": ["payload", "metadata"]}},
                {
                    "not": {
                        "required": ["run_at", "delay"],
                        "properties": {"run_at": {"type": "string"}, "delay": {"type": "number"}},
                    }
                },
            ]
        },
    )

    type: NonBlankText = Field(
        min_length=1, max_length=rules.MAX_TYPE_LENGTH, description="Job type (a registered handler)."
    )
    payload: Any = Field(
        default_factory=dict,
        json_schema_extra=JSON_VALUE_REF,
        description=f"JSON handed to the handler, nested at most {rules.MAX_PAYLOAD_DEPTH} levels deep; "
        "no NUL characters or lone surrogates in its strings and keys.",
    )
    priority: Annotated[StrictInt, WHOLE_NUMBER] = Field(0, ge=-(2**31), lt=2**31, description="Lower runs first.")
    run_at: Annotated[DateTimeText | None, AfterValidator(_run_at)] = Field(
        None,
        description=f"Not before this time (timezone-aware), from {rules.MIN_RUN_AT.isoformat()} "
        f"to before {rules.MAX_RUN_AT.isoformat()}.",
        json_schema_extra={"pattern": RUN_AT_PATTERN},
    )
    delay: StrictFloat | None = Field(
        None, ge=0, le=rules.MAX_DELAY_SECONDS, description="Seconds from now before it may run."
    )
    max_attempts: Annotated[StrictInt, WHOLE_NUMBER] = Field(rules.DEFAULT_MAX_ATTEMPTS, ge=1, le=rules.MAX_INT32)
    timeout: StrictFloat | None = Field(
        None, gt=0, le=rules.MAX_TIMEOUT_SECONDS, description="Per-attempt timeout in seconds."
    )
    brief_id: UUID | None = Field(None, description="An existing brief the job belongs to.")
    queue: NonBlankText = Field("default", min_length=1, max_length=rules.MAX_TYPE_LENGTH)
    fairness_key: StorableText | None = Field(
        None,
        max_length=rules.MAX_FAIRNESS_KEY_LENGTH,
        description="The tenant whose share of the workers the job uses (omitted: the default tenant).",
    )
    metadata: Any = Field(
        None,
        json_schema_extra=JSON_VALUE_REF,
        description="The old system's name for `payload` (`createJob({ brief_id, type, metadata })`): give one "
        "or the other; the same rules apply.",
    )

    @field_validator("payload", "metadata")
    @classmethod
    def _storable_json(cls, value: Any, info: ValidationInfo) -> Any:
        validation.check_json(str(info.field_name), value)
        return value

    def new_job(self) -> NewJob:
        """The job this body asks for (InvalidJob when `payload` and its old name `metadata` are both given)."""
        fields = dict(self)
        metadata = fields.pop("metadata")
        if "metadata" in self.model_fields_set:
            if "payload" in self.model_fields_set:
                raise InvalidJob("give payload or metadata (its old name), not both", field="metadata")
            fields["payload"] = metadata
        return NewJob.build(**fields)


class BriefCreate(BaseModel):
    """`POST /api/briefs`, as the old system's clients send it. The checks match `validate_brief`, so a
    bad field is named in the 422 and nothing is written."""

    model_config = ConfigDict(extra="forbid")

    user_id: NonBlankText = Field(
        min_length=1, max_length=rules.MAX_USER_ID_LENGTH, description="Who the brief is for."
    )
    title: StorableText = Field("", max_length=rules.MAX_TITLE_LENGTH)
    description: StorableText = Field("", max_length=rules.MAX_TEXT_LENGTH)
    query: NonBlankText = Field(min_length=1, max_length=rules.MAX_TEXT_LENGTH, description="What to make.")
    media_type: str = Field(
        description=f"One of {', '.join(pipelines.MEDIA_TYPES)}.",
        json_schema_extra={"enum": list(pipelines.MEDIA_TYPES)},
    )
    use_pipeline: StrictBool = Field(False, description="Run the media type's whole pipeline, not only analysis.")
    fairness_key: StorableText | None = Field(
        None,
        max_length=rules.MAX_FAIRNESS_KEY_LENGTH,
        description="The tenant whose share of the workers the brief's steps use (omitted: its user_id).",
    )

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

    reason: NonBlankText = Field("cancelled by request", min_length=1, max_length=MAX_REASON_LENGTH)
