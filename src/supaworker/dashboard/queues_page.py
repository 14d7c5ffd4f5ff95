"""`/test-worker/queues`: each type's and queue's backlog, oldest wait, running jobs, throughput and p50 / p95
wait and run time over the last hour and day (with a chart of the day), pauses and limits to edit.

Counts come from the change feed's sample (capped per status); the runnable head and running jobs from one
bounded read (queue_backlog.sql); throughput and percentiles from queue_stats' capped sample."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..feed import Snapshot
from .chart import sparkline
from .pages import Page, Section
from .queue_stats import PER_SLICE, SLICES, QueueStatsReader

BACKLOG_CAP = 1_000  # runnable jobs read, in claim order, for each type's and queue's oldest wait
TENANTS_SCANNED = 1_000  # fair-share tenants looked at (the claim looks at as many)
TENANTS_SHOWN = 50
TENANT_BACKLOG_CAP = 1_000  # runnable jobs counted per tenant


def _reader(request: Request) -> QueueStatsReader:
    state = request.app.state
    reader = getattr(state, "queue_stats_reader", None)
    if reader is None:
        reader = state.queue_stats_reader = QueueStatsReader(state.read_store)
    return reader


def context(request: Request, args: dict[str, str]) -> dict[str, Any]:
    state = request.app.state
    store = state.read_store
    snapshot: Snapshot | None = state.feed.snapshot
    stats = _reader(request).stats()
    with store.connection() as conn:
        backlog = store.queue_backlog(BACKLOG_CAP, conn)
        controls = store.list_job_controls(conn)
        tenants = store.list_tenant_backlogs(TENANTS_SCANNED, TENANT_BACKLOG_CAP, TENANTS_SHOWN, conn)
        now = store.database_now(conn)
    runnable_total = sum(r["count"] for r in backlog if r["kind"] == "runnable")
    per_type: dict[str, dict[str, Any]] = {}
    per_queue: dict[str, dict[str, Any]] = {}
    for row in backlog:
        for key, table in ((row["type"], per_type), (row["queue"], per_queue)):
            entry = table.setdefault(key, {"runnable": 0, "running": 0, "oldest_run_at": None})
            entry[row["kind"]] += row["count"]
            oldest = row["oldest_run_at"]
            if oldest is not None and (entry["oldest_run_at"] is None or oldest < entry["oldest_run_at"]):
                entry["oldest_run_at"] = oldest
    counts = snapshot.counts if snapshot else {}
    type_names = sorted(set(per_type) | set(stats.day) | {t for by_type in counts.values() for t in by_type})
    paused = {(c["scope"], c["name"]) for c in controls if c["paused"]}
    limits = {c["name"]: c for c in controls if c["scope"] == "type"}
    types = [
        {
            "name": name,
            "pending": counts.get("pending", {}).get(name, 0),  # the change feed's capped count
            "waiting": counts.get("waiting", {}).get(name, 0),
            "failed": counts.get("failed", {}).get(name, 0),
            **per_type.get(name, {"runnable": 0, "running": 0, "oldest_run_at": None}),
            "hour": stats.hour.get(name),
            "day": stats.day.get(name),
            "spark": sparkline(stats.hourly.get(name, [(0.0, 0.0)] * SLICES)),
            "paused": ("type", name) in paused,
            "limits": limits.get(name),
        }
        for name in type_names
    ]
    queue_names = sorted(set(per_queue) | set(stats.queues) | {c["name"] for c in controls if c["scope"] == "queue"})
    queues = [
        {
            "name": name,
            **per_queue.get(name, {"runnable": 0, "running": 0, "oldest_run_at": None}),
            "hour": stats.queues.get(name),
            "paused": ("queue", name) in paused,
        }
        for name in queue_names
    ]
    return {
        "now": now,
        "type_rows": types,
        "queue_rows": queues,
        "tenant_rows": tenants,
        "tenants_shown": TENANTS_SHOWN,
        "controls": controls,
        "stats": stats,
        "capped": runnable_total >= BACKLOG_CAP,
        "backlog_cap": BACKLOG_CAP,
        "capped_statuses": snapshot.capped if snapshot else frozenset(),
        "per_slice": PER_SLICE,
        "slices": SLICES,
    }


SECTIONS = (
    Section("types", "Types"),
    Section("queues", "Queues"),
    Section("tenants", "Tenants (fair shares)"),
    Section("limits", "Limits and pauses"),
)
PAGES = [Page("/queues", "queues.html", "Queues and types", context, SECTIONS)]
