"""The worker's hot path (claim, complete, fail, heartbeat, release, rescue, progress) on an async pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ..job import Job
from ..retry import ended_sessions_as_lost
from ..sql import queries_for
from ..worker.protocol import ClaimRequest, Completions, Reachability, Rescued, RetryDelays

# How long a worker waits for its first connections before giving up.
OPEN_TIMEOUT_SECONDS = 30.0
# A rescue whose first round trip took longer than this part of its grace does not run (see
# rescue_expired_jobs).
RESCUE_MAX_WAIT_OF_GRACE = 0.25


class WaitedForDatabase(psycopg.OperationalError):
    """A rescue's connection or first round trip took long: the database may have been away until a moment
    ago."""


# Admin shutdown, crash shutdown, cannot connect now (starting up, shutting down, in recovery).
_SERVER_DOWN_SQLSTATES = {"57P01", "57P02", "57P03"}
# What PgBouncer answers while it cannot log in to the server: the pooler is reached, the server is not, for
# every worker behind it. It keeps refusing for `server_login_retry` (15 s) after a failed login, so a restart
# of a few seconds looks several times longer from behind it.
# Supavisor says so with codes of its own (SQLSTATE XX000): the server connection it had for the session closed,
# or it could not check one out.
_POOLER_SAYS_SERVER_DOWN = (
    "server login has been failing",
    "pgbouncer cannot connect to server",
    "(edbhandlerexited)",
    "dbhandler exited",
    "(echeckouttimeout)",
    "(echeckoutretries)",
    "unable to check out process from the pool",
)


def _server_is_down(exc: psycopg.Error) -> bool:
    """The server (or its host, or the pooler in front of it) answered that it is not serving: no other worker
    can reach it either."""
    text = str(exc).lower()
    return (
        exc.sqlstate in _SERVER_DOWN_SQLSTATES
        or "connection refused" in text
        or "system is" in text
        or any(said in text for said in _POOLER_SAYS_SERVER_DOWN)
    )


def _in_claim_order(jobs: Iterable[Job]) -> list[Job]:
    """The order the claim picked them in: the order the worker must run them in (see record_job_starts)."""
    return sorted(jobs, key=lambda job: job._claim_seq)


def _int_array(values: list[int]) -> str:
    """A list of ints as the text of a PostgreSQL array: psycopg dumps a list element by element in Python, which
    for a batch of hundreds cost a completion more than a microsecond a job, five times this."""
    return "{" + ",".join(map(str, values)) + "}"


def _completion_params(worker_id: str, ids: list[int], attempts: list[int], results: list[Any]) -> dict[str, Any]:
    # The results travel as one JSON array (see sql/queries/complete_jobs.sql).
    return {
        "worker_id": worker_id,
        "ids": _int_array(ids),
        "attempts": _int_array(attempts),
        "results": json.dumps(results),
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

    @contextlib.asynccontextmanager
    async def _connection(self, timeout: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; a session the server or a pooler ended is raised as one (retry.SessionEnded)."""
        with ended_sessions_as_lost():
            async with self.pool.connection(timeout=timeout) as conn:
                yield conn

    async def claim_jobs(self, worker_id: str, claim: ClaimRequest) -> list[Job]:
        params = claim.params(worker_id)
        async with self._connection() as conn:
            cur = await conn.execute(self.q.claim_jobs, params)
            return _in_claim_order(Job.from_claim(row, worker_id) for row in await cur.fetchall())

    async def _execute(self, query: str, params: dict[str, Any]) -> None:
        async with self._connection() as conn:
            await conn.execute(query, params)

    async def record_job_starts(self, worker_id: str, through: int) -> None:
        await self._execute(self.q.record_job_starts_alone, {"worker_id": worker_id, "through": through})

    async def forget_job_starts(self, worker_id: str) -> None:
        await self._execute(self.q.forget_job_starts, {"worker_id": worker_id})

    async def wait_for_jobs(self, worker_id: str, seconds: float) -> None:
        await self._execute(self.q.wait_for_jobs, {"worker_id": worker_id, "seconds": seconds})

    async def stop_waiting_for_jobs(self, worker_id: str) -> None:
        await self._execute(self.q.stop_waiting_for_jobs, {"worker_id": worker_id})

    async def upstream_results(self, job_id: int) -> list[tuple[int, str, Any, int]]:
        """(id, type, result, depth) of every completed ancestor of a job, nearest last."""
        async with self._connection() as conn:
            cur = await conn.execute(self.q.upstream_results, {"id": job_id})
            return list(await cur.fetchall())

    async def complete_jobs(self, worker_id: str, ids: list[int], attempts: list[int], results: list[Any]) -> set[int]:
        params = _completion_params(worker_id, ids, attempts, results)
        async with self._connection() as conn:
            cur = await conn.execute(self.q.complete_jobs, params)
            return {row[0] for row in await cur.fetchall()}

    async def write_and_claim_jobs(
        self, worker_id: str, completions: Completions, starts_through: int | None, claim: ClaimRequest
    ) -> tuple[set[int], list[Job]]:
        """Writes completions and job starts and claims the next jobs in one round trip (pipeline mode). In a
        pipeline the statements run in one implicit transaction: an error in one rolls the others back too,
        and the caller writes them again (fencing makes that safe)."""
        ids, attempts, results = completions
        claim_params = claim.params(worker_id)
        async with self._connection() as conn:
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
        self, worker_id: str, job_id: int, attempt: int, error: str, *, delays: RetryDelays, retryable: bool = True
    ) -> str | None:
        params = {
            "id": job_id,
            "worker_id": worker_id,
            "error": error,
            "attempt": attempt,
            "retry_base_seconds": delays.base_seconds,
            "retry_cap_seconds": delays.cap_seconds,
            "retryable": retryable,
        }
        async with self._connection() as conn:
            row = await (await conn.execute(self.q.fail_job, params)).fetchone()
            return row[0] if row else None

    async def heartbeat_jobs(self, worker_id: str, ids: list[int], lease_seconds: float) -> set[int]:
        params = {"worker_id": worker_id, "ids": ids, "lease_seconds": lease_seconds}
        async with self._connection() as conn:
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
        async with self._connection() as conn:
            cur = await conn.execute(self.q.release_jobs, params)
            return {row[0] for row in await cur.fetchall()}

    async def rescue_expired_jobs(
        self,
        *,
        worker_id: str | None,
        held: list[int] | None,
        limit: int,
        delays: RetryDelays,
        grace_seconds: float,
    ) -> list[Rescued]:
        params = {
            "worker_id": worker_id,
            "held": held,
            "limit": limit,
            "retry_base_seconds": delays.base_seconds,
            "retry_cap_seconds": delays.cap_seconds,
            "grace_seconds": grace_seconds,
        }
        # The rescuer decided to rescue because it had no trouble of late. A statement that then waits (for a
        # pooled connection, or inside PgBouncer for a server it cannot log in to) would run the moment the
        # database is back, before live workers could renew their leases. So one quick round trip first, in
        # the transaction (and so on the server session) the rescue will use; if getting there took long, the
        # rescue does not run, and the failure counts as trouble: the rescuer waits for a lease of answers.
        began = time.monotonic()
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT 1")
            waited = time.monotonic() - began
            if waited > RESCUE_MAX_WAIT_OF_GRACE * grace_seconds:
                raise WaitedForDatabase(
                    f"waited {waited:.1f} s to reach the database: it may just be back, so no rescue yet"
                )
            cur = await conn.execute(self.q.rescue_expired_jobs, params)
            return list(await cur.fetchall())

    async def followed_controls(self) -> list[tuple[str, str, bool, float | None]]:
        """(scope, name, paused, rate window in seconds or None) of every paused or rate-limited type and queue."""
        async with self._connection() as conn:
            return list(await (await conn.execute(self.q.followed_controls)).fetchall())

    async def count_active_jobs(self, worker_patterns: list[str]) -> int:
        async with self._connection() as conn:
            row = await (await conn.execute(self.q.count_active_jobs, {"worker_patterns": worker_patterns})).fetchone()
            return int(row[0]) if row else 0

    async def ping(self, timeout: float) -> None:
        """Proves the database answers. A pooled connection the server closed fails once and is dropped by
        the pool; the next one is tried, so a backend kill never makes a healthy worker look unhealthy."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                async with self._connection(timeout=max(0.1, deadline - time.monotonic())) as conn:
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
        self, worker_id: str, ids: list[int], attempts: list[int], percents: list[float], messages: list[str | None]
    ) -> set[int]:
        params = {
            "worker_id": worker_id,
            "ids": ids,
            "attempts": attempts,
            "percents": percents,
            "messages": messages,
        }
        async with self._connection() as conn:
            cur = await conn.execute(self.q.update_job_progress, params)
            return {row[0] for row in await cur.fetchall()}
