"""An enqueue sends its NOTIFY only while a worker waits for one, and no job waits for the poll because of it."""

from __future__ import annotations

import asyncio
import random

import psycopg

import supaworker
from supaworker.registry import Registry
from supaworker.store import Store
from tests.support.waiting import wait_until_async
from tests.support.worker import make_worker, running

CHANNEL = "supaworker_jobs"


def notified(listener: psycopg.Connection, timeout: float = 0.3) -> bool:
    return any(True for _ in listener.notifies(timeout=timeout, stop_after=1))


def test_an_insert_notifies_only_while_a_worker_waits(db: str, conn: psycopg.Connection) -> None:
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        insert = "INSERT INTO supaworker.jobs (type) VALUES ('t')"
        conn.execute(insert)
        assert not notified(listener)  # nobody waits: no NOTIFY, no commit-time lock
        conn.execute("SELECT supaworker.wait_for_jobs('w1', 30)")
        conn.execute(insert)
        assert notified(listener)
        conn.execute("SELECT supaworker.stop_waiting_for_jobs('w1')")
        conn.execute(insert)
        assert not notified(listener)
        conn.execute("SELECT supaworker.wait_for_jobs('dead', 0.001)")  # a worker that died while waiting
        conn.execute("SELECT pg_sleep(0.01)")
        conn.execute(insert)
        assert not notified(listener)  # its word ran out by itself


async def test_a_waiting_worker_says_so_and_a_busy_one_does_not(
    db: str, store: Store, conn: psycopg.Connection
) -> None:
    registry = Registry()

    async def quick(job: supaworker.Job) -> None:
        await asyncio.sleep(0.001)

    registry.register("quick", quick)
    waiting = "SELECT count(*) FROM supaworker.waiting_workers WHERE until > now()"
    async with running(make_worker(db, registry, poll_interval_seconds=60)) as worker:
        await wait_until_async(lambda: conn.execute(waiting).fetchone()[0] == 1, "the idle worker to say it waits")
        # Its row commits before the claim loop resumes to note that it waits: a backlog found before then
        # would find it not yet waiting, and nothing to take back.
        await wait_until_async(lambda: worker.claimer.waiting is True, "the worker to note that it waits")
        supaworker.create_jobs([{"type": "quick"}] * 2000, store=store)
        await wait_until_async(lambda: worker.claimer.waiting is False, "the worker to find the backlog")
        assert conn.execute(waiting).fetchone()[0] == 0  # enqueues skip the NOTIFY while it works
        await wait_until_async(
            lambda: (
                conn.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'").fetchone()[0] == 2000
            )
        )
        await wait_until_async(lambda: conn.execute(waiting).fetchone()[0] == 1, "the drained worker to wait again")
    assert conn.execute(waiting).fetchone()[0] == 0  # a stopped worker takes its word back


async def test_no_job_waits_for_the_poll_while_the_worker_goes_idle_and_busy(db: str, store: Store) -> None:
    # With a minute's poll, a wake-up lost between "the queue is empty" and "I wait" would leave a job a minute.
    registry = Registry()

    async def quick(job: supaworker.Job) -> None:
        return None

    registry.register("quick", quick)
    ids = []
    async with running(make_worker(db, registry, poll_interval_seconds=60)):
        for _ in range(300):
            ids.append(supaworker.create_job("quick", store=store).id)
            await asyncio.sleep(random.random() * 0.004)
        with psycopg.connect(db, autocommit=True) as conn:
            await wait_until_async(
                lambda: (
                    conn.execute(
                        "SELECT count(*) FROM supaworker.jobs WHERE status = 'completed' AND id = ANY (%s)", (ids,)
                    ).fetchone()[0]
                    == 300
                ),
                "every job to be picked up without waiting for the poll",
                timeout=20,
            )
