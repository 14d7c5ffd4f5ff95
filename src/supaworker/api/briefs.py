"""`/api/briefs`: create a brief with its job(s), list briefs, show one with each step's status, retry or
cancel it. Every route calls the functions of `supaworker.briefs`; none writes SQL of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import briefs, rules
from ..errors import BriefNotFound, InvalidBrief
from .auth import reads, session_user, writes
from .contract import EVENT_STREAM_RESPONSE, error_responses, event_stream
from .jobs import poke_feed, read_store_of, store_of
from .models import BriefCreate, CancelRequest, DateTimeText, NonBlankText

router = APIRouter(prefix="/api/briefs", tags=["briefs"])

LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
DEFAULT_CANCEL_REASON = "brief cancelled by request"
# The brief's event stream looks again at least this often (the change feed's hints come sooner).
BRIEF_POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# What a signed-in user sees of their brief's steps: the columns expose_briefs() grants (no payload, which may
# hold an application's private options, and no worker bookkeeping).
USER_STEP_FIELDS = (
    "id", "brief_id", "type", "status", "progress", "progress_message", "progress_at", "result", "last_error",
    "attempts", "max_attempts", "created_at", "started_at", "completed_at",
)  # fmt: skip


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


@writes(router, "", "Create a brief and its job(s)", status_code=201)
def create_brief(request: Request, body: BriefCreate) -> dict[str, Any]:
    """Writes the brief and all its step jobs in one transaction: one `analysis` job, or with
    `use_pipeline` the media type's whole pipeline (later steps wait for the one before)."""
    created = briefs.create_brief_with_job(**body.model_dump(), store=store_of(request))
    poke_feed(request)
    view = brief_view(created.brief)
    return {"brief": view, "job": view["steps"][0], "jobs": view["steps"]}


@reads(router, "", "Briefs, newest first", 400)
def list_briefs(
    request: Request,
    user_id: Annotated[NonBlankText | None, Query(min_length=1, max_length=rules.MAX_USER_ID_LENGTH)] = None,
    status: str | None = Query(
        None,
        description=f"One of {', '.join(s.value for s in briefs.BriefStatus)}.",
        json_schema_extra={"enum": [s.value for s in briefs.BriefStatus]},
    ),
    before: Annotated[DateTimeText | None, Query(description="The next page: the previous `next_before`.")] = None,
    limit: int = Query(LIST_LIMIT_DEFAULT, ge=1, le=LIST_LIMIT_MAX),
) -> dict[str, Any]:
    """Briefs (without their steps; `GET /api/briefs/{id}` has them), optionally of one user or status."""
    try:
        found = briefs.list_briefs(
            user_id=user_id, status=status, before=before, limit=limit, store=read_store_of(request)
        )
    except InvalidBrief as exc:
        raise HTTPException(400, str(exc)) from None
    next_before = _page_mark(found[-1].created_at) if len(found) == limit else None
    return jsonable_encoder({"count": len(found), "briefs": [b.to_dict() for b in found], "next_before": next_before})


def _page_mark(created_at: datetime) -> str | datetime:
    """In UTC with a `Z`: pasted into a URL as it is, a `+00:00` offset read as ` 00:00` (422). A time plain SQL
    stored at the edge of Python's range (or 'infinity') stays as it was read: UTC may lie beyond that range."""
    try:
        return created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, AttributeError):
        return created_at


@reads(router, "/{brief_id}", "A brief with each pipeline step's status", 404)
def get_brief(request: Request, brief_id: str) -> dict[str, Any]:
    """Read from the primary even with a replica: a client that just created the brief gets it, not a 404."""
    return {"brief": brief_view(briefs.get_brief(brief_id, store=store_of(request)))}


@writes(router, "/{brief_id}/retry", "Resume a failed or cancelled brief", 404, 409)
def retry_brief(request: Request, brief_id: str) -> dict[str, Any]:
    """Puts the step that stopped the brief back in the queue and the steps after it back to waiting."""
    brief = briefs.retry_brief(brief_id, store=store_of(request))
    poke_feed(request)
    return {"brief": brief_view(brief)}


@writes(router, "/{brief_id}/cancel", "Cancel a brief's unfinished steps", 404, 409)
def cancel_brief(
    request: Request, brief_id: str, body: Annotated[CancelRequest | None, Body()] = None
) -> dict[str, Any]:
    reason = body.reason if body else DEFAULT_CANCEL_REASON
    brief = briefs.cancel_brief(brief_id, reason, store=store_of(request))
    poke_feed(request)
    return {"brief": brief_view(brief)}


def _readable_brief(request: Request, brief_id: str, user: str | None) -> briefs.Brief:
    """The brief, if this reader may see it: every brief for a key, only their own for a signed-in user (another
    user's brief is answered as missing, as row-level security answers it). From the primary, as `GET
    /api/briefs/{id}`: the stream follows a brief its reader has usually just created."""
    brief = briefs.get_brief(brief_id, store=store_of(request))
    if user is not None and brief.user_id != user:
        raise BriefNotFound(f"no brief with id {brief_id}")
    return brief


def _fingerprint(view: dict[str, Any]) -> str:
    steps = [(s["id"], s["status"], s.get("progress"), s.get("progress_message"), s["attempts"]) for s in view["steps"]]
    return json.dumps([view["status"], view["steps_completed"], view["error"], steps], default=str)


@router.get(
    "/{brief_id}/events",
    summary="Server-sent events of one brief's progress",
    response_class=StreamingResponse,
    responses={200: EVENT_STREAM_RESPONSE, **error_responses(404)},
)
async def brief_events(request: Request, brief_id: str) -> StreamingResponse:
    """A `text/event-stream` of one brief: a `brief` event at once (as `GET /api/briefs/{id}` shows it), another
    each time its status or a step's status or progress changes, then `end` once it completed, failed or
    was cancelled. Accepts the service key, or the brief owner's Supabase session JWT (verified with
    SUPABASE_JWT_SECRET; `?access_token=` for EventSource): a user sees only their own briefs, and of their
    steps what end users may read through PostgREST (no payloads)."""
    user = session_user(request)
    first = await run_in_threadpool(_readable_brief, request, brief_id, user)
    return event_stream(_brief_stream(request, brief_id, user, first))


async def _brief_stream(request: Request, brief_id: str, user: str | None, brief: briefs.Brief) -> AsyncIterator[str]:
    feed = getattr(request.app.state, "feed", None)
    hints = feed.subscribe() if feed is not None else None
    last = None
    quiet = 0.0
    try:
        while True:
            view = brief_view(brief)
            if user is not None:
                view["steps"] = [{name: step.get(name) for name in USER_STEP_FIELDS} for step in view["steps"]]
            seen = _fingerprint(view)
            if seen != last:
                last = seen
                quiet = 0.0
                yield f"event: brief\ndata: {json.dumps(view, default=str)}\n\n"
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keepalive\n\n"
            if view["status"] in FINAL_STATUSES:
                yield f"event: end\ndata: {json.dumps({'status': view['status']})}\n\n"
                return
            started = asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(BRIEF_POLL_SECONDS):
                    if hints is not None:
                        if await hints.get() is None:
                            return  # the server is shutting down
                    else:
                        await asyncio.sleep(BRIEF_POLL_SECONDS)
            except TimeoutError:
                pass
            quiet += asyncio.get_running_loop().time() - started
            if await request.is_disconnected():
                return
            brief = await run_in_threadpool(_readable_brief, request, brief_id, user)
    finally:
        if hints is not None and feed is not None:
            feed.unsubscribe(hints)
