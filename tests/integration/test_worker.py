"""The worker in-process on a real database: outcomes, retries, timeouts, heartbeats, fencing, shutdown."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC
from typing import Any

import psycopg
import pytest

import supaworker
from supaworker.config import Settings
from supaworker.registry import Registry
from supaworker.store import Store
from supaworker.worker.main import _run
from tests.support.waiting import wait_until_async
from tests.support.worker import job_row, make_worker, running, status_is


async def test_worker_completes_async_and_sync_jobs_with_results(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("double", lambda job: {"value": job.payload["n"] * 2})

    async def shout(job: supaworker.Job) -> str:
        return job.payload["text"].upper()

    registry.register("shout", shout)
    a = supaworker.create_job("double", {"n": 21}, store=store)
    b = supaworker.create_job("shout", {"text": "hi"}, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, b.id, "completed"))
        await wait_until_async(status_is(db, a.id, "completed"))
    assert job_row(db, a.id)["result"] == {"value": 42}
    assert job_row(db, b.id)["result"] == "HI"


async def test_a_handler_gets_its_payload_as_stored_and_its_times_in_utc(db: str, store: Store) -> None:
    registry, seen = Registry(), []
    registry.register("look", lambda job: seen.append((job.payload, job.created_at, job.run_at)))
    payload = {"text": "ünïcødé ✓ 𝄞", "n": 2**62, "nested": [{"é": None}]}
    created = supaworker.create_job("look", payload, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, created.id, "completed"))
    [(got, created_at, run_at)] = seen
    assert got == payload
    # UTC (datetime.timezone.utc), whatever the server's zone: psycopg reads it three times as fast.
    assert created_at.tzinfo is UTC and run_at.tzinfo is UTC
    assert created_at == job_row(db, created.id)["created_at"]


async def test_failing_job_is_retried_then_failed_permanently(db: str, store: Store) -> None:
    registry = Registry()
    calls: list[int] = []

    def explode(job: supaworker.Job) -> None:
        calls.append(job.attempt)
        raise RuntimeError(f"attempt {job.attempt} failed")

    registry.register("explode", explode)
    j = supaworker.create_job("explode", store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, j.id, "failed"))
    row = job_row(db, j.id)
    assert calls == [1, 2, 3]
    assert row["attempts"] == 3 and row["last_error"].startswith("RuntimeError: attempt 3 failed")
    assert [e["attempt"] for e in row["errors"]] == [1, 2, 3]
    assert "Traceback" in row["errors"][0]["error"]


async def test_job_that_recovers_on_retry_completes(db: str, store: Store) -> None:
    registry = Registry()

    def flaky(job: supaworker.Job) -> str:
        if job.attempt < 2:
            raise ConnectionError("upstream down")
        return "ok"

    registry.register("flaky", flaky)
    j = supaworker.create_job("flaky", store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, j.id, "completed"))
    row = job_row(db, j.id)
    assert (row["attempts"], row["result"], len(row["errors"])) == (2, "ok", 1)


async def test_unrecoverable_error_skips_remaining_attempts(db: str, store: Store) -> None:
    registry = Registry()

    def bad(job: supaworker.Job) -> None:
        raise supaworker.UnrecoverableError("payload is missing 'url'")

    registry.register("bad", bad)
    j = supaworker.create_job("bad", max_attempts=5, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, j.id, "failed"))
    assert job_row(db, j.id)["attempts"] == 1


async def test_attempt_over_its_timeout_fails_with_timeout_error(db: str, store: Store) -> None:
    registry = Registry()

    async def slow(job: supaworker.Job) -> None:
        await asyncio.sleep(30)

    registry.register("slow", slow, timeout=0.2)
    per_job = supaworker.create_job("slow", timeout=0.1, max_attempts=2, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, per_job.id, "failed"))
    row = job_row(db, per_job.id)
    assert row["attempts"] == 2
    assert row["last_error"] == "TimeoutError: job timed out after 0.1s"


async def test_handler_timeout_applies_when_job_has_none(db: str, store: Store) -> None:
    registry = Registry()

    def sleepy(job: supaworker.Job) -> None:
        time.sleep(1)

    registry.register("sleepy", sleepy, timeout=0.2)
    j = supaworker.create_job("sleepy", max_attempts=1, store=store)
    async with running(make_worker(db, registry, shutdown_grace_seconds=0)):
        await wait_until_async(status_is(db, j.id, "failed"))
    assert job_row(db, j.id)["last_error"] == "TimeoutError: job timed out after 0.2s"


async def test_a_job_due_sooner_times_out_while_a_longer_one_runs(db: str, store: Store) -> None:
    registry = Registry()
    short_failed = asyncio.Event()

    async def long(job: supaworker.Job) -> str:
        await short_failed.wait()  # holds its slot (and the watchdog's nearest deadline, 300 s) until then
        return "done"

    async def short(job: supaworker.Job) -> None:
        await asyncio.sleep(30)

    registry.register("long", long, timeout=300)
    registry.register("short", short, timeout=0.2)
    first = supaworker.create_job("long", store=store)
    async with running(make_worker(db, registry)) as worker:
        await wait_until_async(lambda: worker.active_jobs == 1)
        second = supaworker.create_job("short", max_attempts=1, store=store)
        await wait_until_async(status_is(db, second.id, "failed"))
        assert job_row(db, first.id)["status"] == "processing"
        short_failed.set()
        await wait_until_async(status_is(db, first.id, "completed"))
    assert job_row(db, second.id)["last_error"] == "TimeoutError: job timed out after 0.2s"


async def test_a_timeout_is_a_failure_even_if_the_handler_swallows_the_cancellation(db: str, store: Store) -> None:
    registry = Registry()

    async def stubborn(job: supaworker.Job) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "finished anyway"
        return "slept"

    registry.register("stubborn", stubborn, timeout=0.2)
    j = supaworker.create_job("stubborn", max_attempts=1, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, j.id, "failed"))
    row = job_row(db, j.id)
    assert (row["last_error"], row["result"]) == ("TimeoutError: job timed out after 0.2s", None)


async def test_a_handlers_own_timeout_error_is_its_error_not_the_jobs_timeout(db: str, store: Store) -> None:
    registry = Registry()

    async def calls_out(job: supaworker.Job) -> None:
        raise TimeoutError("upstream API did not answer")

    registry.register("calls_out", calls_out)
    j = supaworker.create_job("calls_out", max_attempts=1, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, j.id, "failed"))
    assert job_row(db, j.id)["last_error"].startswith("TimeoutError: upstream API did not answer\n")


async def test_a_sync_handler_past_its_timeout_is_told_to_stop(db: str, store: Store) -> None:
    registry = Registry()
    saw_cancel: list[int] = []

    def polite(job: supaworker.Job) -> None:
        while not job.cancelled:
            time.sleep(0.01)
        saw_cancel.append(job.id)

    registry.register("polite", polite, timeout=0.2)
    j = supaworker.create_job("polite", max_attempts=1, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, j.id, "failed"))
        await wait_until_async(lambda: saw_cancel == [j.id])
    assert job_row(db, j.id)["last_error"] == "TimeoutError: job timed out after 0.2s"


async def test_busy_sync_handler_does_not_stop_the_heartbeat(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("cpu", lambda job: time.sleep(2.5) or "done")
    j = supaworker.create_job("cpu", store=store)
    # Lease of 0.9 s: without heartbeats the rescuer (every 0.2 s) would take the job back mid-run.
    async with running(make_worker(db, registry, lease_seconds=0.9)):
        await wait_until_async(status_is(db, j.id, "completed"))
    row = job_row(db, j.id)
    assert (row["attempts"], row["errors"]) == (1, [])


async def test_late_completion_from_worker_that_lost_the_job_is_rejected(db: str, store: Store) -> None:
    registry = Registry()
    release = asyncio.Event()

    async def waits(job: supaworker.Job) -> str:
        await release.wait()
        return "late"

    registry.register("waits", waits)
    j = supaworker.create_job("waits", store=store)
    worker = make_worker(db, registry)
    async with running(worker):
        await wait_until_async(status_is(db, j.id, "processing"))
        with psycopg.connect(db, autocommit=True) as c:  # another worker took it over after a rescue
            c.execute(
                "UPDATE supaworker.jobs SET worker_id = 'worker-other', attempts = 2, max_attempts = 3 WHERE id = %s",
                (j.id,),
            )
        release.set()
        await wait_until_async(lambda: worker.completer.rejected == 1)
    row = job_row(db, j.id)
    assert (row["status"], row["worker_id"], row["result"]) == ("processing", "worker-other", None)


async def test_cancelled_running_job_is_stopped_at_next_heartbeat(db: str, store: Store) -> None:
    registry = Registry()
    cancelled, started = asyncio.Event(), asyncio.Event()

    async def forever(job: supaworker.Job) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    registry.register("forever", forever)
    j = supaworker.create_job("forever", store=store)
    worker = make_worker(db, registry, lease_seconds=0.6)
    async with running(worker):
        # Running, not merely claimed: a job cancelled while being claimed is dropped before its handler starts.
        await asyncio.wait_for(started.wait(), 10)
        supaworker.cancel_job(j.id, store=store)
        await asyncio.wait_for(cancelled.wait(), 10)
        await wait_until_async(lambda: worker.active_jobs == 0)
    assert job_row(db, j.id)["status"] == "cancelled"


async def test_graceful_stop_lets_short_jobs_finish_and_releases_long_ones(db: str, store: Store) -> None:
    registry = Registry()

    async def sleep_for(job: supaworker.Job) -> str:
        await asyncio.sleep(job.payload["seconds"])
        return "finished"

    registry.register("sleep", sleep_for)
    short = supaworker.create_job("sleep", {"seconds": 0.3}, store=store)
    long = supaworker.create_job("sleep", {"seconds": 60}, store=store)
    worker = make_worker(db, registry, shutdown_grace_seconds=1.0)
    task = asyncio.create_task(worker.run())
    await wait_until_async(lambda: worker.active_jobs == 2)
    worker.request_stop()
    await asyncio.wait_for(task, 20)
    assert job_row(db, short.id)["status"] == "completed"
    released = job_row(db, long.id)
    assert (released["status"], released["attempts"], released["worker_id"]) == ("pending", 0, None)


def test_a_stop_received_before_the_event_loop_handled_signals_stops_the_worker_before_it_claims(
    db: str, store: Store
) -> None:
    # run_worker holds the stop signals while asyncio builds its event loop (a SystemExit there left it
    # half-built); the loop acts on them once its own handlers are in place.
    registry = Registry()
    registry.register("noop", lambda job: None)
    job = supaworker.create_job("noop", store=store)
    worker = make_worker(db, registry)
    asyncio.run(asyncio.wait_for(_run(worker, Settings(enable_health_check=False), None, [signal.SIGTERM]), 20))
    assert job_row(db, job.id)["status"] == "pending"


async def test_idle_worker_wakes_on_notify_long_before_its_poll(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("ping", lambda job: "pong")
    async with running(make_worker(db, registry, poll_interval_seconds=120)) as worker:
        await asyncio.sleep(0.5)  # idle and listening
        j = supaworker.create_job("ping", store=store)
        # Without NOTIFY the next claim would come in 120 s; the 20 s bound would fail.
        await wait_until_async(status_is(db, j.id, "completed"))
        await wait_until_async(lambda: worker.completer.completed == 1)


async def test_worker_without_listen_still_finds_jobs_by_polling(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("ping", lambda job: "pong")
    async with running(make_worker(db, registry, listen=False, poll_interval_seconds=0.1)):
        await asyncio.sleep(0.3)
        j = supaworker.create_job("ping", store=store)
        await wait_until_async(status_is(db, j.id, "completed"))


async def test_worker_claims_only_types_it_has_handlers_for(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("mine", lambda job: 1)
    mine = supaworker.create_job("mine", store=store)
    theirs = supaworker.create_job("theirs", store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, mine.id, "completed"))
        await asyncio.sleep(0.3)
    assert job_row(db, theirs.id)["status"] == "pending"


async def test_result_that_is_not_json_fails_the_attempt(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("weird", lambda job: {"when": object()})
    j = supaworker.create_job("weird", max_attempts=1, store=store)
    async with running(make_worker(db, registry)):
        await wait_until_async(status_is(db, j.id, "failed"))
    assert "must be JSON-serialisable" in job_row(db, j.id)["last_error"]


# jsonb holds what Python cannot read as it is: an integer of more than 4,300 digits, a number beyond a
# float's range, nesting past its recursion limit.
UNREADABLE_PAYLOADS = {
    '{"n": ' + "9" * 5001 + "}": "4300 digits",
    '{"x": ' + "1" * 400 + ".5}": "beyond a float's range",  # not an infinity
    "[" * 3000 + "]" * 3000: "nested deeper",
}


async def test_a_job_whose_payload_python_cannot_read_fails_for_good_and_the_claim_goes_on(
    db: str, store: Store
) -> None:
    # Plain SQL and the SQL API's create_job() store such a payload (Python's create_job refuses it): it failed
    # the whole claim that read it, again at each retry, so no job of that claim ever ran.
    registry, ran = Registry(), []
    registry.register("look", lambda job: ran.append(job.id))
    ordinary = supaworker.create_job("look", store=store).id
    with psycopg.connect(db, autocommit=True) as c:
        odd = {
            c.execute(
                "INSERT INTO supaworker.jobs (type, payload) VALUES ('look', %s::jsonb) RETURNING id", (text,)
            ).fetchone()[0]: reason  # type: ignore[index]
            for text, reason in UNREADABLE_PAYLOADS.items()
        }

    def outcomes() -> dict[int, tuple[str, int, str | None]]:
        with psycopg.connect(db) as c:
            rows = c.execute("SELECT id, status::text, attempts, last_error FROM supaworker.jobs").fetchall()
        return {job_id: (status, attempts, error) for job_id, status, attempts, error in rows}

    async with running(make_worker(db, registry)):
        await wait_until_async(lambda: {s for s, _, _ in outcomes().values()} <= {"completed", "failed"})
    final = outcomes()
    assert final[ordinary][0] == "completed" and ran == [ordinary]
    for job_id, reason in odd.items():
        status, attempts, error = final[job_id]
        assert (status, attempts) == ("failed", 1), final[job_id]
        assert error is not None and error.startswith("InvalidJob: the payload cannot be read") and reason in error
    with psycopg.connect(db) as c:  # the payload is left as it was stored
        stored = c.execute("SELECT payload::text FROM supaworker.jobs WHERE id = ANY (%s) ORDER BY id", (list(odd),))
        assert [len(text) for (text,) in stored] == [len(text) for text in UNREADABLE_PAYLOADS]


async def test_jobs_at_times_beyond_pythons_range_run_and_the_claim_goes_on(db: str, store: Store) -> None:
    # Plain SQL can store 'infinity', year 200000 or BC: reading such a time failed the whole claim that read it.
    registry, seen = Registry(), {}
    registry.register("look", lambda job: seen.update({job.id: (job.run_at, job.created_at)}))
    ordinary = supaworker.create_job("look", store=store).id
    with psycopg.connect(db, autocommit=True) as c:
        odd = [
            c.execute(
                f"INSERT INTO supaworker.jobs (type, {column}) VALUES ('look', %s) RETURNING id", (value,)
            ).fetchone()[0]  # type: ignore[index]
            for column, value in (("run_at", "-infinity"), ("created_at", "infinity"), ("created_at", "4000-01-01 BC"))
        ]
    async with running(make_worker(db, registry)):
        for job_id in (ordinary, *odd):
            await wait_until_async(lambda job_id=job_id: job_id in seen)
    assert seen[odd[0]][0].year == 1 and seen[odd[1]][1].year == 9999 and seen[odd[2]][1].year == 1
    with psycopg.connect(db) as c:
        statuses = c.execute("SELECT status::text, count(*) FROM supaworker.jobs GROUP BY 1").fetchall()
    assert dict(statuses) == {"completed": 4}


@pytest.mark.parametrize("period", ["NaN", "Infinity"])
async def test_claims_go_on_past_a_job_at_its_last_attempt_and_a_rate_window_without_end(
    db: str, store: Store, period: str
) -> None:
    # Both are rows only plain SQL writes, and each failed every claim (a check violation, "interval out of
    # range"): no worker ran anything.
    registry, ran = Registry(), []
    registry.register("look", lambda job: ran.append(job.id))
    registry.register("limited", lambda job: ran.append(job.id))
    with psycopg.connect(db, autocommit=True) as c:
        spent, limited = (
            c.execute(sql).fetchone()[0]  # type: ignore[index]
            for sql in (
                "INSERT INTO supaworker.jobs (type, attempts, max_attempts) VALUES ('look', 3, 3) RETURNING id",
                "INSERT INTO supaworker.jobs (type) VALUES ('limited') RETURNING id",
            )
        )
        c.execute(
            "INSERT INTO supaworker.job_controls (scope, name, rate_limit, rate_period_seconds, window_started_at)"
            " VALUES ('type', 'limited', 5, %s, now())",
            (period,),
        )
    async with running(make_worker(db, registry)):
        await wait_until_async(lambda: {spent, limited} <= set(ran))
        await wait_until_async(status_is(db, spent, "completed"))
    row = job_row(db, spent)
    assert (row["attempts"], row["max_attempts"]) == (4, 4)


async def test_dependent_job_runs_after_its_parent_completes(db: str, store: Store) -> None:
    registry = Registry()
    order: list[str] = []
    registry.register("step", lambda job: order.append(job.payload["name"]) or job.payload["name"])
    parent, child = supaworker.create_jobs(
        [{"type": "step", "payload": {"name": "first"}}, {"type": "step", "payload": {"name": "second"}}], store=store
    )
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE supaworker.jobs SET status = 'waiting' WHERE id = %s", (child,))
        c.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (child, parent))
    async with running(make_worker(db, registry, poll_interval_seconds=60)):
        await wait_until_async(status_is(db, child, "completed"))
    assert order == ["first", "second"]


@pytest.mark.parametrize("concurrency", [1, 7])
async def test_worker_never_runs_more_than_its_concurrency(db: str, store: Store, concurrency: int) -> None:
    registry = Registry()
    current = peak = 0

    async def track(job: supaworker.Job) -> None:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        await asyncio.sleep(0.01)
        current -= 1

    registry.register("track", track)
    ids = supaworker.create_jobs([{"type": "track"}] * 60, store=store)
    async with running(make_worker(db, registry, concurrency=concurrency)):
        await wait_until_async(status_is(db, ids[-1], "completed"))
        await wait_until_async(lambda: all(job_row(db, i)["status"] == "completed" for i in ids))
    assert peak == concurrency


async def test_default_prefetch_claims_big_batches_of_short_jobs_and_few_long_ones(db: str, store: Store) -> None:
    registry = Registry()

    async def quick(job: supaworker.Job) -> None:
        return None

    async def slow(job: supaworker.Job) -> None:
        await asyncio.sleep(0.3)

    registry.register("quick", quick)
    registry.register("slow", slow)
    supaworker.create_jobs([{"type": "quick"}] * 3000, store=store)
    held = "SELECT count(*) FROM supaworker.jobs WHERE status = 'processing'"
    most = 0
    with psycopg.connect(db, autocommit=True) as conn:
        async with running(make_worker(db, registry, concurrency=5, types=["quick"])):
            while conn.execute("SELECT count(*) < 3000 FROM supaworker.jobs WHERE status = 'completed'").fetchone()[0]:
                most = max(most, conn.execute(held).fetchone()[0])
                await asyncio.sleep(0.005)
        assert most > 50  # claimed far ahead of its 5 slots
        supaworker.create_jobs([{"type": "slow"}] * 40, store=store)
        async with running(make_worker(db, registry, concurrency=5, types=["slow"])) as worker:
            await wait_until_async(lambda: worker.prefetch.value == 1, "the worker to time the slow jobs")
            # What it had claimed before it knew runs out (0.3 s a job on 5 slots; longer on a loaded machine).
            await wait_until_async(lambda: conn.execute(held).fetchone()[0] <= 5 + 1, "its early claims to run out")
            most = 0
            for _ in range(40):
                most = max(most, conn.execute(held).fetchone()[0])
                await asyncio.sleep(0.02)
        assert most <= 5 + 1  # its slots, and one job at hand


async def test_a_retry_claimed_while_a_renewal_is_in_flight_runs_and_is_not_charged(db: str, store: Store) -> None:
    # A renewal names the jobs it renews by id. A job that fails, and is claimed again by the same worker while
    # a renewal sent for its failed attempt is in flight, comes back "not owned": that is the old attempt. The
    # new one was dropped with it, never ran, and its lease ran out: the rescue charged it an attempt.
    registry = Registry()
    ran: dict[int, list[int]] = {}

    async def third_time_lucky(job: supaworker.Job) -> str:
        ran.setdefault(job.id, []).append(job.attempt)
        if job.attempt < 3:
            raise RuntimeError(f"attempt {job.attempt}")
        return "ok"

    registry.register("third_time_lucky", third_time_lucky)
    ids = supaworker.create_jobs([{"type": "third_time_lucky", "max_attempts": 3}] * 300, store=store)
    worker = make_worker(db, registry, lease_seconds=1.5, retry_base_seconds=0.01, retry_cap_seconds=0.02)
    # Renewals that are sent all the time and answered late, as over a slow link: each runs its statement
    # after a wait (so after failures sent meanwhile commit) and hands its answer back after another (so after
    # the claims answered meanwhile).
    renew = worker.leases.store.heartbeat_jobs

    async def slow_renewal(worker_id: str, ids: list[int], lease_seconds: float) -> set[int]:
        await asyncio.sleep(0.03)
        owned = await renew(worker_id, ids, lease_seconds)
        await asyncio.sleep(0.03)
        return owned

    worker.leases.store.heartbeat_jobs = slow_renewal  # type: ignore[method-assign]

    async def renew_all_the_time() -> None:
        while True:
            worker.leases.renew_now()
            await asyncio.sleep(0.002)

    def unfinished() -> int:
        with psycopg.connect(db) as c:
            row = c.execute("SELECT count(*) FROM supaworker.jobs WHERE status <> 'completed'").fetchone()
        return row[0] if row else -1

    async with running(worker):
        renewing = asyncio.create_task(renew_all_the_time())
        try:
            await wait_until_async(lambda: unfinished() == 0, "every job completed", timeout=60)
        finally:
            renewing.cancel()
    assert {job_id: attempts for job_id, attempts in ran.items() if attempts != [1, 2, 3]} == {}
    assert set(ran) == set(ids)


def _gate_completer_writes(worker: Any) -> tuple[asyncio.Event, asyncio.Event]:
    """The completer's own writes (not those a claim carries) wait at the returned gate; the second event is set
    once one does."""
    gate, writing = asyncio.Event(), asyncio.Event()
    complete_jobs = worker.store.complete_jobs

    async def gated(*args: Any, **kwargs: Any) -> set[int]:
        writing.set()
        await gate.wait()
        return await complete_jobs(*args, **kwargs)

    worker.store.complete_jobs = gated
    return gate, writing


async def test_a_batch_of_completions_being_written_holds_back_claims_only_beyond_a_prefetch(
    db: str, store: Store
) -> None:
    """While one batch of completions is being written, the worker claims and runs more beside it; what it has
    finished but not recorded (all a crash could make run twice) stops growing at its slots plus two prefetches."""
    registry = Registry()
    ran: list[int] = []

    async def note(job: supaworker.Job) -> None:
        ran.append(job.id)

    registry.register("note", note)
    ids = supaworker.create_jobs([{"type": "note"}] * 400, store=store)
    concurrency, prefetch = 5, 40
    async with running(make_worker(db, registry, concurrency=concurrency, prefetch=prefetch)) as worker:
        gate, writing = _gate_completer_writes(worker)
        await asyncio.wait_for(writing.wait(), 10)
        seen = -1
        while len(ran) != seen:  # until it stops claiming (a second without a job: long, for a loaded machine)
            seen = len(ran)
            await asyncio.sleep(1.0)
        with psycopg.connect(db) as conn:
            recorded = conn.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'").fetchone()[0]
        unrecorded = len(ran) - recorded
        # Held back at a slot's worth (the old rule) it would stop at 2 x 5 + 40 = 50.
        assert 2 * concurrency + prefetch < unrecorded <= concurrency + 2 * prefetch
        gate.set()
        await wait_until_async(lambda: job_row(db, ids[-1])["status"] == "completed")
        await wait_until_async(lambda: all(job_row(db, i)["status"] == "completed" for i in ids[::50]))
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*), max(attempts) FROM supaworker.jobs").fetchone() == (400, 1)
    assert sorted(ran) == sorted(ids)  # each exactly once


async def test_under_a_limit_a_claim_that_came_back_short_carries_the_workers_completions(
    db: str, store: Store
) -> None:
    """max_running counts a worker's finished jobs as running until their completions commit. A claim after one
    that the limit cut short writes them in its own transaction first, so the worker goes on at the limit's pace
    even while a batch it writes on its own is held up."""
    registry = Registry()
    registry.register("limited", lambda job: None)
    supaworker.set_limits("limited", max_running=50, store=store)
    ids = supaworker.create_jobs([{"type": "limited"}] * 300, store=store)
    count = "SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'"
    async with running(make_worker(db, registry, concurrency=5, prefetch=40)) as worker:
        gate, writing = _gate_completer_writes(worker)
        await asyncio.wait_for(writing.wait(), 10)  # a batch is held up, counted as running
        with psycopg.connect(db, autocommit=True) as conn:
            await wait_until_async(lambda: conn.execute(count).fetchone()[0] >= 200, "jobs completed beside it")
        gate.set()
        await wait_until_async(lambda: all(job_row(db, i)["status"] == "completed" for i in ids[::30] + ids[-1:]))
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*), max(attempts) FROM supaworker.jobs").fetchone() == (300, 1)
