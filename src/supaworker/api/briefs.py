"""`/api/briefs`: create a brief with its job(s), list briefs, show one with each step's status, retry or
cancel it. Every route calls the functions of `supaworker.briefs`; none writes SQL of its own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder

from .. import briefs
from ..errors import InvalidBrief
from .auth import require_read, require_write
from .contract import error_responses
from .jobs import poke_feed, store_of
from .models import BriefCreate, CancelRequest, DateTimeText, StorableText

router = APIRouter(prefix="/api/briefs", tags=["briefs"])

LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
DEFAULT_CANCEL_REASON = "brief cancelled by request"


def step_statuses(brief: briefs.Brief) -> list[dict[str, Any]]:
    """One entry per pipeline step, in order: what it is, which job runs it, and where it stands."""
    return [
        {
            "step": number,
            "type": job.type,
            "job_id": job.id,
            "status": str(job.status),
            "attempts": job.attempts,
            "started_at": job.started_at,
            "completed_at": job.completed_at,
            "error": job.last_error,
        }
        for number, job in enumerate(brief.steps, start=1)
    ]


def brief_view(brief: briefs.Brief) -> dict[str, Any]:
    """A brief as the API shows it: its fields, its steps (the jobs, in order), and each step's status."""
    return jsonable_encoder({**brief.to_dict(), "step_statuses": step_statuses(brief)})


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(require_write)],
    summary="Create a brief and its job(s)",
    responses=error_responses(413),
)
def create_brief(request: Request, body: BriefCreate) -> dict[str, Any]:
    """Writes the brief and all its step jobs in one transaction: one `analysis` job, or with
    `use_pipeline` the media type's whole pipeline (later steps wait for the one before)."""
    created = briefs.create_brief_with_job(**body.model_dump(), store=store_of(request))
    poke_feed(request)
    view = brief_view(created.brief)
    return {"brief": view, "job": view["steps"][0], "jobs": view["steps"]}


@router.get("", dependencies=[Depends(require_read)], summary="Briefs, newest first", responses=error_responses(400))
def list_briefs(
    request: Request,
    user_id: Annotated[StorableText | None, Query(min_length=1, max_length=briefs.MAX_USER_ID_LENGTH)] = None,
    status: str | None = Query(None, description=f"One of {', '.join(s.value for s in briefs.BriefStatus)}."),
    before: Annotated[DateTimeText | None, Query(description="The next page: the previous `next_before`.")] = None,
    limit: int = Query(LIST_LIMIT_DEFAULT, ge=1, le=LIST_LIMIT_MAX),
) -> dict[str, Any]:
    """Briefs (without their steps; `GET /api/briefs/{id}` has them), optionally of one user or status."""
    try:
        found = briefs.list_briefs(user_id=user_id, status=status, before=before, limit=limit, store=store_of(request))
    except InvalidBrief as exc:
        raise HTTPException(400, str(exc)) from None
    next_before = found[-1].created_at if len(found) == limit else None
    return jsonable_encoder({"count": len(found), "briefs": [b.to_dict() for b in found], "next_before": next_before})


@router.get(
    "/{brief_id}",
    dependencies=[Depends(require_read)],
    summary="A brief with each pipeline step's status",
    responses=error_responses(404),
)
def get_brief(request: Request, brief_id: str) -> dict[str, Any]:
    return {"brief": brief_view(briefs.get_brief(brief_id, store=store_of(request)))}


@router.post(
    "/{brief_id}/retry",
    dependencies=[Depends(require_write)],
    summary="Resume a failed or cancelled brief",
    responses=error_responses(404, 409, 413),
)
def retry_brief(request: Request, brief_id: str) -> dict[str, Any]:
    """Puts the step that stopped the brief back in the queue and the steps after it back to waiting."""
    brief = briefs.retry_brief(brief_id, store=store_of(request))
    poke_feed(request)
    return {"brief": brief_view(brief)}


@router.post(
    "/{brief_id}/cancel",
    dependencies=[Depends(require_write)],
    summary="Cancel a brief's unfinished steps",
    responses=error_responses(404, 409, 413),
)
def cancel_brief(
    request: Request, brief_id: str, body: Annotated[CancelRequest | None, Body()] = None
) -> dict[str, Any]:
    reason = body.reason if body else DEFAULT_CANCEL_REASON
    brief = briefs.cancel_brief(brief_id, reason, store=store_of(request))
    poke_feed(request)
    return {"brief": brief_view(brief)}
