"""The console's routes, and its overview at `/test-worker` (and `/`): server-rendered panels, live over SSE.

The overview is rendered from the change feed's latest sample (one sample serves every viewer) plus two
bounded reads: the filtered job list and the recent briefs. The other pages (jobs, one job, briefs, queues
and types, periodic schedules, workers) live in their own modules and are served by `pages.add_pages`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..api.auth import reads_are_open, require_read
from ..api.models import StorableText
from ..briefs import Brief
from ..feed import ChangeFeed, Snapshot
from ..job import JobRecord
from ..rules import MAX_TYPE_LENGTH
from ..states import JobStatus
from ..store import Store
from . import artifacts, briefs_page, jobs_page, ops_page, queues_page
from .chart import throughput_chart
from .pages import NO_STORE, add_pages
from .render import HERE, env, epoch, trusted

JOBS_LIMIT = 25
BRIEFS_LIMIT = 8
PANELS = ("summary", "chart", "pending", "active", "stats", "failures", "workers", "briefs", "jobs")


def _filters(type: str | None, status: str | None) -> dict[str, str | None]:
    if status is not None and status not in JobStatus.__members__.values():
        raise HTTPException(400, f"status must be one of {', '.join(s.value for s in JobStatus)}, not {status!r}")
    return {"type": type or None, "status": status or None}


def _recent_briefs(store: Store) -> list[Brief]:
    """The latest briefs, each with its steps: two reads however many briefs the panel shows."""
    with store.connection() as conn:
        rows = store.list_briefs(limit=BRIEFS_LIMIT, conn=conn)
        steps = store.list_brief_steps([row["id"] for row in rows], conn=conn) if rows else []
    by_brief: dict[Any, list[JobRecord]] = {}
    for step in steps:
        by_brief.setdefault(step.brief_id, []).append(step)
    return [Brief.from_row(row, by_brief.get(row["id"], [])) for row in rows]


def _context(request: Request, filters: dict[str, str | None]) -> dict[str, Any]:
    feed: ChangeFeed = request.app.state.feed
    snapshot = feed.snapshot or Snapshot(taken_at=datetime.now(UTC))
    store = request.app.state.read_store
    jobs = store.list_jobs(status=filters["status"], type=filters["type"], limit=JOBS_LIMIT)
    series = feed.series()
    recent = series[-12:]  # the last minute
    finished_last_minute = sum(b.completed + b.failed for b in recent)
    # The oldest runnable job's age as an instant, so the page keeps it ticking between samples.
    oldest = None
    if snapshot.oldest_pending_age_seconds is not None:
        with contextlib.suppress(OverflowError, ValueError):  # an odd created_at stored by plain SQL
            oldest = snapshot.taken_at - timedelta(seconds=snapshot.oldest_pending_age_seconds)
    return {
        "snap": snapshot,
        "now": snapshot.taken_at,
        "totals": snapshot.totals,
        "types": snapshot.types,
        "throughput": finished_last_minute / 60,
        "chart_data": throughput_chart(series),
        "job_rows": [j.to_dict() for j in jobs],
        "brief_list": _recent_briefs(store),
        "oldest_pending_at": oldest,
        "filters": filters,
        "seq": feed.seq,
    }


def render_panels(request: Request, filters: dict[str, str | None]) -> tuple[dict[str, str], datetime]:
    context = _context(request, filters)
    module = env.get_template("panels.html").make_module(context)
    return {name: str(getattr(module, name)()) for name in PANELS}, context["now"]


router = APIRouter(include_in_schema=False)
TypeFilter = Annotated[StorableText | None, Query(max_length=MAX_TYPE_LENGTH)]


@router.get("/", response_class=HTMLResponse)
@router.get("/test-worker", response_class=HTMLResponse)
def dashboard(request: Request, type: TypeFilter = None, status: str | None = Query(None)) -> HTMLResponse:
    settings = request.app.state.settings
    filters = _filters(type, status)
    public = reads_are_open(request)
    panels, now = render_panels(request, filters) if public else ({}, None)
    query = request.url.query
    page = env.get_template("dashboard.html").render(
        title="Overview",
        page_name="overview",
        panels=trusted(panels),
        public=public,
        filters=filters,
        has_keys=bool(settings.keys),
        panels_url="/test-worker/panels" + (f"?{query}" if query else ""),
        db_now=epoch(now),
    )
    return HTMLResponse(page, headers=NO_STORE)


@router.get("/test-worker/panels", dependencies=[Depends(require_read)])
def panels(request: Request, type: TypeFilter = None, status: str | None = Query(None)) -> JSONResponse:
    """Every panel re-rendered, as {panel: html}; the page patches them in when an event arrives."""
    rendered, now = render_panels(request, _filters(type, status))
    return JSONResponse({"seq": request.app.state.feed.seq, "db_now": epoch(now), "panels": rendered}, headers=NO_STORE)


def add_dashboard(app: Any) -> None:
    """Mounts the console's pages, its artifact previews and its static files on the API app."""
    app.include_router(router)
    pages = APIRouter(include_in_schema=False)
    add_pages(pages, [*jobs_page.PAGES, *briefs_page.PAGES, *queues_page.PAGES, *ops_page.PAGES])
    app.include_router(pages)
    app.include_router(artifacts.router)
    app.mount("/test-worker/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
