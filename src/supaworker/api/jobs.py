"""`/api/jobs`: the old system's `?action=` reads, plus create, get, retry, cancel and a paginated listing."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder

from .. import client
from ..errors import BriefNotFound
from ..rules import MAX_BIGINT, MAX_TYPE_LENGTH
from ..states import JobStatus
from ..store import Store
from .auth import reads, writes
from .models import CancelRequest, JobCreate, StorableText
from .stats import job_stats_answer

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

ACTIONS = ("pending", "active", "stats", "by_brief", "list")
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500
QUEUE_LIMIT = 100

JobId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="A job id.")]


def store_of(request: Request) -> Store:
    """The primary: for writes, and for reads a client expects to show its own write at once."""
    return request.app.state.store


def read_store_of(request: Request) -> Store:
    """Where what is only shown is read: the replica of SUPAWORKER_READ_URL, else the primary."""
    return request.app.state.read_store


def poke_feed(request: Request) -> None:
    """Asks the change feed for a sample soon, so viewers see a write through the API at once."""
    feed = getattr(request.app.state, "feed", None)
    if feed is not None:
        feed.poke()


@reads(router, "", "Pending, active, stats, a brief's jobs, or a page", 400, 404)
def jobs_action(
    request: Request,
    action: str | None = Query(
        None, description=f"One of {', '.join(ACTIONS)}.", json_schema_extra={"enum": list(ACTIONS)}
    ),
    brief_id: str | None = Query(None, description="With action=by_brief.", json_schema_extra={"format": "uuid"}),
    status: str | None = Query(
        None, description="With action=list: only this status.", json_schema_extra={"enum": [str(s) for s in JobStatus]}
    ),
    type: Annotated[
        StorableText | None, Query(max_length=MAX_TYPE_LENGTH, description="With action=list: only this type.")
    ] = None,
    before_id: int | None = Query(
        None, ge=1, le=MAX_BIGINT, description="With action=list: the next page (next_before_id)."
    ),
    limit: int = Query(LIST_LIMIT_DEFAULT, ge=1, le=LIST_LIMIT_MAX, description="With action=list."),
) -> dict[str, Any]:
    if action not in ACTIONS:
        named = "missing action" if action is None else f"unknown action {action!r}"
        raise HTTPException(400, f"{named}: use action={', '.join(ACTIONS)}")
    store = read_store_of(request)
    if action == "pending":
        rows = store.pending_jobs(QUEUE_LIMIT)
        return {"action": action, "count": len(rows), "jobs": jsonable_encoder(rows)}
    if action == "active":
        rows = store.active_jobs(QUEUE_LIMIT)
        return {"action": action, "count": len(rows), "jobs": jsonable_encoder(rows)}
    if action == "stats":
        return job_stats_answer(request)
    if action == "by_brief":
        if not brief_id:
            raise HTTPException(400, "action=by_brief needs brief_id=<uuid>")
        try:
            bid = UUID(brief_id)
        except ValueError:
            raise HTTPException(400, f"brief_id must be a UUID, not {brief_id!r}") from None
        steps = store.brief_jobs(bid)
        if not steps and store.get_brief(bid) is None:
            raise BriefNotFound(f"no brief with id {bid}")
        jobs = [j.to_dict() for j in steps]
        return {"action": action, "brief_id": str(bid), "count": len(jobs), "jobs": jsonable_encoder(jobs)}
    if status is not None and status not in JobStatus.__members__.values():
        raise HTTPException(400, f"status must be one of {', '.join(s.value for s in JobStatus)}, not {status!r}")
    records = store.list_jobs(status=status, type=type, before_id=before_id, limit=limit)
    next_before = records[-1].id if len(records) == limit else None
    return {
        "action": action,
        "count": len(records),
        "jobs": jsonable_encoder([r.to_dict() for r in records]),
        "next_before_id": next_before,
    }


@writes(router, "", "Create a job", status_code=201)
def create_job(request: Request, body: JobCreate) -> dict[str, Any]:
    job = client.enqueue(body.new_job(), store=store_of(request))
    poke_feed(request)
    return {"job": jsonable_encoder(job.to_dict())}


@reads(router, "/{job_id:int}", "One job", 404)
def get_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """Read from the primary even with a replica: a client that just created the job gets it, not a 404."""
    return {"job": jsonable_encoder(client.get_job(job_id, store=store_of(request)).to_dict())}


@writes(router, "/{job_id:int}/retry", "Retry a failed or cancelled job", 404, 409)
def retry_job(request: Request, job_id: JobId) -> dict[str, Any]:
    store = store_of(request)
    client.retry_job(job_id, store=store)
    poke_feed(request)
    return {"job": jsonable_encoder(client.get_job(job_id, store=store).to_dict())}


@writes(router, "/{job_id:int}/cancel", "Cancel an unfinished job", 404, 409)
def cancel_job(request: Request, job_id: JobId, body: Annotated[CancelRequest | None, Body()] = None) -> dict[str, Any]:
    store = store_of(request)
    client.cancel_job(job_id, (body or CancelRequest()).reason, store=store)
    poke_feed(request)
    return {"job": jsonable_encoder(client.get_job(job_id, store=store).to_dict())}
