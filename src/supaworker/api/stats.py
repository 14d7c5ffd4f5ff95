"""`GET /api/jobs?action=stats`: jobs per type and status at the dashboard's cost, whatever the table holds.

The `job_stats` view groups the whole jobs table, so its cost grows with the history (0.38 s at 210,000 rows)
and its answer with the number of types. This answer reads at most `count_cap` jobs per status through each
status's own index (the dashboard's SUPAWORKER_DASHBOARD_COUNT_CAP), carries at most STATS_TYPES_LIMIT types
(`truncated` says when there were more), and one reading serves every request for STATS_MAX_AGE_SECONDS, as
one sample of the change feed serves every dashboard. The view stays for SQL users who want exact figures.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder

from ..store import Store

STATS_TYPES_LIMIT = 100
STATS_MAX_AGE_SECONDS = 1.0
_ROW_COLUMNS = (
    "type",
    "status",
    "count",
    "avg_duration_seconds",
    "p50_duration_seconds",
    "p95_duration_seconds",
    "oldest_created_at",
    "newest_created_at",
)
_create_lock = threading.Lock()


class JobStatsReader:
    """Reads the capped stats, once per STATS_MAX_AGE_SECONDS however many requests ask: a request that
    arrives while a reading runs waits for it and shares it."""

    def __init__(
        self,
        store: Store,
        count_cap: int,
        *,
        types_limit: int = STATS_TYPES_LIMIT,
        max_age_seconds: float = STATS_MAX_AGE_SECONDS,
    ) -> None:
        self.store = store
        self.count_cap = count_cap
        self.types_limit = types_limit
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        self._answer: dict[str, Any] | None = None
        self._read_at = 0.0

    def answer(self) -> dict[str, Any]:
        with self._lock:
            if self._answer is None or time.monotonic() - self._read_at >= self.max_age_seconds:
                self._answer = self._read()
                self._read_at = time.monotonic()
            return self._answer

    def _read(self) -> dict[str, Any]:
        with self.store.connection() as conn:
            as_of = self.store.database_now(conn)
            rows = self.store.job_stats_capped(self.count_cap, self.types_limit, conn)
        shown = [row for row in rows if row["type_rank"] <= self.types_limit]
        return {
            "action": "stats",
            "stats": jsonable_encoder([{c: row[c] for c in _ROW_COLUMNS} for row in shown]),
            "truncated": len(shown) < len(rows),
            "types_limit": self.types_limit,
            "count_cap": self.count_cap,
            "capped_statuses": sorted({row["status"] for row in rows if row["capped"]}),
            "as_of": jsonable_encoder(as_of),
        }


def job_stats_answer(request: Request) -> dict[str, Any]:
    """The answer to `action=stats`, from the app's reader (made on first use)."""
    state = request.app.state
    reader = getattr(state, "job_stats_reader", None)
    if reader is None:
        with _create_lock:
            reader = getattr(state, "job_stats_reader", None)
            if reader is None:
                reader = state.job_stats_reader = JobStatsReader(state.read_store, state.settings.count_cap)
    return reader.answer()
