"""The dashboard at `/test-worker` (and `/`): server-rendered panels that update live over SSE.

Every panel is rendered on the server from the change feed's latest sample (one sample serves every
viewer) plus two bounded reads: the filtered job list and the recent briefs. Jinja2 escapes everything it
prints, so a payload or error holding HTML or a script shows as text. The page's small script only swaps
in re-rendered panels when an event says something changed, and sends retry/cancel with the key.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from ..api.auth import reads_are_open, require_read
from ..api.models import StorableText
from ..briefs import Brief
from ..feed import ChangeFeed, Snapshot
from ..job import JobRecord
from ..states import JobStatus
from ..store import Store
from .chart import throughput_chart

log = logging.getLogger("supaworker.dashboard")

HERE = Path(__file__).parent
JOBS_LIMIT = 25
BRIEFS_LIMIT = 8
PREVIEW_CHARS = 120
PANELS = ("summary", "chart", "pending", "active", "stats", "failures", "workers", "briefs", "jobs")

_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _first_line(text: str) -> str:
    """An error's first line (the exception and its message); the traceback stays in the tooltip."""
    return text.strip().split("\n", 1)[0]


def _since(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else _duration((now - moment).total_seconds())


_env.filters["preview"] = _preview
_env.filters["duration"] = _duration
_env.filters["first_line"] = _first_line
_env.globals["STATUSES"] = [s.value for s in JobStatus]


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
    store = request.app.state.store
    jobs = store.list_jobs(status=filters["status"], type=filters["type"], limit=JOBS_LIMIT)
    series = feed.series()
    recent = series[-12:]  # the last minute
    finished_last_minute = sum(b.completed + b.failed for b in recent)
    return {
        "snap": snapshot,
        "now": snapshot.taken_at,
        "since": lambda moment: _since(moment, snapshot.taken_at),
        "totals": snapshot.totals,
        "types": snapshot.types,
        "throughput": finished_last_minute / 60,
        "chart_data": throughput_chart(series),
        "job_rows": [j.to_dict() for j in jobs],
        "brief_list": _recent_briefs(store),
        "filters": filters,
        "seq": feed.seq,
    }


def render_panels(request: Request, filters: dict[str, str | None]) -> dict[str, str]:
    module = _env.get_template("panels.html").make_module(_context(request, filters))
    return {name: str(getattr(module, name)()) for name in PANELS}


def _trusted(panels: dict[str, str]) -> dict[str, Markup]:
    # Rendered by our own autoescaping templates: mark them safe so the page does not escape them twice.
    return {name: Markup(html) for name, html in panels.items()}


router = APIRouter(include_in_schema=False)
TypeFilter = Annotated[StorableText | None, Query(max_length=128)]


@router.get("/", response_class=HTMLResponse)
@router.get("/test-worker", response_class=HTMLResponse)
def dashboard(request: Request, type: TypeFilter = None, status: str | None = Query(None)) -> HTMLResponse:
    settings = request.app.state.settings
    filters = _filters(type, status)
    public = reads_are_open(request)
    panels = _trusted(render_panels(request, filters)) if public else {}
    page = _env.get_template("dashboard.html").render(
        panels=panels, public=public, filters=filters, has_keys=bool(settings.keys)
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/test-worker/panels", dependencies=[Depends(require_read)])
def panels(request: Request, type: TypeFilter = None, status: str | None = Query(None)) -> JSONResponse:
    """Every panel re-rendered, as {panel: html}; the page swaps them in when an event arrives."""
    return JSONResponse(
        {"seq": request.app.state.feed.seq, "panels": render_panels(request, _filters(type, status))},
        headers={"Cache-Control": "no-store"},
    )


def add_dashboard(app: Any) -> None:
    """Mounts the dashboard pages and their static files on the API app."""
    app.include_router(router)
    app.mount("/test-worker/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
