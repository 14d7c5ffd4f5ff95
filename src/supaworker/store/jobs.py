"""Writing and reading jobs: single inserts, COPY for batches, unique keys, dependencies, retry and cancel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypedDict, Unpack

import psycopg
from psycopg.rows import dict_row

from ..job import JobRecord
from ..new_job import NewJob
from .base import StoreBase, filter_params, reading_cursor

# COPY takes no expressions; the timestamp input 'now' is resolved by the server's clock.
_NOW = "now"


class JobFilters(TypedDict, total=False):
    """What list_jobs() narrows the jobs to; a filter not given, or None, does not narrow."""

    status: str | None
    type: str | None
    before_id: int | None  # ids below this: the page after the one that ended there


class JobQueries(StoreBase):
    def insert_job(self, job: NewJob, conn: psycopg.Connection | None = None) -> JobRecord:
        # One statement is atomic on its own: no BEGIN/COMMIT round trips around it.
        with self.connection(conn) as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(self.q.insert_job, job.params())
            row = cur.fetchone()
            assert row is not None
            return JobRecord.from_row(row)

    def insert_jobs(
        self, jobs: Iterable[NewJob], conn: psycopg.Connection | None = None, *, count: int | None = None
    ) -> list[int]:
        """Bulk insert with COPY; ids are allocated first so the caller still learns them. `jobs` may be a
        generator when `count` is given: rows are then produced (and checked) while the COPY streams."""
        if count is None:
            jobs = list(jobs)
            count = len(jobs)
        if not count:
            return []
        with self.transaction(conn) as c:
            allocated = c.execute(self.q.allocate_job_ids, {"count": count}).fetchone()
            assert allocated is not None
            first, last, scattered = allocated
            ids = list(range(first, last + 1)) if scattered is None else scattered
            with c.cursor().copy(self.q.copy_jobs) as copy:
                for job_id, job in zip(ids, jobs, strict=True):
                    copy.write_row(
                        (
                            job_id,
                            job.type,
                            job.queue,
                            job.status,
                            job.priority,
                            job.payload_json,
                            job.max_attempts,
                            job.run_at or _NOW,
                            job.timeout_seconds,
                            job.brief_id,
                            job.fairness_key,
                        )
                    )
            return ids

    def insert_unique_job(self, job: NewJob, conn: psycopg.Connection | None = None) -> JobRecord:
        """Inserts a job with a unique_key, or returns the live job holding that key (`.duplicate` set)."""
        with self.transaction(conn) as c, reading_cursor(c, dict_row) as cur:
            cur.execute(self.q.insert_unique_job, job.params())
            row = cur.fetchone()
            assert row is not None
            return JobRecord.from_row(row)

    def lock_parent_jobs(self, ids: Sequence[int], conn: psycopg.Connection | None = None) -> dict[int, str]:
        """The status of each existing job among `ids`, locked until the caller's transaction ends."""
        with self.connection(conn) as c:
            return {row[0]: row[1] for row in c.execute(self.q.lock_parent_jobs, {"ids": list(ids)})}

    def insert_job_dependencies(self, pairs: Sequence[tuple[int, int]], conn: psycopg.Connection | None = None) -> None:
        """Records (job_id, depends_on) pairs in one statement."""
        if not pairs:
            return
        params = {"job_ids": [p[0] for p in pairs], "depends_on": [p[1] for p in pairs]}
        with self.connection(conn) as c:
            c.execute(self.q.insert_job_dependencies, params)

    def retry_job(self, job_id: int, conn: psycopg.Connection | None = None) -> str | None:
        return self._value(self.q.retry_job, {"id": job_id}, conn)

    def cancel_job(self, job_id: int, reason: str, conn: psycopg.Connection | None = None) -> str | None:
        return self._value(self.q.cancel_job, {"id": job_id, "reason": reason}, conn)

    def get_job(self, job_id: int, conn: psycopg.Connection | None = None) -> JobRecord | None:
        rows = self._rows(self.q.get_job, {"id": job_id}, conn)
        return JobRecord.from_row(rows[0]) if rows else None

    def moved_job_ids(self, ids: Sequence[int], conn: psycopg.Connection | None = None) -> set[int]:
        """Which of `ids` are in job_history: finished, and moved out of the queue's table."""
        return {r["id"] for r in self._rows(self.q.moved_job_ids, {"ids": list(ids)}, conn)}

    def get_jobs(self, ids: Sequence[int], conn: psycopg.Connection | None = None) -> list[JobRecord]:
        """The jobs with these ids, in the order given."""
        return [JobRecord.from_row(r) for r in self._rows(self.q.get_jobs, {"ids": list(ids)}, conn)]

    def list_jobs(
        self, *, limit: int = 50, conn: psycopg.Connection | None = None, **filters: Unpack[JobFilters]
    ) -> list[JobRecord]:
        """Jobs newest first."""
        params = {**filter_params(JobFilters, filters), "limit": limit}
        return [JobRecord.from_row(r) for r in self._rows(self.q.list_jobs, params, conn)]

    def get_job_outcome(
        self, job_id: int, conn: psycopg.Connection | None = None
    ) -> tuple[str, Any, str | None] | None:
        with self.connection(conn) as c, reading_cursor(c) as cur:
            row = cur.execute(self.q.get_job_outcome, {"id": job_id}).fetchone()
            return (row[0], row[1], row[2]) if row else None
