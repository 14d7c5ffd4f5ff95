"""`/test-worker/briefs` (briefs newest first, by user and status) and `/test-worker/briefs/{id}` (one brief: its
pipeline as steps with status, duration, progress and attempts, and its steps' files previewed inline)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import Request

from ..briefs import BriefStatus
from ..errors import InvalidJob
from ..validation import text_problem
from .artifacts import artifacts_of
from .jobs_page import int_arg
from .pages import NotFound, Page, Section
from .render import seconds_between

BRIEFS_PAGE = 25
BRIEFS_SCAN = 500  # briefs looked at per page when a status is asked for (each one's status is derived)
STEPS_LIMIT = 200
STEP_TEXT_CHARS = 4_000
STEP_RESULT_BYTES = 65_536


def _cursor(raw: str | None) -> tuple[datetime | None, UUID | None]:
    """`before` is `<created_at>|<id>` of the last brief seen."""
    if not raw:
        return None, None
    at, _, ident = raw.partition("|")
    try:
        return datetime.fromisoformat(at), UUID(ident)
    except ValueError:
        raise InvalidJob(f"before must be the next-page cursor this page gave, not {raw!r}", field="before") from None


def list_context(request: Request, args: dict[str, str]) -> dict[str, Any]:
    status = args.get("status") or None
    if status is not None and status not in BriefStatus.__members__.values():
        raise InvalidJob(f"status must be one of {', '.join(BriefStatus)}, not {status!r}", field="status")
    user = args.get("user_id") or None
    if user is not None and (text_problem(user) or len(user) > 255):
        raise InvalidJob("user_id must be text of at most 255 characters without NUL", field="user_id")
    before_at, before_id = _cursor(args.get("before"))
    limit = int_arg(args, "limit", 1, 100, BRIEFS_PAGE) or BRIEFS_PAGE
    store = request.app.state.read_store
    params = {
        "user_id": user,
        "status": status,
        "before_at": before_at,
        "before_id": before_id,
        "scan": BRIEFS_SCAN if status else limit,
        "limit": limit,
    }
    with store.connection() as conn:
        rows = store.console_briefs(params, conn)
        now = store.database_now(conn)
    query = {k: v for k, v in (("user_id", user), ("status", status)) if v}
    next_query = None
    if len(rows) == limit:
        last = rows[-1]
        next_query = {**query, "before": f"{last['created_at'].isoformat()}|{last['id']}"}
    return {"now": now, "briefs": rows, "next_query": next_query, "filter_query": query, "status": status,
            "first_page": before_at is None, "scan": BRIEFS_SCAN}  # fmt: skip


def detail_context(request: Request, args: dict[str, str]) -> dict[str, Any]:
    try:
        brief_id = UUID(args.get("brief_id", ""))
    except ValueError:
        raise NotFound(f"no brief with id {args.get('brief_id')!r}") from None
    store = request.app.state.read_store
    with store.connection() as conn:
        brief = store.get_brief(brief_id, conn)
        if brief is None:
            raise NotFound(f"no brief with id {brief_id}")
        params = {
            "id": brief_id,
            "limit": STEPS_LIMIT,
            "text_chars": STEP_TEXT_CHARS,
            "result_bytes": STEP_RESULT_BYTES,
        }
        steps = store.console_brief_steps(params, conn)
        now = store.database_now(conn)
    for step in steps:
        step["duration"] = seconds_between(step["started_at"], step["completed_at"])
        step["artifacts"] = artifacts_of(request, step["id"], step["result"])
    return {"now": now, "brief": brief, "step_rows": steps, "steps_limit": STEPS_LIMIT}


BRIEF_SECTIONS = (Section("summary", "Brief"), Section("steps", "Pipeline"), Section("artifacts", "Artifacts"))
PAGES = [
    Page("/briefs", "briefs.html", "Briefs", list_context, (Section("list", "Briefs"),)),
    Page("/briefs/{brief_id}", "brief.html", "Brief", detail_context, BRIEF_SECTIONS),
]
