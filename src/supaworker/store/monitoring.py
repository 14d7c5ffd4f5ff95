"""Reads for the API, the dashboard, metrics and the CLI: bounded and indexed, so they stay cheap on a big
jobs table (the job_stats view excepted: it is for SQL users who want exact figures)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from .base import StoreBase


class MonitoringQueries(StoreBase):
    def job_stats(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.job_stats, {}, conn)

    def job_stats_capped(self, cap: int, types: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        """The job_stats view's rows over at most `cap` jobs per status, for the `types` types with the most of
        them (plus the next type's rows, rank `types + 1`, when there are more); see job_stats_capped.sql."""
        return self._rows(self.q.job_stats_capped, {"cap": cap, "types": types}, conn)

    def pending_jobs(self, limit: int = 100, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.pending_jobs, {"limit": limit}, conn)

    def active_jobs(self, limit: int = 100, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.active_jobs, {"limit": limit}, conn)

    def database_now(self, conn: psycopg.Connection | None = None) -> datetime:
        return self._value(self.q.database_now, {}, conn)

    def max_job_id(self, conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.max_job_id, {}, conn))

    def count_jobs_capped(self, cap: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        """Rows of (status, type, count), reading at most `cap` jobs per status."""
        return self._rows(self.q.count_jobs_capped, {"cap": cap}, conn)

    def list_finished_jobs(
        self, since: datetime, limit: int, conn: psycopg.Connection | None = None
    ) -> list[dict[str, Any]]:
        return self._rows(self.q.list_finished_jobs, {"since": since, "limit": limit}, conn)

    def list_running_jobs(self, limit: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_running_jobs, {"limit": limit}, conn)

    def list_pending_head(self, limit: int, cap: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_pending_head, {"limit": limit, "cap": cap}, conn)

    def list_recent_failures(self, limit: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_recent_failures, {"limit": limit}, conn)

    def list_live_workers(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_live_workers, {}, conn)

    def table_health(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.table_health, {"schema": self.q.schema}, conn)

    def jobs_tuple_counts(self, conn: psycopg.Connection | None = None) -> tuple[int, int]:
        """(live, dead) tuples of the jobs table from the statistics; (0, 0) before any were gathered."""
        with self.connection(conn) as c:
            row = c.execute(self.q.jobs_tuple_counts).fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

    def list_tenant_backlogs(
        self, keys: int, cap: int, limit: int, conn: psycopg.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Fair-share tenants with jobs queued, biggest backlogs first (see list_tenant_backlogs.sql)."""
        return self._rows(self.q.list_tenant_backlogs, {"keys": keys, "cap": cap, "limit": limit}, conn)
