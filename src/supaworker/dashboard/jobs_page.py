"""`/test-worker/jobs` (every job findable, with bulk actions) and `/test-worker/jobs/{id}` (one job in full:
payload and result, progress, every attempt, a timeline, its parents and children, its brief)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from fastapi import Request

from ..errors import InvalidJob
from ..job_search import PAGE_LIMIT, PAGE_LIMIT_MAX, JobFilter, JobSearch
from ..rules import MAX_BIGINT
from .pages import NotFound, Page, Section
from .render import JSON_TREE_NODES, seconds_between

DETAIL_TEXT_CHARS = 65_536  # payload, result and each error shown up to this many characters
TREE_BYTES = 262_144  # payloads and results up to this size are loaded whole and drawn as a tree
ATTEMPTS_SHOWN = 100  # the newest entries of a job's attempt history
RELATIVES_LIMIT = 50  # parents and children drawn, each


def int_arg(args: dict[str, str], name: str, low: int, high: int, default: int | None) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidJob(f"{name} must be a whole number, not {raw!r}", field=name) from None
    if not low <= value <= high:
        raise InvalidJob(f"{name} must be from {low} to {high}", field=name)
    return value


def list_context(request: Request, args: dict[str, str]) -> dict[str, Any]:
    flt = JobFilter.parse(args)
    before = int_arg(args, "before", 1, MAX_BIGINT, None)
    limit = int_arg(args, "limit", 1, PAGE_LIMIT_MAX, PAGE_LIMIT) or PAGE_LIMIT
    store = request.app.state.read_store
    page = JobSearch(store).page(flt, before_id=before, limit=limit)
    query = flt.to_query()
    return {
        "now": store.database_now(),
        "flt": flt,
        "result": page,
        "rows": page.rows,
        "filter_query": query,
        "next_query": {**query, "before": page.next_before, "limit": limit} if page.next_before else None,
        "first_page": before is None,
    }


def _when(value: Any) -> datetime | None:
    """A time from an attempt entry (JSON text); None when it is missing or unreadable."""
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value)
    return None


def attempts_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt the job's history and row tell of, oldest first: each failed one from its errors entry,
    and the last one (running, completed or cancelled) from the row itself."""
    attempts = []
    for entry in job["attempt_errors"] or []:
        started, ended = _when(entry.get("started_at")), _when(entry.get("at"))
        attempts.append(
            {
                "number": entry.get("attempt"),
                "worker_id": entry.get("worker_id"),
                "started_at": started,
                "ended_at": ended,
                "duration": seconds_between(started, ended),
                "outcome": "failed",
                "error": entry.get("error") if isinstance(entry.get("error"), str) else None,
            }
        )
    recorded = {a["number"] for a in attempts}
    last = {"number": job["attempts"], "worker_id": job["worker_id"], "started_at": job["started_at"], "error": None}
    if job["status"] == "processing":
        attempts.append({**last, "ended_at": None, "duration": None, "outcome": "running"})
    elif job["status"] in ("completed", "cancelled") and job["attempts"] and job["attempts"] not in recorded:
        ended = job["completed_at"]
        outcome = job["status"]
        error = job["last_error"] if outcome == "cancelled" else None
        attempts.append(
            {**last, "ended_at": ended, "duration": seconds_between(job["started_at"], ended), "outcome": outcome,
             "error": error}
        )  # fmt: skip
    return attempts


def timeline_of(job: dict[str, Any], attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What happened to the job, in order, each with its time."""
    events = [{"at": job["created_at"], "what": "created"}]
    if job["run_at"] and job["run_at"] != job["created_at"] and job["status"] in ("pending", "waiting"):
        events.append({"at": job["run_at"], "what": "runnable from"})
    for a in attempts:
        if a["started_at"]:
            events.append({"at": a["started_at"], "what": f"attempt {a['number']} started on {a['worker_id'] or '?'}"})
        if a["ended_at"]:
            events.append({"at": a["ended_at"], "what": f"attempt {a['number']} {a['outcome']}"})
    if job["progress_at"]:
        events.append({"at": job["progress_at"], "what": f"progress {job['progress'] or 0:.0f}%"})
    if job["status"] == "failed" and job["completed_at"]:
        events.append({"at": job["completed_at"], "what": "failed for good"})
    readable = [e for e in events if isinstance(e["at"], datetime)]
    readable.sort(key=lambda e: e["at"])
    start = readable[0]["at"] if readable else None
    for event in readable:
        event["offset"] = seconds_between(start, event["at"])
    return readable


def detail_context(request: Request, args: dict[str, str]) -> dict[str, Any]:
    job_id = int_arg(args, "job_id", 1, MAX_BIGINT, None)
    store = request.app.state.read_store
    params = {"id": job_id, "text_chars": DETAIL_TEXT_CHARS, "tree_bytes": TREE_BYTES, "attempts": ATTEMPTS_SHOWN}
    with store.connection() as conn:
        job = store.console_job(params, conn)
        if job is None:
            raise NotFound(f"no job with id {job_id}")
        relatives = store.job_relatives(job_id, RELATIVES_LIMIT, conn)
        now = store.database_now(conn)
    attempts = attempts_of(job)
    return {
        "now": now,
        "job": job,
        "attempt_rows": attempts,
        "events": timeline_of(job, attempts),
        "parents": [r for r in relatives if r["relation"] == "parent"],
        "children": [r for r in relatives if r["relation"] == "child"],
        "relatives_limit": RELATIVES_LIMIT,
        "text_chars": DETAIL_TEXT_CHARS,
        "tree_nodes": JSON_TREE_NODES,
    }


JOB_SECTIONS = (
    Section("summary", "Job"),
    Section("attempts", "Attempts"),
    Section("graph", "Parents and children", wide=False),
    Section("timeline", "Timeline", wide=False),
    Section("data", "Payload and result"),
)
PAGES = [
    Page("/jobs", "jobs.html", "Jobs", list_context, (Section("results", "Matching jobs"),)),
    Page("/jobs/{job_id}", "job.html", lambda args: f"Job {args.get('job_id', '')}", detail_context, JOB_SECTIONS),
]
