"""The one place that executes SQL: `Store` for applications, the API and the CLI; `WorkerStore` for the
worker's hot path (claim, complete, fail, heartbeat, release, rescue) on an async pool.

Every query is a named file in `sql/queries/`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .job import Job, JobRecord
from .loaders import use_lenient_loaders
from .sql import queries_for

# How long a worker waits for its first connections before giving up.
OPEN_TIMEOUT_SECONDS = 30.0
# COPY takes no expressions; the timestamp input 'now' is resolved by the server's clock.
_NOW = "now"


def _reading_cursor(conn: psycopg.Connection, row_factory: Any = None) -> psycopg.Cursor[Any]:
    """A cursor that reads any stored row, odd values included (see `supaworker.loaders`); the adapters are
    the cursor's own, so a caller's connection is left as it was."""
    cur = conn.cursor(row_factory=row_factory) if row_factory is not None else conn.cursor()
    use_lenient_loaders(cur)
    return cur


class Store:
    """Synchronous access: each call borrows a connection from the pool, or uses the caller's `conn`
    (and then runs inside the caller's transaction, committing nothing itself)."""

    def __init__(self, pool: ConnectionPool | None, schema: str) -> None:
        self.pool = pool
        self.q = queries_for(schema)

    @contextmanager
    def connection(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        if conn is not None:
            yield conn
            return
        if self.pool is None:
            raise RuntimeError("this Store has no pool; pass conn=")
        with self.pool.connection() as pooled:
            yield pooled

    @contextmanager
    def transaction(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """Atomic work. On a caller's non-autocommit connection it joins the caller's transaction (psycopg's
        transaction() would commit it at block exit when none was open yet)."""
        with self.connection(conn) as c:
            if conn is not None and not c.autocommit:
                yield c
                return
            with c.transaction():
                yield c

    def _rows(self, query: str, params: dict[str, Any], conn: psycopg.Connection | None) -> list[dict[str, Any]]:
        with self.connection(conn) as c, _reading_cursor(c, dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def _value(self, query: str, params: dict[str, Any], conn: psycopg.Connection | None) -> Any:
        with self.connection(conn) as c, _reading_cursor(c) as cur:
            row = cur.execute(query, params).fetchone()
            return row[0] if row else None

    # -- writing jobs ---------------------------------------------------------------------------------
    def insert_job(self, job: dict[str, Any], conn: psycopg.Connection | None = None) -> JobRecord:
        params = {**job, "payload": Jsonb(job["payload"]), "status": job.get("status", "pending")}
        # One statement is atomic on its own: no BEGIN/COMMIT round trips around it.
        with self.connection(conn) as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(self.q.insert_job, params)
            row = cur.fetchone()
            assert row is not None
            return JobRecord.from_row(row)

    def insert_jobs(
        self, jobs: Iterable[dict[str, Any]], conn: psycopg.Connection | None = None, *, count: int | None = None
    ) -> list[int]:
        """Bulk insert with COPY; ids are allocated first so the caller still learns them. `jobs` may be a
        generator when `count` is given: rows are then produced (and checked) while the COPY streams."""
        if count is None:
            jobs = list(jobs)
            count = len(jobs)
        if not count:
            return []
        with self.transaction(conn) as c:
            first, last, scattered = c.execute(self.q.allocate_job_ids, {"count": count}).fetchone()
            ids = list(range(first, last + 1)) if scattered is None else scattered
            with c.cursor().copy(self.q.copy_jobs) as copy:
                for job_id, job in zip(ids, jobs, strict=True):
                    copy.write_row(
                        (
                            job_id,
                            job["type"],
                            job["queue"],
                            job.get("status", "pending"),
                            job["priority"],
                            job.get("payload_json") or json.dumps(job["payload"]),
                            job["max_attempts"],
                            job["run_at"] or _NOW,
                            job["timeout_seconds"],
                            job["brief_id"],
                        )
                    )
            return ids

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

    # -- reading ----------------------------------------------------------------------------------------
    def get_job(self, job_id: int, conn: psycopg.Connection | None = None) -> JobRecord | None:
        rows = self._rows(self.q.get_job, {"id": job_id}, conn)
        return JobRecord.from_row(rows[0]) if rows else None

    def get_jobs(self, ids: Sequence[int], conn: psycopg.Connection | None = None) -> list[JobRecord]:
        """The jobs with these ids, in the order given."""
        return [JobRecord.from_row(r) for r in self._rows(self.q.get_jobs, {"ids": list(ids)}, conn)]

    def list_jobs(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
        conn: psycopg.Connection | None = None,
    ) -> list[JobRecord]:
        params = {"status": status, "type": type, "before_id": before_id, "limit": limit}
        return [JobRecord.from_row(r) for r in self._rows(self.q.list_jobs, params, conn)]

    # -- briefs ---------------------------------------------------------------------------------------------
    def insert_brief(self, brief: dict[str, Any], conn: psycopg.Connection | None = None) -> UUID:
        return self._value(self.q.insert_brief, brief, conn)

    def get_brief(self, brief_id: UUID, conn: psycopg.Connection | None = None) -> dict[str, Any] | None:
        rows = self._rows(self.q.get_brief, {"id": brief_id}, conn)
        return rows[0] if rows else None

    def existing_brief_ids(self, brief_ids: Sequence[UUID], conn: psycopg.Connection | None = None) -> set[UUID]:
        """Which of `brief_ids` are briefs."""
        return {r["id"] for r in self._rows(self.q.existing_brief_ids, {"ids": list(brief_ids)}, conn)}

    def brief_jobs(self, brief_id: UUID, conn: psycopg.Connection | None = None) -> list[JobRecord]:
        return [JobRecord.from_row(r) for r in self._rows(self.q.brief_jobs, {"id": brief_id}, conn)]

    def list_brief_steps(self, brief_ids: Sequence[UUID], conn: psycopg.Connection | None = None) -> list[JobRecord]:
        """The jobs of every brief in `brief_ids`, by brief and creation order."""
        return [JobRecord.from_row(r) for r in self._rows(self.q.list_brief_steps, {"ids": list(brief_ids)}, conn)]

    def list_briefs(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        before: datetime | None = None,
        limit: int = 50,
        conn: psycopg.Connection | None = None,
    ) -> list[dict[str, Any]]:
        params = {"user_id": user_id, "status": status, "before": before, "limit": limit}
        return self._rows(self.q.list_briefs, params, conn)

    def cancel_brief(self, brief_id: UUID, reason: str, conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.cancel_brief, {"id": brief_id, "reason": reason}, conn))

    def retry_brief(self, brief_id: UUID, conn: psycopg.Connection | None = None) -> int:
        return int(self._value(self.q.retry_brief, {"id": brief_id}, conn))

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

    # -- API, dashboard and metrics: bounded reads that stay cheap on a big jobs table -------------------
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

    # -- queue features (issue 5): unique jobs, pause/limits, results, periodic jobs, maintenance -----------
    def insert_unique_job(self, job: dict[str, Any], conn: psycopg.Connection | None = None) -> JobRecord:
        """Inserts a job with a unique_key, or returns the live job holding that key (`.duplicate` set)."""
        params = {**job, "payload": Jsonb(job["payload"])}
        with self.transaction(conn) as c, _reading_cursor(c, dict_row) as cur:
            cur.execute(self.q.insert_unique_job, params)
            row = cur.fetchone()
            assert row is not None
            return JobRecord.from_row(row)

    def set_job_paused(self, scope: str, name: str, paused: bool, conn: psycopg.Connection | None = None) -> None:
        with self.transaction(conn) as c:
            c.execute(self.q.set_job_paused, {"scope": scope, "name": name, "paused": paused})

    def set_job_limits(
        self,
        type: str,
        *,
        max_running: int | None,
        rate_limit: int | None,
        rate_period_seconds: float | None,
        conn: psycopg.Connection | None = None,
    ) -> None:
        params = {
            "type": type,
            "max_running": max_running,
            "rate_limit": rate_limit,
            "rate_period_seconds": rate_period_seconds,
        }
        with self.transaction(conn) as c:
            c.execute(self.q.set_job_limits, params)

    def list_job_controls(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_job_controls, {}, conn)

    def get_job_outcome(
        self, job_id: int, conn: psycopg.Connection | None = None
    ) -> tuple[str, Any, str | None] | None:
        with self.connection(conn) as c, _reading_cursor(c) as cur:
            row = cur.execute(self.q.get_job_outcome, {"id": job_id}).fetchone()
            return (row[0], row[1], row[2]) if row else None

    def elect_leader(self, name: str, leader_id: str, ttl_seconds: float) -> bool:
        params = {"name": name, "leader_id": leader_id, "ttl_seconds": ttl_seconds}
        return bool(self._value(self.q.elect_leader, params, None))

    def resign_leader(self, name: str, leader_id: str) -> None:
        with self.transaction() as c:
            c.execute(self.q.resign_leader, {"name": name, "leader_id": leader_id})

    def get_leader(self, name: str, conn: psycopg.Connection | None = None) -> dict[str, Any] | None:
        rows = self._rows(self.q.get_leader, {"name": name}, conn)
        return rows[0] if rows else None

    def prune_finished_jobs(self, status: str, older_than_seconds: float, limit: int) -> int:
        params = {"status": status, "older_than_seconds": older_than_seconds, "limit": limit}
        return int(self._value(self.q.prune_finished_jobs, params, None) or 0)

    def upsert_periodic_job(self, schedule: dict[str, Any], conn: psycopg.Connection | None = None) -> dict[str, Any]:
        params = {**schedule, "payload": Jsonb(schedule["payload"])}
        with self.transaction(conn) as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(self.q.upsert_periodic_job, params)
            row = cur.fetchone()
            assert row is not None
            return row

    def delete_periodic_job(self, name: str, conn: psycopg.Connection | None = None) -> bool:
        with self.transaction(conn) as c:
            return c.execute(self.q.delete_periodic_job, {"name": name}).fetchone() is not None

    def list_periodic_jobs(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.list_periodic_jobs, {}, conn)

    def advance_periodic_job(self, name: str, prev_tick: Any, tick: Any, enqueue: bool) -> tuple[bool, int | None]:
        """Returns (advanced, job id): advanced is False when another scheduler handled the tick first."""
        params = {"name": name, "prev_tick": prev_tick, "tick": tick, "enqueue": enqueue}
        with self.transaction() as c:
            row = c.execute(self.q.advance_periodic_job, params).fetchone()
            return (row is not None, row[0] if row else None)

    def table_health(self, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
        return self._rows(self.q.table_health, {"schema": self.q.schema}, conn)

    # -- bloat care: the leader's vacuum of the jobs table ----------------------------------------------
    def jobs_tuple_counts(self, conn: psycopg.Connection | None = None) -> tuple[int, int]:
        """(live, dead) tuples of the jobs table from the statistics; (0, 0) before any were gathered."""
        with self.connection(conn) as c:
            row = c.execute(self.q.jobs_tuple_counts).fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

    def vacuum_jobs(self) -> None:
        """VACUUM (ANALYZE) of the jobs table; needs an autocommit connection (the pool's)."""
        with self.connection() as c:
            c.execute(self.q.vacuum_jobs)


Reachability = Literal["up", "down", "unreachable"]
# Admin shutdown, crash shutdown, cannot connect now (starting up, shutting down, in recovery).
_SERVER_DOWN_SQLSTATES = {"57P01", "57P02", "57P03"}


def _server_is_down(exc: psycopg.Error) -> bool:
    """The server (or its host) answered that it is not serving: no other worker can reach it either."""
    text = str(exc).lower()
    return exc.sqlstate in _SERVER_DOWN_SQLSTATES or "connection refused" in text or "system is" in text


def _in_claim_order(jobs: Iterable[Job]) -> list[Job]:
    """The order the claim picked them in: the order the worker must run them in (see record_job_starts)."""
    return sorted(jobs, key=lambda job: job._claim_seq)


def _completion_params(worker_id: str, ids: list[int], attempts: list[int], results: list[Any]) -> dict[str, Any]:
    # The results travel as one JSON array (see sql/queries/complete_jobs.sql).
    return {"worker_id": worker_id, "ids": ids, "attempts": attempts, "results": json.dumps(results)}


def _claim_params(
    worker_id: str,
    types: Sequence[str] | None,
    limit: int,
    lease_seconds: float,
    queues: Sequence[str] | None,
    start: int | None,
    seq_base: int,
) -> dict[str, Any]:
    return {
        "seq_base": seq_base,
        "worker_id": worker_id,
        "types": list(types) if types is not None else None,
        "limit": limit,
        "lease_seconds": lease_seconds,
        "queues": list(queues) if queues is not None else None,
        "start": start,
    }


class WorkerStore:
    """The worker's queries, on an async pool in autocommit mode (each call is its own transaction)."""

    def __init__(
        self, pool: AsyncConnectionPool, schema: str, conninfo: str = "", connect_kwargs: dict[str, Any] | None = None
    ) -> None:
        """`conninfo` and `connect_kwargs` (the pool's) let renew_directly() connect outside the pool."""
        self.pool = pool
        self.q = queries_for(schema)
        self.conninfo = conninfo
        self.connect_kwargs = connect_kwargs or {}

    async def claim_jobs(
        self,
        worker_id: str,
        types: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        start: int | None = None,
        seq_base: int = 0,
    ) -> list[Job]:
        params = _claim_params(worker_id, types, limit, lease_seconds, queues, start, seq_base)
        async with self.pool.connection() as conn:
            cur = await conn.execute(self.q.claim_jobs, params)
            return _in_claim_order(Job.from_claim(row, worker_id) for row in await cur.fetchall())

    async def record_job_starts(self, worker_id: str, through: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(self.q.record_job_starts, {"worker_id": worker_id, "through": through})

    async def forget_job_starts(self, worker_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(self.q.forget_job_starts, {"worker_id": worker_id})

    async def upstream_results(self, job_id: int) -> list[tuple[int, str, Any, int]]:
        """(id, type, result, depth) of every completed ancestor of a job, nearest last."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(self.q.upstream_results, {"id": job_id})
            return list(await cur.fetchall())

    async def complete_jobs(self, worker_id: str, ids: list[int], attempts: list[int], results: list[Any]) -> set[int]:
        params = _completion_params(worker_id, ids, attempts, results)
        async with self.pool.connection() as conn:
            cur = await conn.execute(self.q.complete_jobs, params)
            return {row[0] for row in await cur.fetchall()}

    async def write_and_claim_jobs(
        self,
        worker_id: str,
        completions: tuple[list[int], list[int], list[Any]],
        starts_through: int | None,
        types: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        start: int | None = None,
        seq_base: int = 0,
    ) -> tuple[set[int], list[Job]]:
        """Writes completions and job starts and claims the next jobs in one round trip (pipeline mode). In a
        pipeline the statements run in one implicit transaction: an error in one rolls the others back too,
        and the caller writes them again (fencing makes that safe)."""
        ids, attempts, results = completions
        claim_params = _claim_params(worker_id, types, limit, lease_seconds, queues, start, seq_base)
        async with self.pool.connection() as conn:
            async with conn.pipeline():
                done_cur = None
                if ids:
                    done_params = _completion_params(worker_id, ids, attempts, results)
                    done_cur = await conn.execute(self.q.complete_jobs, done_params)
                if starts_through is not None:
                    await conn.execute(self.q.record_job_starts, {"worker_id": worker_id, "through": starts_through})
                claim_cur = await conn.execute(self.q.claim_jobs, claim_params)
            done = {row[0] for row in await done_cur.fetchall()} if done_cur else set()
            jobs = _in_claim_order(Job.from_claim(row, worker_id) for row in await claim_cur.fetchall())
        return done, jobs

    async def fail_job(
        self,
        worker_id: str,
        job_id: int,
        attempt: int,
        error: str,
        *,
        retry_base_seconds: float,
        retry_cap_seconds: float,
        retryable: bool = True,
    ) -> str | None:
        params = {
            "id": job_id,
            "worker_id": worker_id,
            "error": error,
            "attempt": attempt,
            "retry_base_seconds": retry_base_seconds,
            "retry_cap_seconds": retry_cap_seconds,
            "retryable": retryable,
        }
        async with self.pool.connection() as conn:
            row = await (await conn.execute(self.q.fail_job, params)).fetchone()
            return row[0] if row else None

    async def heartbeat_jobs(self, worker_id: str, ids: list[int], lease_seconds: float) -> set[int]:
        params = {"worker_id": worker_id, "ids": ids, "lease_seconds": lease_seconds}
        async with self.pool.connection() as conn:
            cur = await conn.execute(self.q.heartbeat_jobs, params)
            return {row[0] for row in await cur.fetchall()}

    async def renew_directly(
        self, worker_id: str, ids: list[int], lease_seconds: float, timeout: float
    ) -> tuple[Reachability, set[int]]:
        """Renews the leases over a new connection of its own, bypassing the pool (whose connections may
        hang on a dead link), and says what the attempt found: the server answering, down (it refused,
        or said it is starting or stopping), or not answering at all."""
        kwargs = {**self.connect_kwargs, "autocommit": True, "prepare_threshold": None}
        kwargs["connect_timeout"] = max(2, int(timeout))
        try:
            async with asyncio.timeout(timeout):
                async with await psycopg.AsyncConnection.connect(self.conninfo, **kwargs) as conn:
                    cur = await conn.execute(
                        self.q.heartbeat_jobs, {"worker_id": worker_id, "ids": ids, "lease_seconds": lease_seconds}
                    )
                    return "up", {row[0] for row in await cur.fetchall()}
        except TimeoutError:
            return "unreachable", set()
        except psycopg.Error as exc:
            return ("down" if _server_is_down(exc) else "unreachable"), set()

    async def release_jobs(self, worker_id: str, ids: list[int], attempts: list[int]) -> set[int]:
        params = {"worker_id": worker_id, "ids": ids, "attempts": attempts}
        async with self.pool.connection() as conn:
            cur = await conn.execute(self.q.release_jobs, params)
            return {row[0] for row in await cur.fetchall()}

    async def rescue_expired_jobs(
        self,
        *,
        worker_id: str | None,
        limit: int,
        retry_base_seconds: float,
        retry_cap_seconds: float,
        grace_seconds: float,
    ) -> list[tuple[int, str, int, str, str, bool]]:
        params = {
            "worker_id": worker_id,
            "limit": limit,
            "retry_base_seconds": retry_base_seconds,
            "retry_cap_seconds": retry_cap_seconds,
            "grace_seconds": grace_seconds,
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(self.q.rescue_expired_jobs, params)
            return list(await cur.fetchall())

    async def count_active_jobs(self, worker_patterns: list[str]) -> int:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(self.q.count_active_jobs, {"worker_patterns": worker_patterns})).fetchone()
            return int(row[0]) if row else 0

    async def ping(self, timeout: float) -> None:
        """Proves the database answers. A pooled connection the server closed fails once and is dropped by
        the pool; the next one is tried, so a backend kill never makes a healthy worker look unhealthy."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                async with self.pool.connection(timeout=max(0.1, deadline - time.monotonic())) as conn:
                    await conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    raise

    # -- lifecycle (the WorkerQueries protocol, shared with the PostgREST store) ---------------------------
    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=OPEN_TIMEOUT_SECONDS)

    async def close(self) -> None:
        await self.pool.close()

    # -- queue features (issue 5) -------------------------------------------------------------------
    async def update_job_progress(
        self,
        worker_id: str,
        ids: list[int],
        attempts: list[int],
        percents: list[float],
        messages: list[str | None],
    ) -> set[int]:
        params = {
            "worker_id": worker_id,
            "ids": ids,
            "attempts": attempts,
            "percents": percents,
            "messages": messages,
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(self.q.update_job_progress, params)
            return {row[0] for row in await cur.fetchall()}
