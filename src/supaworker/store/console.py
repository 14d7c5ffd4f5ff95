"""Reads and bulk writes of the operator's console: the job search's ways in, one job in full, briefs, queue
and type figures, periodic schedules and workers. Each read is bounded (a LIMIT or a capped sample) and
served by an index, so the pages stay cheap on a big jobs table."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from .base import StoreBase


class ConsoleQueries(StoreBase):
    # -- job search (see job_search.py) --------------------------------------------------------------
    def search_job_ids_recent(self, before_id: int, scan: int, conn: psycopg.Connection | None = None) -> list[int]:
        rows = self._rows(self.q.search_job_ids_recent, {"before_id": before_id, "scan": scan}, conn)
        return [r["id"] for r in rows]

    def search_job_ids_unsuccessful(
        self, status: str, before_id: int, scan: int, conn: psycopg.Connection | None = None
    ) -> list[int]:
        params = {"status": status, "before_id": before_id, "scan": scan}
        return [r["id"] for r in self._rows(self.q.search_job_ids_unsuccessful, params, conn)]

    def search_job_ids_waiting(self, before_id: int, scan: int, conn: psycopg.Connection | None = None) -> list[int]:
        rows = self._rows(self.q.search_job_ids_waiting, {"before_id": before_id, "scan": scan}, conn)
        return [r["id"] for r in rows]

    def search_job_ids_in_status(self, status: str, cap: int, conn: psycopg.Connection | None = None) -> list[int]:
        return [r["id"] for r in self._rows(self.q.search_job_ids_in_status, {"status": status, "cap": cap}, conn)]

    def search_job_ids_of_briefs(
        self, brief_ids: list[UUID], cap: int, conn: psycopg.Connection | None = None
    ) -> list[int]:
        rows = self._rows(self.q.search_job_ids_of_briefs, {"brief_ids": brief_ids, "cap": cap}, conn)
        return [r["id"] for r in rows]

    def search_user_brief_ids(self, user_id: str, limit: int, conn: psycopg.Connection | None = None) -> list[UUID]:
        rows = self._rows(self.q.search_user_brief_ids, {"user_id": user_id, "limit": limit}, conn)
        return [r["id"] for r in rows]

    def search_jobs(self, params: dict[str, Any], conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.search_jobs, params, conn)

    def search_job_ids_for_action(self, params: dict[str, Any], conn: psycopg.Connection | None = None) -> list[int]:
        return [r["id"] for r in self._rows(self.q.search_jobs, params, conn)]

    # -- bulk writes: one statement per batch of ids -------------------------------------------------
    def retry_jobs(self, ids: list[int], conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.retry_jobs, {"ids": ids}, conn) or 0)

    def cancel_jobs(self, ids: list[int], reason: str, conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.cancel_jobs, {"ids": ids, "reason": reason}, conn) or 0)

    def delete_jobs(self, ids: list[int], conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.delete_jobs, {"ids": ids}, conn) or 0)

    # -- pages ---------------------------------------------------------------------------------------
    def console_job(self, params: dict[str, Any], conn: psycopg.Connection | None = None) -> dict[str, Any] | None:
        rows = self._rows(self.q.console_job, params, conn)
        return rows[0] if rows else None

    def job_relatives(self, job_id: int, limit: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.job_relatives, {"id": job_id, "limit": limit}, conn)

    def console_brief_steps(
        self, params: dict[str, Any], conn: psycopg.Connection | None = None
    ) -> list[dict[str, Any]]:
        return self._rows(self.q.console_brief_steps, params, conn)

    def console_briefs(self, params: dict[str, Any], conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.console_briefs, params, conn)

    def sample_finished_jobs(
        self, now: datetime, slices: int, width_seconds: float, per_slice: int, conn: psycopg.Connection | None = None
    ) -> list[dict[str, Any]]:
        params = {"now": now, "slices": slices, "width": width_seconds, "per_slice": per_slice}
        return self._rows(self.q.sample_finished_jobs, params, conn)

    def queue_backlog(self, cap: int, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.queue_backlog, {"cap": cap}, conn)

    def list_workers(
        self, lease_seconds: float, cap: int, limit: int, conn: psycopg.Connection | None = None
    ) -> list[dict[str, Any]]:
        params = {"lease_seconds": lease_seconds, "cap": cap, "limit": limit}
        return self._rows(self.q.list_workers, params, conn)
