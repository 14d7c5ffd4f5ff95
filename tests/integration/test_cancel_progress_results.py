"""Cancelling running jobs, progress reports and wait_for(), with real workers on a real database."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest

import supaworker
from supaworker import JobFailed, JobNotFound, WaitTimeout
from supaworker.registry import Registry
from supaworker.store import Store
from tests.support.waiting import wait_until_async
from tests.support.worker import job_row, make_worker, running, status_is


async def test_cancel_stops_a_running_async_handler_at_once_and_is_never_retried(db: str, store: Store) -> None:
    registry = Registry()
    started, stopped = asyncio.Event(), asyncio.Event()

    async def long(job: supaworker.Job) -> None:
        started.set()
        try:
            await asyncio.sleep(300)
        except asyncio.CancelledError:
            stopped.set()
            raise

    registry.register("long", long)
    j = supaworker.create_job("long", max_attempts=5, store=store)
    # Lease 300 s: the heartbeat would notice in 100 s, so within the bound only the NOTIFY can stop it.
    worker = make_worker(db, registry, lease_seconds=300)
    async with running(worker):
        await asyncio.wait_for(started.wait(), 20)
        assert await asyncio.to_thread(supaworker.cancel_job, j.id, "user asked", store=store) == "cancelled"
        await asyncio.wait_for(stopped.wait(), 20)
        await wait_until_async(lambda: worker.active_jobs == 0)
    row = job_row(db, j.id)
    assert (row["status"], row["attempts"], row["last_error"], row["errors"]) == ("cancelled", 1, "user asked", [])


@pytest.mark.parametrize("listen", [True, False], ids=["notify", "heartbeat-behind-pooler"])
async def test_sync_handler_is_told_through_the_job_and_its_outcome_is_dropped(
    db: str, store: Store, listen: bool
) -> None:
    registry = Registry()
    started, saw_cancel = threading.Event(), threading.Event()

    def crunch(job: supaworker.Job) -> str:
        started.set()
        while not job.cancelled:
            time.sleep(0.01)
        saw_cancel.set()
        raise RuntimeError("stopped early")  # a failure now must not turn into a retry

    registry.register("crunch", crunch)
    j = supaworker.create_job("crunch", max_attempts=5, store=store)
    worker = make_worker(db, registry, listen=listen, lease_seconds=300 if listen else 0.6)
    async with running(worker):
        await wait_until_async(started.is_set)
        await asyncio.to_thread(supaworker.cancel_job, j.id, store=store)
        await wait_until_async(saw_cancel.is_set)
        await wait_until_async(lambda: worker.active_jobs == 0)
    row = job_row(db, j.id)
    assert (row["status"], row["attempts"], row["errors"]) == ("cancelled", 1, [])
    assert worker.retried == 0 and worker.failed == 0


async def test_a_job_retried_while_its_cancelled_sync_handler_runs_on_runs_again_beside_it(
    db: str, store: Store
) -> None:
    # A sync handler that does not look at job.cancelled runs on after a cancel; a retry then made the same
    # worker claim the job again beside it, and the first slot to finish removed the other's entry: the second
    # died on a KeyError and took the worker down (README's cancel_brief + retry_brief did it 6 runs in 10).
    registry = Registry()
    runs: list[int] = []
    release = threading.Event()

    def stubborn(job: supaworker.Job) -> str:
        runs.append(job.attempt)
        if job.attempt == 1:
            release.wait(10)  # deaf to the cancel
        return f"attempt {job.attempt}"

    registry.register("stubborn", stubborn)
    j = supaworker.create_job("stubborn", store=store)
    async with running(make_worker(db, registry)) as worker:
        await wait_until_async(lambda: runs == [1])
        await asyncio.to_thread(supaworker.cancel_job, j.id, store=store)
        await asyncio.to_thread(supaworker.retry_job, j.id, store=store)
        await wait_until_async(status_is(db, j.id, "completed"))  # attempt 2, beside the first
        release.set()
        await wait_until_async(lambda: worker.active_jobs == 0)
        after = supaworker.create_job("stubborn", store=store)
        await wait_until_async(status_is(db, after.id, "completed"))
        assert worker.failure is None
    assert runs[:2] == [1, 2]
    assert (job_row(db, j.id)["status"], job_row(db, j.id)["result"]) == ("completed", "attempt 2")


async def test_a_job_cancelled_and_retried_at_once_runs_on_another_worker(db: str, store: Store) -> None:
    # A cancel reaches every worker; one that does not hold the job remembers it for a moment, in case the job
    # is on its way in a claim. Retried in that moment and claimed by that worker, the new attempt was dropped
    # unreleased: it sat `processing` for a lease (30 s), or another rescuer charged it a death.
    registry = Registry()
    gate = asyncio.Event()
    runs: list[int] = []

    async def gated(job: supaworker.Job) -> str:
        runs.append(job.attempt)
        if job.attempt == 1:
            await gate.wait()
        return "done"

    registry.register("gated", gated)
    j = supaworker.create_job("gated", store=store)
    first = make_worker(db, registry)
    async with running(first):
        await wait_until_async(lambda: runs == [1])
        async with running(make_worker(db, registry)) as second:
            await wait_until_async(lambda: second.claimed_once.is_set(), "the second worker's first claim")
            await asyncio.sleep(0.3)  # its LISTEN is connected
            await asyncio.to_thread(supaworker.cancel_job, j.id, store=store)
            await wait_until_async(lambda: first.active_jobs == 0, "the cancel on the first worker")
            first.request_stop()
            await asyncio.to_thread(supaworker.retry_job, j.id, store=store)
            await wait_until_async(status_is(db, j.id, "completed"), "the retry, on the second worker", timeout=10)
    row = job_row(db, j.id)
    assert (row["attempts"], row["errors"], runs) == (2, [], [1, 2])


async def test_cancelling_one_of_several_running_jobs_leaves_the_others(db: str, store: Store) -> None:
    registry = Registry()
    release = asyncio.Event()

    async def wait_for_release(job: supaworker.Job) -> str:
        await release.wait()
        return f"done {job.id}"

    registry.register("w", wait_for_release)
    ids = supaworker.create_jobs([{"type": "w"}] * 3, store=store)
    workers = [make_worker(db, registry, concurrency=2) for _ in range(2)]
    async with running(workers[0]), running(workers[1]):
        await wait_until_async(lambda: all(status_is(db, i, "processing")() for i in ids))
        await asyncio.to_thread(supaworker.cancel_job, ids[1], store=store)  # the workers' loop keeps running
        await wait_until_async(lambda: sum(w.active_jobs for w in workers) == 2)
        release.set()
        await wait_until_async(lambda: status_is(db, ids[0], "completed")() and status_is(db, ids[2], "completed")())
    assert job_row(db, ids[1])["status"] == "cancelled"


async def test_progress_reported_by_a_handler_is_visible_while_it_runs(db: str, store: Store) -> None:
    registry = Registry()
    release = threading.Event()

    def steps(job: supaworker.Job) -> str:
        for percent in (10, 25, 50):
            job.progress(percent, f"step {percent}")
        release.wait(30)
        job.progress(100, "done")
        return "ok"

    registry.register("steps", steps)
    j = supaworker.create_job("steps", store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(lambda: job_row(db, j.id)["progress"] == 50)
        seen = supaworker.get_job(j.id, store=store)
        assert (seen.progress, seen.progress_message) == (50, "step 50")
        active = store.active_jobs()
        assert [(a["id"], a["progress"], a["progress_message"]) for a in active] == [(j.id, 50, "step 50")]
        release.set()
        await wait_until_async(status_is(db, j.id, "completed"))


def test_progress_rejects_values_outside_0_to_100() -> None:
    job = supaworker.Job(1, "t", "default", 0, {}, 1, 3, None, None, None, None, None)  # type: ignore[arg-type]
    for bad in (-1, 100.5, float("nan"), "50", True):
        with pytest.raises(ValueError, match="progress percent"):
            job.progress(bad)  # type: ignore[arg-type]
    job.progress(0)
    job.progress(100, "done")


def test_progress_of_a_job_the_worker_no_longer_owns_is_not_written(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", store=store)
    conn.execute("SELECT * FROM supaworker.claim_jobs('w1', NULL, 1)")
    report = "SELECT * FROM supaworker.update_job_progress(%s, ARRAY[%s]::bigint[], '{1}', '{40}', '{x}')"
    assert conn.execute(report, ("w2", j.id)).fetchall() == []
    assert conn.execute(report, ("w1", j.id)).fetchall() == [(j.id,)]
    assert supaworker.get_job(j.id, store=store).progress == 40


async def test_wait_for_returns_the_result_or_raises_the_jobs_error(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("double", lambda job: {"value": job.payload["n"] * 2})

    def broken(job: supaworker.Job) -> None:
        raise supaworker.UnrecoverableError("bad input file")

    registry.register("broken", broken)
    ok = supaworker.create_job("double", {"n": 21}, store=store)
    bad = supaworker.create_job("broken", store=store)
    async with running(make_worker(db, registry)):
        result = await asyncio.to_thread(supaworker.wait_for, ok.id, 30, store=store)
        with pytest.raises(JobFailed) as failed:
            await asyncio.to_thread(supaworker.wait_for, bad.id, 30, store=store)
    assert result == {"value": 42}
    assert failed.value.status == "failed" and failed.value.error.startswith("UnrecoverableError: bad input file")


def test_wait_for_raises_for_cancelled_missing_and_unfinished_jobs(store: Store) -> None:
    cancelled = supaworker.create_job("t", store=store)
    supaworker.cancel_job(cancelled.id, "not needed", store=store)
    with pytest.raises(JobFailed, match="cancelled: not needed"):
        supaworker.wait_for(cancelled.id, 5, store=store)
    with pytest.raises(JobNotFound):
        supaworker.wait_for(10**9, 5, store=store)
    pending = supaworker.create_job("nobody-handles-this", store=store)
    with pytest.raises(WaitTimeout) as timed_out:
        supaworker.wait_for(pending.id, 0.1, store=store)
    assert isinstance(timed_out.value, TimeoutError) and timed_out.value.status == "pending"


def test_wait_for_refuses_a_connection_inside_a_transaction(db: str) -> None:
    with psycopg.connect(db) as c, pytest.raises(supaworker.InvalidJob, match="autocommit"):
        supaworker.wait_for(1, 1, conn=c)


async def test_slots_of_cancelled_and_timed_out_jobs_go_on_with_full_concurrency(db: str, store: Store) -> None:
    registry = Registry()
    started = asyncio.Event()
    now_running, peak, done = 0, 0, []

    async def forever(job: supaworker.Job) -> None:
        started.set()
        await asyncio.sleep(300)

    async def gate(job: supaworker.Job) -> None:
        nonlocal now_running, peak
        now_running += 1
        peak = max(peak, now_running)
        await asyncio.sleep(0.02)
        now_running -= 1
        done.append(job.id)

    registry.register("forever", forever)
    registry.register("stuck", forever, timeout=0.1)
    registry.register("gate", gate)
    worker = make_worker(db, registry, concurrency=2, prefetch=0, lease_seconds=300)
    async with running(worker):
        cancelled = supaworker.create_job("forever", store=store)
        await asyncio.wait_for(started.wait(), 20)
        timed_out = supaworker.create_job("stuck", max_attempts=1, store=store)
        await wait_until_async(status_is(db, timed_out.id, "failed"))
        await asyncio.to_thread(supaworker.cancel_job, cancelled.id, store=store)
        await wait_until_async(lambda: worker.active_jobs == 0)
        ids = supaworker.create_jobs([{"type": "gate"}] * 12, store=store)
        await wait_until_async(lambda: len(done) == 12)
    assert sorted(done) == ids and peak == 2
    assert job_row(db, cancelled.id)["status"] == "cancelled"
