"""The operator's writes beyond one job: bulk retry / cancel / delete (with a preview that writes nothing),
pauses and limits of types and queues, and switching periodic schedules on and off. Each needs the key; the
dashboard's buttons call these routes like any other client."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, model_validator
from pydantic.json_schema import JsonDict

from .. import controls
from ..bulk import MAX_IDS, bulk_action
from ..job_search import JobFilter
from ..periodic import list_periodic_schedules, set_periodic_enabled
from ..rules import MAX_BIGINT, MAX_REASON_LENGTH, MAX_TYPE_LENGTH, MAX_USER_ID_LENGTH
from ..states import JobStatus
from ..store import Store
from .auth import reads, writes
from .jobs import poke_feed, read_store_of, store_of
from .models import WHOLE_NUMBER, DateTimeText, NonBlankText, StorableText

router = APIRouter(prefix="/api", tags=["console"])

Name = Annotated[NonBlankText, Field(min_length=1, max_length=MAX_TYPE_LENGTH)]  # a type, queue or schedule
JobIdItem = Annotated[StrictInt, Field(ge=1, le=MAX_BIGINT), WHOLE_NUMBER]


class JobFilterBody(BaseModel):
    """Which jobs: every field given must match (none given: every job)."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    type: Annotated[StorableText, Field(max_length=MAX_TYPE_LENGTH)] | None = None
    queue: Annotated[StorableText, Field(max_length=MAX_TYPE_LENGTH)] | None = None
    brief_id: UUID | None = None
    user_id: Annotated[StorableText, Field(max_length=MAX_USER_ID_LENGTH)] | None = None
    error: Annotated[StorableText, Field(max_length=200, description="Part of the last error, any case.")] | None = None
    created_after: DateTimeText | None = None
    created_before: DateTimeText | None = None

    def to_filter(self) -> JobFilter:
        values = self.model_dump()
        values["status"] = str(self.status) if self.status is not None else None
        return JobFilter(**{k: (v if v != "" else None) for k, v in values.items()})


M = TypeVar("M", bound=BaseModel)


def _exactly_one(model: M, first: str, second: str) -> M:
    if (getattr(model, first) is None) == (getattr(model, second) is None):
        raise ValueError(f"give either {first} or {second}")
    return model


def exactly_one_schema(first: tuple[str, str], second: tuple[str, str]) -> JsonDict:
    """The rule of `_exactly_one` for the document: one of the two fields (name, JSON type) is given and not null."""
    return {"oneOf": [{"required": [name], "properties": {name: {"type": kind}}} for name, kind in (first, second)]}


class BulkRequest(BaseModel):
    """Jobs named by `ids`, or every job matching `filter` (exactly one of the two)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=exactly_one_schema(("ids", "array"), ("filter", "object"))
    )

    action: Literal["retry", "cancel", "delete"] = Field(
        description="retry failed or cancelled jobs; cancel unfinished ones; delete finished ones "
        "(a finished job an unfinished one depends on is kept)."
    )
    ids: list[JobIdItem] | None = Field(None, min_length=1, max_length=MAX_IDS)
    filter: JobFilterBody | None = None
    through_id: JobIdItem | None = Field(
        None, description="Only jobs up to this id: pass the preview's `through_id` to act on what it counted."
    )
    reason: Annotated[StorableText, Field(min_length=1, max_length=MAX_REASON_LENGTH)] | None = Field(
        None, description="With cancel: the reason recorded as the jobs' last error."
    )

    @model_validator(mode="after")
    def _one_selection(self) -> BulkRequest:
        return _exactly_one(self, "ids", "filter")


class BulkAnswer(BaseModel):
    action: str
    count: int = Field(description="Jobs the action would change (preview) or changed (run).")
    matched: int = Field(description="Jobs that matched when they were looked at.")
    complete: bool = Field(description="False when a request limit stopped the walk: run it again for the rest.")
    through_id: int
    searched_to: int | None = Field(None, description="When not complete: jobs below this id were not examined.")
    batches: int
    limits: dict[str, int]


def _bulk(request: Request, body: BulkRequest, preview: bool) -> dict[str, Any]:
    # The preview counts on the primary too: it is the first half of a write, and its through_id must hold there.
    outcome = bulk_action(
        store_of(request),
        body.action,
        ids=body.ids,
        flt=body.filter.to_filter() if body.filter is not None else None,
        through_id=body.through_id,
        reason=body.reason,
        preview=preview,
    )
    if not preview and outcome.count:
        poke_feed(request)
    return outcome.to_dict()


@writes(
    router, "/jobs/bulk/preview", "Count what a bulk action would change (writes nothing)", response_model=BulkAnswer
)
def bulk_preview(request: Request, body: BulkRequest) -> dict[str, Any]:
    """At most 10,000 jobs and 100,000 examined per request (`limits`); `complete` says whether all were seen."""
    return _bulk(request, body, preview=True)


@writes(router, "/jobs/bulk", "Retry, cancel or delete many jobs, in batches of 500 ids", response_model=BulkAnswer)
def bulk_run(request: Request, body: BulkRequest) -> dict[str, Any]:
    return _bulk(request, body, preview=False)


class ControlTarget(BaseModel):
    """A job type or a queue (exactly one)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=exactly_one_schema(("type", "string"), ("queue", "string"))
    )

    type: Name | None = None
    queue: Name | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ControlTarget:
        return _exactly_one(self, "type", "queue")


class LimitsRequest(BaseModel):
    """A type's global limits; null (or absent) removes that limit."""

    model_config = ConfigDict(extra="forbid")

    type: Name
    max_running: Annotated[StrictInt, Field(ge=1, lt=2**31), WHOLE_NUMBER] | None = None
    rate_limit: Annotated[StrictInt, Field(ge=1, lt=2**31), WHOLE_NUMBER] | None = None
    rate_period: StrictFloat = Field(  # an int too
        controls.DEFAULT_RATE_PERIOD_SECONDS, gt=0, le=366 * 86_400, description="Seconds per rate window."
    )


def _controls(store: Store) -> dict[str, Any]:
    return {"controls": jsonable_encoder([c.to_dict() for c in controls.list_controls(store=store)])}


@reads(router, "/controls", "Pauses and limits")
def list_controls(request: Request) -> dict[str, Any]:
    return _controls(read_store_of(request))


@writes(router, "/controls/pause", "Pause a type or queue for every worker")
def pause(request: Request, body: ControlTarget) -> dict[str, Any]:
    controls.pause(type=body.type, queue=body.queue, store=store_of(request))
    return _controls(store_of(request))


@writes(router, "/controls/resume", "Resume a type or queue")
def resume(request: Request, body: ControlTarget) -> dict[str, Any]:
    controls.resume(type=body.type, queue=body.queue, store=store_of(request))
    return _controls(store_of(request))


@writes(router, "/controls/limits", "Set a type's concurrency and rate limits")
def set_limits(request: Request, body: LimitsRequest) -> dict[str, Any]:
    controls.set_limits(
        body.type,
        max_running=body.max_running,
        rate_limit=body.rate_limit,
        rate_period=float(body.rate_period),
        store=store_of(request),
    )
    return _controls(store_of(request))


class PeriodicSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    enabled: StrictBool


@reads(router, "/periodic", "Periodic schedules (at most 500, by name)")
def list_periodic(request: Request) -> dict[str, Any]:
    return {"periodic": jsonable_encoder(list_periodic_schedules(store=read_store_of(request)))}


@writes(router, "/periodic/enabled", "Switch a periodic schedule on or off", 404)
def switch_periodic(request: Request, body: PeriodicSwitch) -> dict[str, Any]:
    """A disabled schedule enqueues nothing; switched on again it counts ticks from then on (no catch-up)."""
    row = set_periodic_enabled(body.name, body.enabled, store=store_of(request))
    if row is None:
        raise HTTPException(404, f"no periodic schedule named {body.name!r}")
    return {"periodic": jsonable_encoder(row)}
