"""What a worker records is always storable, and a worker's jobs are charged only for work that began.

In-process workers on a real PostgreSQL; the crash and partition cases with real processes are in
tests/faults/test_worker_trust.py.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import supaworker
from supaworker.maintenance.rescuer import Rescuer, RescuerConfig
from supaworker.registry import Registry
from supaworker.store import Store, WorkerStore
from supaworker.store.worker import WaitedForDatabase
from supaworker.worker.protocol import RetryDelays
from tests.faults.proxy import FreezableProxy
from tests.support.waiting import wait_until_async
from tests.support.worker import job_row, make_worker, running, status_is

from ..conftest import SCHEMA


async def test_a_result_postgres_cannot_store_fails_only_its_own_job(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("bad", lambda job: {"text": "a\x00b"})
    registry.register("lone", lambda job: "\ud800")
    registry.register("good", lambda job: {"ok": True})
    bad = supaworker.create_job("bad", max_attempts=1, store=store)
    lone = supaworker.create_job("lone", max_attempts=1, store=store)
    good = [supaworker.create_job("good", store=store) for _ in range(5)]
    async with running(make_worker(db, registry)):
        for job in (bad, lone, *good):
            await wait_until_async(status_is(db, job.id, "completed", "failed"))
    assert job_row(db, bad.id)["status"] == "failed"
    assert "cannot be stored" in job_row(db, bad.id)["last_error"]
    assert "NUL" in job_row(db, bad.id)["last_error"]
    assert "surrogate" in job_row(db, lone.id)["last_error"]
    assert all(job_row(db, job.id)["result"] == {"ok": True} for job in good)


async def test_a_bare_int_result_json_cannot_write_fails_only_its_own_job(db: str, store: Store) -> None:
    # A bare int skipped the result check: one of more than 4,300 digits then failed json.dumps in the
    # completer, which stopped the worker with the completions of every job in its batch.
    registry = Registry()
    registry.register("huge", lambda job: 10**5000)
    registry.register("big", lambda job: -(2**80))
    registry.register("good", lambda job: 7)
    huge = supaworker.create_job("huge", max_attempts=1, store=store)
    big = supaworker.create_job("big", store=store)
    good = [supaworker.create_job("good", store=store) for _ in range(5)]
    async with running(make_worker(db, registry)) as worker:
        for job in (huge, big, *good):
            await wait_until_async(status_is(db, job.id, "completed", "failed"))
        assert worker.failure is None
    assert job_row(db, huge.id)["status"] == "failed"
    assert "4300 digits" in job_row(db, huge.id)["last_error"] or "4,300" in job_row(db, huge.id)["last_error"]
    assert job_row(db, big.id)["result"] == -(2**80)
    assert all(job_row(db, job.id)["result"] == 7 for job in good)


async def test_an_error_text_with_nul_is_stored_visibly(db: str, store: Store) -> None:
    registry = Registry()

    def explode(job: supaworker.Job) -> None:
        raise ValueError("bad\x00byte \ud800 here")

    registry.register("explode", explode)
    job = supaworker.create_job("explode", max_attempts=1, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, job.id, "failed"))
    error = job_row(db, job.id)["last_error"]
    assert error.startswith("ValueError: bad\\x00byte ? here"), error


def claim(conn: psycopg.Connection, worker: str, limit: int, start: int, seq_base: int = 0) -> list[int]:
    rows = conn.execute(
        "SELECT id FROM supaworker.claim_jobs_v2(%s, NULL, %s, 30, NULL, %s, %s)", (worker, limit, start, seq_base)
    ).fetchall()
    return sorted(r[0] for r in rows)


def expire(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE supaworker.jobs SET lease_expires_at = now() - interval '1 s' WHERE status = 'processing'")


def rescue(conn: psycopg.Connection, rescuer: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, status::text, attempts, started FROM supaworker.rescue_expired_jobs_v2(%s, 100, 0, 0, 0)",
        (rescuer,),
    ).fetchall()


def test_rescue_charges_started_jobs_and_hands_back_the_rest_untouched(conn: psycopg.Connection, store: Store) -> None:
    ids = [supaworker.create_job("t", max_attempts=1, store=store).id for _ in range(5)]
    assert claim(conn, "dead", limit=5, start=2) == ids  # the first two go straight to slots
    seqs = conn.execute("SELECT claim_seq FROM supaworker.jobs ORDER BY id").fetchall()
    assert seqs == [(1,), (2,), (3,), (4,), (5,)]
    conn.execute("SELECT supaworker.record_job_starts('dead', 3)")  # a slot took the third
    conn.execute("SELECT supaworker.record_job_starts('dead', 2)")  # never moves back
    expire(conn)
    rescued = sorted(rescue(conn, "other"))
    assert rescued == [
        (ids[0], "failed", 1, True),
        (ids[1], "failed", 1, True),
        (ids[2], "failed", 1, True),
        (ids[3], "pending", 0, False),
        (ids[4], "pending", 0, False),
    ]
    rows = conn.execute(
        "SELECT attempts, errors, last_error, worker_id, started_at, claim_seq FROM supaworker.jobs"
        " WHERE id = ANY (%s) ORDER BY id",
        (ids[3:],),
    ).fetchall()
    assert rows == [(0, [], None, None, None, None)] * 2  # as if never claimed
    [(error,)] = conn.execute("SELECT last_error FROM supaworker.jobs WHERE id = %s", (ids[0],)).fetchall()
    assert error == "worker dead died while running the job (lease expired)"
    # The dead worker's row went with its last job.
    assert conn.execute("SELECT count(*) FROM supaworker.worker_starts").fetchone() == (0,)


def test_a_rescuer_never_takes_its_own_workers_jobs(conn: psycopg.Connection, store: Store) -> None:
    job = supaworker.create_job("t", store=store)
    claim(conn, "me", limit=1, start=1)
    expire(conn)
    assert rescue(conn, "me") == []
    assert rescue(conn, "someone-else") == [(job.id, "pending", 1, True)]


def rescue_v3(conn: psycopg.Connection, rescuer: str, held: list[int] | None) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, status::text, attempts, started FROM supaworker.rescue_expired_jobs_v3(%s, %s, 100, 0, 0, 0)",
        (rescuer, held),
    ).fetchall()


def test_a_rescuer_takes_its_own_expired_jobs_it_does_not_hold_by_their_start_marks(
    conn: psycopg.Connection, store: Store
) -> None:
    # A claim whose answer was lost: the rows say `me`, but `me` does not hold them. Not held cannot mean never
    # run (an outcome it could not write ends the same way), so the start marks decide, as for a dead worker.
    ids = [supaworker.create_job("t", store=store).id for _ in range(4)]
    claim(conn, "me", limit=4, start=1)  # the first went straight to a slot
    conn.execute("SELECT supaworker.record_job_starts('me', 2)")  # a slot took the second
    conn.execute("UPDATE supaworker.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = ANY (%s)", (ids[1:],))
    assert rescue_v3(conn, "me", None) == []  # NULL: none of its own, as v2
    rescued = sorted(rescue_v3(conn, "me", [ids[0], ids[1]]))  # it holds the first two; the first is not expired
    assert rescued == [(ids[2], "pending", 0, False), (ids[3], "pending", 0, False)]
    assert sorted(rescue_v3(conn, "me", [ids[0]])) == [(ids[1], "pending", 1, True)]  # started: charged
    rows = conn.execute(
        "SELECT status::text, attempts, handed_back, last_error FROM supaworker.jobs WHERE id = ANY (%s) ORDER BY id",
        (ids,),
    ).fetchall()
    lost = (
        "worker me no longer held the job when its lease expired (its claim's answer lost, or the outcome not written)"
    )
    assert rows == [
        ("processing", 1, 0, None),
        ("pending", 1, 0, lost),
        ("pending", 0, 1, None),
        ("pending", 0, 1, None),
    ]
    # The caller is alive: its start marks stay, though it has no expired job left.
    assert conn.execute("SELECT started_through FROM supaworker.worker_starts WHERE worker_id = 'me'").fetchone() == (
        2,
    )
    # Another worker's expired jobs are rescued by v3 as by v2.
    expire(conn)
    assert rescue_v3(conn, "other", []) == [(ids[0], "pending", 1, True)]
    [(error,)] = conn.execute("SELECT last_error FROM supaworker.jobs WHERE id = %s", (ids[0],)).fetchall()
    assert error == "worker me died while running the job (lease expired)"


async def test_a_lone_worker_gets_back_the_jobs_of_a_claim_whose_answer_it_lost(db: str, store: Store) -> None:
    # Found over PostgREST: a gateway timeout after the claim had committed left 20 of 20 jobs `processing` for
    # good under a worker running alone (a rescuer never took its own worker's jobs). Played here by making the
    # worker's first claim in SQL, as the lost one did: its id, the first places of its claim sequence (which
    # its next claims then reuse, and its start marks cover), the first five marked started.
    registry = Registry()
    ran: list[int] = []
    registry.register("t", lambda job: ran.append(job.id))
    lease = 1.5
    lost = [supaworker.create_job("t", store=store).id for _ in range(20)]
    with psycopg.connect(db, autocommit=True) as c:
        claimed = c.execute(
            "SELECT id FROM supaworker.claim_jobs_v2('w-lost', NULL, 20, %s, NULL, 5, 0)", (lease,)
        ).fetchall()
    assert sorted(r[0] for r in claimed) == lost
    received = [supaworker.create_job("t", store=store).id for _ in range(10)]
    async with running(make_worker(db, registry, lease_seconds=lease, worker_id="w-lost")):
        for job_id in lost + received:
            await wait_until_async(status_is(db, job_id, "completed"), timeout=15)
    assert sorted(ran) == sorted(lost + received)  # each ran once
    with psycopg.connect(db) as c:
        charged = c.execute(
            "SELECT count(*) FILTER (WHERE attempts = 2 AND errors->0->>'error' LIKE 'worker w-lost no longer held%%'),"
            " count(*) FILTER (WHERE attempts = 1 AND errors = '[]' AND handed_back = 1)"
            " FROM supaworker.jobs WHERE id = ANY (%s)",
            (lost,),
        ).fetchone()
    # The claim marked its first five started, and the worker's later start marks covered the places its next
    # claims reused (up to 10): those were charged, as a dead worker's would be; the other ten were not.
    assert charged == (10, 10)


def test_nothing_is_rescued_in_the_first_grace_after_the_server_started(conn: psycopg.Connection, store: Store) -> None:
    supaworker.create_job("t", store=store)
    claim(conn, "w", limit=1, start=1)
    expire(conn)
    (up_for,) = conn.execute("SELECT extract(epoch FROM now() - pg_postmaster_start_time())").fetchone()  # type: ignore[misc]
    grace = float(up_for) + 3600
    rescued = conn.execute("SELECT * FROM supaworker.rescue_expired_jobs_v2('x', 100, 0, 0, %s)", (grace,)).fetchall()
    assert rescued == []
    assert len(rescue(conn, "x")) == 1


async def test_a_rescue_that_waited_to_reach_the_database_does_not_run(
    conn: psycopg.Connection, store: Store, db: str
) -> None:
    # Found behind PgBouncer under load: a rescue sent during an outage waited (in PgBouncer, or in the pool) and
    # ran the moment the database was back, taking live workers' jobs before they could renew their leases.
    job = supaworker.create_job("t", store=store)
    claim(conn, "live", limit=1, start=1)
    expire(conn)
    pool = AsyncConnectionPool(db, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    try:
        rescuer = Rescuer(WorkerStore(pool, SCHEMA), "rescuer", RescuerConfig(0.1, 2.0, RetryDelays(0, 0)))
        async with pool.connection():  # the only connection is busy for a second, as if the server were away
            waiting = asyncio.create_task(rescuer.run_once())
            await asyncio.sleep(1.0)
        with pytest.raises(WaitedForDatabase, match=r"waited \d+\.\d s to reach the database"):
            await waiting
        assert job_row(db, job.id)["status"] == "processing"
        assert await rescuer.run_once() == {"retried": 1, "failed": 0, "handed_back": 0}  # no wait: it runs
    finally:
        await pool.close()


async def test_a_rescuer_that_had_trouble_waits_a_lease_of_answers_before_rescuing(
    conn: psycopg.Connection, store: Store, db: str
) -> None:
    # Found behind PgBouncer under load: a rescuer that had failed held off for a lease without looking, and
    # rescued the moment the database was back, before the live owner could renew its leases.
    proxy = FreezableProxy.in_front_of(db)
    job = supaworker.create_job("t", store=store)
    claim(conn, "live", limit=1, start=1)
    expire(conn)
    lease = 1.0
    failures: list[float] = []
    pool = AsyncConnectionPool(proxy.url_for(db), min_size=1, max_size=2, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    rescuer = Rescuer(WorkerStore(pool, SCHEMA), "rescuer", RescuerConfig(0.1, lease, RetryDelays(0, 0)))
    rescuing = asyncio.create_task(
        rescuer.run(
            paused=lambda: False,
            last_trouble=lambda: failures[-1] if failures else -math.inf,
            on_trouble=lambda: failures.append(time.monotonic()),
            on_rescued=lambda: None,
        )
    )
    try:
        await asyncio.sleep(0.05)
        proxy.cut()  # the database is away for this rescuer
        await wait_until_async(lambda: bool(failures), "a failure")
        await asyncio.sleep(lease - 0.15)  # back just before a lease after that failure
        proxy.restore()
        back = time.monotonic()
        await wait_until_async(lambda: job_row(db, job.id)["status"] == "pending", "the rescue", timeout=10)
        assert time.monotonic() - back >= 0.9 * lease, "rescued before the owner had a lease to renew"
    finally:
        rescuing.cancel()
        await asyncio.gather(rescuing, return_exceptions=True)
        await pool.close()
        proxy.close()


def may_have_started(conn: psycopg.Connection, job_id: int) -> bool:
    (started,) = conn.execute(  # type: ignore[misc]
        """SELECT j.handler_started OR coalesce(j.claim_seq <= (
                  SELECT w.started_through FROM supaworker.worker_starts w WHERE w.worker_id = j.worker_id), false)
             FROM supaworker.jobs j WHERE j.id = %s""",
        (job_id,),
    ).fetchone()
    return bool(started)


async def test_a_job_handed_back_once_runs_only_after_its_start_is_recorded(db: str, store: Store) -> None:
    registry = Registry()
    seen: list[bool] = []

    def check(job: supaworker.Job) -> None:
        with psycopg.connect(db) as c:
            seen.append(may_have_started(c, job.id))

    registry.register("check", check)
    ids = supaworker.create_jobs([{"type": "check"}] * 40, store=store)
    with psycopg.connect(db, autocommit=True) as c:  # as if a dead worker's rescue had handed them back
        c.execute("UPDATE supaworker.jobs SET handed_back = 1")
    async with running(make_worker(db, registry, concurrency=2, prefetch=30)) as worker:
        for job_id in ids:
            await wait_until_async(status_is(db, job_id, "completed"))
        writes = worker.starter.writes
    assert seen == [True] * 40
    assert writes < 40  # the claimed-ahead ones were recorded in shared writes, or with the claims
    with psycopg.connect(db) as c:  # a worker that stopped leaves no row behind
        assert c.execute("SELECT count(*) FROM supaworker.worker_starts").fetchone() == (0,)


async def test_a_prefetching_worker_records_how_far_it_started(db: str, store: Store) -> None:
    registry = Registry()
    release = asyncio.Event()

    async def hold(job: supaworker.Job) -> None:
        await release.wait()

    registry.register("hold", hold)
    supaworker.create_jobs([{"type": "hold"}] * 10, store=store)
    async with running(make_worker(db, registry, concurrency=2, prefetch=8)):
        with psycopg.connect(db, autocommit=True) as c:

            def marked() -> list[tuple[Any, ...]]:
                return c.execute(
                    "SELECT count(*) FILTER (WHERE handler_started), count(*) FILTER (WHERE claim_seq IS NOT NULL)"
                    " FROM supaworker.jobs WHERE status = 'processing'"
                ).fetchall()

            await wait_until_async(lambda: marked() == [(2, 10)])  # two went straight to slots, eight claimed ahead
            assert c.execute("SELECT count(*) FROM supaworker.worker_starts").fetchone() == (0,)
            release.set()
            await wait_until_async(lambda: c.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'")
                             .fetchone() == (10,))  # fmt: skip


def test_a_job_handed_back_uncharged_is_marked_to_record_its_start_first(
    conn: psycopg.Connection, store: Store
) -> None:
    from supaworker.sql import queries_for

    ids = [supaworker.create_job("t", store=store).id for _ in range(2)]
    claim(conn, "dead", limit=2, start=1)
    expire(conn)
    rescue(conn, "other")
    rows = conn.execute("SELECT handed_back FROM supaworker.jobs WHERE id = ANY (%s) ORDER BY id", (ids,)).fetchall()
    assert rows == [(0,), (1,)]  # the started one was charged instead
    params = {"worker_id": "w2", "types": None, "limit": 2, "lease_seconds": 30, "queues": None, "start": 0}
    claimed = conn.execute(queries_for("supaworker").claim_jobs, {**params, "seq_base": 0}).fetchall()
    assert sorted((row[0], row[-1]) for row in claimed) == [(ids[0], False), (ids[1], True)]


async def test_the_server_drops_a_worker_connection_within_about_a_lease_of_a_dead_link(db: str) -> None:
    # A backend that had received part of a pipeline waits for the rest, holding row locks, until the server
    # notices its client is gone: with the server's keepalives that is within about a lease, not two hours.
    worker = make_worker(db, Registry(), lease_seconds=9.0)
    await worker.store.open()
    try:
        async with worker.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'),"
                " current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout')"
            )
            assert await cur.fetchone() == ("3", "1", "3", "4500")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        await worker.store.close()


async def test_a_failure_written_after_its_deadline_is_still_written(db: str, store: Store) -> None:
    # The watchdog's deadline stayed armed after the handler ended: a handler failing just before its timeout,
    # and a write of the failure that took a while, had that write cancelled; the job, no longer held, came
    # back by its lease with the failure lost (7 runs in 15 s, all as attempt 1, with a 2 s lease).
    registry = Registry()

    async def late_failure(job: supaworker.Job) -> None:
        await asyncio.sleep(0.4)
        raise ValueError("failed just before the timeout")

    registry.register("late", late_failure)
    job = supaworker.create_job("late", max_attempts=2, timeout=0.5, store=store)
    worker = make_worker(db, registry, lease_seconds=2.0)
    write_failure = worker.store.fail_job

    async def slow_write(*args: Any, **kwargs: Any) -> str | None:
        await asyncio.sleep(0.3)  # a database that answers slowly: the deadline passes meanwhile
        return await write_failure(*args, **kwargs)

    worker.store.fail_job = slow_write  # type: ignore[method-assign]
    async with running(worker):
        await wait_until_async(status_is(db, job.id, "failed"), timeout=15)
    row = job_row(db, job.id)
    assert row["attempts"] == 2 and row["handed_back"] == 0
    assert [e["error"].splitlines()[0] for e in row["errors"]] == ["ValueError: failed just before the timeout"] * 2
