"""`/test-worker/periodic` (schedules: cron, next and last run, on or off) and `/test-worker/workers` (each
worker: id, host, process id, start, jobs running and claimed ahead, last lease renewal)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from ..periodic import SCHEDULES_LIMIT, list_periodic_schedules
from .pages import Page, Section

WORKERS_LIMIT = 500
HELD_CAP = 10_000  # processing jobs read to count each worker's
_WORKER_ID = re.compile(r"^worker-(\d+)-(\d{10,16})$")


def periodic_context(request: Request, args: dict[str, str]) -> dict[str, Any]:
    rows = list_periodic_schedules(SCHEDULES_LIMIT, store=request.app.state.read_store)
    now = rows[0]["db_now"] if rows else request.app.state.read_store.database_now()
    return {"now": now, "schedule_rows": rows, "limit": SCHEDULES_LIMIT}


def worker_identity(worker_id: str) -> tuple[int | None, datetime | None]:
    """The process id and start time a worker's id carries (`worker-<pid>-<epoch ms>`), when it has that form."""
    match = _WORKER_ID.match(worker_id or "")
    if not match:
        return None, None
    try:
        return int(match.group(1)), datetime.fromtimestamp(int(match.group(2)) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return int(match.group(1)), None


def workers_context(request: Request, args: dict[str, str]) -> dict[str, Any]:
    state = request.app.state
    # From the primary even with a replica: a worker is known by its sessions there (a replica's
    # pg_stat_activity lists its own), and the jobs it holds are read in the same statement.
    rows = state.store.list_workers(state.settings.lease_seconds, HELD_CAP, WORKERS_LIMIT)
    now = rows[0]["db_now"] if rows else state.store.database_now()
    for row in rows:
        row["pid"], row["started"] = worker_identity(row["worker_id"])
        row["running"] = row["held"] - row["prefetched"]
    return {"now": now, "worker_rows": rows, "limit": WORKERS_LIMIT, "lease_seconds": state.settings.lease_seconds}


PAGES = [
    Page("/periodic", "periodic.html", "Periodic jobs", periodic_context, (Section("schedules", "Schedules"),)),
    Page("/workers", "workers.html", "Workers", workers_context, (Section("workers", "Workers"),)),
]
