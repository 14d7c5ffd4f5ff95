"""`/api/briefs`: create a brief with its job(s), show one with each step's status, retry or cancel it."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder

from ..errors import InvalidJob
from .auth import require_read, require_write
from .jobs import _poke, store_of
from .models import BriefCreate, CancelRequest

router = APIRouter(prefix="/api/briefs", tags=["briefs"])

RECENT_LIMIT_MAX = 100


def briefs_module() -> ModuleType:
    """The briefs API, or 501 when this build of supaworker has none."""
    try:
        return importlib.import_module("supaworker.briefs")
    except ImportError:
        raise HTTPException(501, "briefs are not available in this version of supaworker") from None


def brief_view(brief: Any) -> dict[str, Any]:
    """A brief as the API shows it: its fields, its steps (jobs in order), and each step's status."""
    data = brief.to_dict()
    data["step_statuses"] = [{"type": s["type"], "status": s["status"], "job_id": s["id"]} for s in data["steps"]]
    return jsonable_encoder(data)


@router.post("", status_code=201, dependencies=[Depends(require_write)], summary="Create a brief and its job(s)")
def create_brief(request: Request, body: BriefCreate) -> dict[str, Any]:
    briefs = briefs_module()
    try:
        created = briefs.create_brief_with_job(**body.model_dump(), store=store_of(request))
    except InvalidJob as exc:
        raise HTTPException(422, str(exc)) from None
    _poke(request)
    view = brief_view(created.brief)
    return {"brief": view, "job": jsonable_encoder(created.job.to_dict()), "jobs": view["steps"]}


@router.get("", dependencies=[Depends(require_read)], summary="Recent briefs, newest first")
def list_briefs(
    request: Request,
    user_id: str | None = Query(None, max_length=255),
    status: str | None = Query(None),
    limit: int = Query(20, ge=1, le=RECENT_LIMIT_MAX),
) -> dict[str, Any]:
    briefs = briefs_module()
    try:
        found = briefs.list_briefs(user_id=user_id, status=status, limit=limit, store=store_of(request))
    except InvalidJob as exc:
        raise HTTPException(400, str(exc)) from None
    return {"count": len(found), "briefs": jsonable_encoder([b.to_dict() for b in found])}


@router.get("/{brief_id}", dependencies=[Depends(require_read)], summary="A brief with each pipeline step's status")
def get_brief(request: Request, brief_id: str) -> dict[str, Any]:
    return {"brief": brief_view(briefs_module().get_brief(brief_id, store=store_of(request)))}


@router.post("/{brief_id}/retry", dependencies=[Depends(require_write)], summary="Resume a failed or cancelled brief")
def retry_brief(request: Request, brief_id: str) -> dict[str, Any]:
    brief = briefs_module().retry_brief(brief_id, store=store_of(request))
    _poke(request)
    return {"brief": brief_view(brief)}


@router.post("/{brief_id}/cancel", dependencies=[Depends(require_write)], summary="Cancel a brief's unfinished steps")
def cancel_brief(
    request: Request, brief_id: str, body: Annotated[CancelRequest | None, Body()] = None
) -> dict[str, Any]:
    reason = body.reason if body else "brief cancelled by request"
    brief = briefs_module().cancel_brief(brief_id, reason, store=store_of(request))
    _poke(request)
    return {"brief": brief_view(brief)}
