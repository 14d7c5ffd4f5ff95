"""Pause/resume and global limits, enforced by claim_jobs() across concurrent claimers and workers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest

import supaworker
from supaworker import InvalidJob
from supaworker.registry import Registry
from supaworker.store import Store
from tests.support.waiting import wait_until_async
from tests.support.worker import make_worker, running, status_is


def claim_concurrently(
    db: str, claimers: int, limit: int, rounds: int = 1, types: list[str] | None = None
) -> list[int]:
    """Each claimer calls claim_jobs `rounds` times (for `types`, or every type), all starting together;
    returns every claimed id."""
    barrier = threading.Barrier(claimers)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        with psycopg.connect(db, autocommit=True) as c:
            barrier.wait()
            for _ in range(rounds):
                rows = c.execute("SELECT id FROM supaworker.claim_jobs(%s, %s, %s)", (f"w{n}", types, limit)).fetchall()
                with lock:
                    claimed.extend(r[0] for r in rows)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return claimed


def test_concurrency_limit_holds_across_concurrent_claimers(db: str, store: Store, conn: psycopg.Connection) -> None:
    supaworker.create_jobs([{"type": "render"}] * 40 + [{"type": "other"}] * 10, store=store)
    supaworker.set_limits("render", max_running=3, store=store)
    claimed = claim_concurrently(db, claimers=8, limit=5, rounds=3)
    assert len(claimed) == len(set(claimed))
    running = dict(conn.execute("SELECT type, count(*) FROM supaworker.jobs WHERE status = 'processing' GROUP BY type"))
    assert running == {"render": 3, "other": 10}


def test_claimers_naming_their_types_hold_the_limit_and_take_each_job_once(
    db: str, store: Store, conn: psycopg.Connection
) -> None:
    # Claims that name a limited type read type by type (0017); under contention each job still goes to one
    # claimer, the limit holds, and the free types are drained in full.
    supaworker.create_jobs([{"type": "render"}] * 60 + [{"type": "other"}] * 90 + [{"type": "third"}] * 90, store=store)
    supaworker.set_limits("render", max_running=4, store=store)
    claimed = claim_concurrently(db, claimers=8, limit=7, rounds=6, types=["render", "other", "third"])
    assert len(claimed) == len(set(claimed))
    running = dict(conn.execute("SELECT type, count(*) FROM supaworker.jobs WHERE status = 'processing' GROUP BY type"))
    assert running == {"render": 4, "other": 90, "third": 90}
    assert len(claimed) == 184


def test_finished_limited_job_frees_its_slot(store: Store, conn: psycopg.Connection) -> None:
    supaworker.create_jobs([{"type": "render"}] * 5, store=store)
    supaworker.set_limits("render", max_running=2, store=store)
    first = [r[0] for r in conn.execute("SELECT id FROM supaworker.claim_jobs('w1', NULL, 10)")]
    assert len(first) == 2
    assert conn.execute("SELECT count(*) FROM supaworker.claim_jobs('w1', NULL, 10)").fetchone() == (0,)
    conn.execute("SELECT supaworker.complete_job(%s, 'w1')", (first[0],))
    assert conn.execute("SELECT count(*) FROM supaworker.claim_jobs('w2', NULL, 10)").fetchone() == (1,)


def test_rate_limit_allows_n_claims_per_window_across_claimers(db: str, store: Store, conn: psycopg.Connection) -> None:
    supaworker.create_jobs([{"type": "analysis"}] * 30, store=store)
    supaworker.set_limits("analysis", rate_limit=5, rate_period=3600, store=store)
    assert len(claim_concurrently(db, claimers=6, limit=4, rounds=2)) == 5
    # The window has run out (moved back rather than waited for): the next window allows 5 more.
    conn.execute("UPDATE supaworker.job_controls SET window_started_at = now() - interval '2 hours'")
    assert len(claim_concurrently(db, claimers=6, limit=4, rounds=2)) == 5
    assert conn.execute("SELECT window_count FROM supaworker.job_controls").fetchone() == (5,)


def test_paused_type_and_queue_are_not_claimed_until_resumed(store: Store, conn: psycopg.Connection) -> None:
    render = supaworker.create_job("render", store=store)
    mail = supaworker.create_job("mail", queue="bulk", store=store)
    other = supaworker.create_job("other", store=store)
    supaworker.pause(type="render", store=store)
    supaworker.pause(queue="bulk", store=store)
    assert [r[0] for r in conn.execute("SELECT id FROM supaworker.claim_jobs('w', NULL, 10)")] == [other.id]
    supaworker.resume(type="render", store=store)
    supaworker.resume(queue="bulk", store=store)
    claimed = {r[0] for r in conn.execute("SELECT id FROM supaworker.claim_jobs('w', NULL, 10)")}
    assert claimed == {render.id, mail.id}
    assert supaworker.list_controls(store=store) == []


def test_list_controls_shows_pauses_limits_and_running_counts(store: Store, conn: psycopg.Connection) -> None:
    supaworker.create_jobs([{"type": "render"}] * 3, store=store)
    supaworker.set_limits("render", max_running=2, store=store)
    supaworker.pause(queue="bulk", store=store)
    conn.execute("SELECT * FROM supaworker.claim_jobs('w', NULL, 10)")
    controls = {(c.scope, c.name): c for c in supaworker.list_controls(store=store)}
    assert controls[("type", "render")].max_running == 2 and controls[("type", "render")].running == 2
    assert controls[("queue", "bulk")].paused and controls[("queue", "bulk")].running is None
    supaworker.clear_limits("render", store=store)
    assert [(c.scope, c.name) for c in supaworker.list_controls(store=store)] == [("queue", "bulk")]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: supaworker.pause(store=s), "exactly one of type= or queue="),
        (lambda s: supaworker.pause(type="a", queue="b", store=s), "exactly one"),
        (lambda s: supaworker.set_limits("a", max_running=0, store=s), "max_running must be a whole number"),
        (lambda s: supaworker.set_limits("a", rate_limit=2.5, store=s), "rate_limit must be a whole number"),
        (lambda s: supaworker.set_limits("a", rate_limit=2, rate_period=0, store=s), "rate_period must be a positive"),
        (lambda s: supaworker.set_limits("", max_running=1, store=s), "type must be a non-empty string"),
    ],
)
def test_bad_control_input_is_rejected_and_writes_nothing(store: Store, call, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        call(store)
    assert supaworker.list_controls(store=store) == []


async def test_workers_never_run_more_than_the_global_limit(db: str, store: Store) -> None:
    registry = Registry()
    current = peak = 0

    async def render(job: supaworker.Job) -> None:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        await asyncio.sleep(0.03)
        current -= 1

    registry.register("render", render)
    supaworker.set_limits("render", max_running=2, store=store)
    ids = supaworker.create_jobs([{"type": "render"}] * 16, store=store)
    workers = [make_worker(db, registry, concurrency=5) for _ in range(3)]
    async with running(workers[0]), running(workers[1]), running(workers[2]):
        await wait_until_async(lambda: all(status_is(db, i, "completed")() for i in ids), timeout=60)
    assert peak == 2
    assert sum(w.completer.completed for w in workers) == 16


async def test_rate_limited_type_starts_only_its_quota_while_others_run(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("analysis", lambda job: "done")
    registry.register("other", lambda job: "done")
    supaworker.set_limits("analysis", rate_limit=3, rate_period=3600, store=store)
    analysis = supaworker.create_jobs([{"type": "analysis"}] * 10, store=store)
    workers = [make_worker(db, registry) for _ in range(2)]
    async with running(workers[0]), running(workers[1]):
        await wait_until_async(lambda: sum(status_is(db, i, "completed")() for i in analysis) == 3)
        other = supaworker.create_job("other", store=store)  # claimed after the analysis quota ran out
        await wait_until_async(status_is(db, other.id, "completed"))
    assert sum(status_is(db, i, "completed")() for i in analysis) == 3


async def test_pause_stops_all_workers_and_resume_wakes_them(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("render", lambda job: "rendered")
    registry.register("other", lambda job: "ok")
    supaworker.pause(type="render", store=store)
    render = supaworker.create_job("render", store=store)
    workers = [make_worker(db, registry, poll_interval_seconds=120) for _ in range(2)]
    async with running(workers[0]), running(workers[1]):
        other = supaworker.create_job("other", store=store)
        await wait_until_async(status_is(db, other.id, "completed"))
        assert status_is(db, render.id, "pending")()
        # Workers poll every 120 s here: only resume's NOTIFY can bring the job out within the bound.
        supaworker.resume(type="render", store=store)
        await wait_until_async(status_is(db, render.id, "completed"))


async def test_a_worker_whose_own_claimed_jobs_fill_a_limit_claims_again_once_idle(db: str, store: Store) -> None:
    # max_running counts this worker's claimed-ahead jobs too, so a claim can come back empty with jobs still
    # queued. That is no empty queue: once its hands are empty the worker looks again at once, instead of
    # sleeping its poll interval (a drain under a limit fell to a fifth of its rate, one run in three).
    registry = Registry()
    ran: list[int] = []

    async def capped(job: supaworker.Job) -> None:
        await asyncio.sleep(0.01)  # still running when the worker looks again 2 ms after a claim
        ran.append(job.id)

    registry.register("capped", capped)
    supaworker.create_jobs([{"type": "capped"}] * 200, store=store)
    supaworker.set_limits("capped", max_running=20, store=store)
    # No NOTIFY comes (nothing is enqueued while it runs) and a poll would take a minute per 20 jobs.
    worker = make_worker(db, registry, prefetch=50, poll_interval_seconds=60)
    async with running(worker):
        await wait_until_async(lambda: len(ran) == 200, "the 200 jobs to run 20 at a time", timeout=30)
    assert sorted(ran) == sorted(set(ran))


def held_registry() -> tuple[Registry, list[int], asyncio.Event]:
    """A registry whose `held` jobs record their start and wait for the gate: the first holds the only slot while
    the rest wait claimed ahead."""
    registry = Registry()
    started: list[int] = []
    gate = asyncio.Event()

    async def held(job: supaworker.Job) -> None:
        started.append(job.id)
        await gate.wait()

    registry.register("held", held)
    return registry, started, gate


@pytest.mark.parametrize("scope", ["type", "queue"])
async def test_a_pause_hands_back_the_jobs_a_worker_claimed_ahead(db: str, store: Store, scope: str) -> None:
    # A pause stopped claims, but a worker still started the paused jobs it held claimed ahead: 1,148 of them
    # after the pause, with --prefetch 500, across three processes.
    registry, started, gate = held_registry()
    ids = supaworker.create_jobs([{"type": "held", "queue": "slow"}] * 30, store=store)
    async with running(make_worker(db, registry, concurrency=1, prefetch=20, poll_interval_seconds=60)) as worker:
        await wait_until_async(lambda: len(started) == 1 and len(worker.slots.queued) == 20, "a claim ahead")
        supaworker.pause(**{scope: "held" if scope == "type" else "slow"}, store=store)  # type: ignore[arg-type]
        await wait_until_async(lambda: not worker.slots.queued and not worker.claimer.to_release, "the hand-back")
        with psycopg.connect(db) as c:
            back = c.execute(
                "SELECT count(*) FROM supaworker.jobs WHERE status = 'pending' AND attempts = 0 AND id = ANY(%s)",
                (ids,),
            ).fetchone()
        assert back == (29,)  # every job but the running one, uncharged
        gate.set()
        await wait_until_async(status_is(db, started[0], "completed"))
        await asyncio.sleep(0.2)
        assert len(started) == 1  # nothing of the paused type or queue started after the pause
        supaworker.resume(**{scope: "held" if scope == "type" else "slow"}, store=store)  # type: ignore[arg-type]
        for job_id in ids:
            await wait_until_async(status_is(db, job_id, "completed"))
    assert sorted(started) == sorted(ids)


async def test_a_pause_and_resume_made_with_plain_sql_reach_the_workers(db: str, store: Store) -> None:
    # Only set_job_paused() notified: an UPDATE of job_controls left the claimed-ahead jobs to start, and a resume
    # so made waited for the workers' next poll.
    registry, started, gate = held_registry()
    ids = supaworker.create_jobs([{"type": "held"}] * 10, store=store)
    supaworker.set_limits("held", max_running=100, store=store)  # the row the UPDATE below changes
    async with running(make_worker(db, registry, concurrency=1, prefetch=5, poll_interval_seconds=120)) as worker:
        await wait_until_async(lambda: len(started) == 1 and len(worker.slots.queued) == 5, "a claim ahead")
        with psycopg.connect(db, autocommit=True) as c:
            c.execute("UPDATE supaworker.job_controls SET paused = true WHERE scope = 'type' AND name = 'held'")
        await wait_until_async(lambda: not worker.slots.queued and not worker.claimer.to_release, "the hand-back")
        gate.set()
        await wait_until_async(status_is(db, started[0], "completed"))
        await asyncio.sleep(0.2)
        assert len(started) == 1
        with psycopg.connect(db, autocommit=True) as c:  # polls are 120 s apart: only a NOTIFY wakes it in time
            c.execute("DELETE FROM supaworker.job_controls WHERE scope = 'type' AND name = 'held'")
        for job_id in ids:
            await wait_until_async(status_is(db, job_id, "completed"), timeout=10)
    assert sorted(started) == sorted(ids)


def test_only_a_change_of_paused_notifies(conn: psycopg.Connection) -> None:
    conn.execute("LISTEN supaworker_jobs")

    def heard() -> list[str]:
        return [n.payload for n in conn.notifies(timeout=0.3, stop_after=10)]

    conn.execute("INSERT INTO supaworker.job_controls (scope, name, paused) VALUES ('queue', 'q:1', true)")
    assert heard() == ["paused:queue:q:1"]
    conn.execute("UPDATE supaworker.job_controls SET updated_at = now()")  # not a change of `paused`
    conn.execute("UPDATE supaworker.job_controls SET paused = true")  # paused already
    assert heard() == []
    conn.execute("SELECT supaworker.set_job_paused('queue', 'q:1', false)")
    assert heard() == [""]
    assert conn.execute("SELECT count(*) FROM supaworker.job_controls").fetchone() == (0,)


async def test_a_worker_whose_listener_connects_after_a_pause_hands_back_what_it_holds(db: str, store: Store) -> None:
    # A pause's NOTIFY reaches only a worker that listens at that moment: one whose LISTEN connection was still
    # opening (at start, or after a lost connection) looks at the pauses once it listens.
    registry, started, gate = held_registry()
    supaworker.create_jobs([{"type": "held"}] * 10, store=store)
    async with running(make_worker(db, registry, concurrency=1, prefetch=5, poll_interval_seconds=60)) as worker:
        await wait_until_async(lambda: len(started) == 1 and len(worker.slots.queued) == 5, "a claim ahead")
        with psycopg.connect(db) as c:  # paused without a NOTIFY (triggers off), as if sent while not listening
            c.execute("SET LOCAL session_replication_role = replica")
            c.execute("INSERT INTO supaworker.job_controls (scope, name, paused) VALUES ('type', 'held', true)")
        worker._listening()  # what the listener calls once it listens again
        await wait_until_async(lambda: not worker.slots.queued and not worker.claimer.to_release, "the hand-back")
        gate.set()
        await wait_until_async(status_is(db, started[0], "completed"))
        await asyncio.sleep(0.2)
    assert len(started) == 1


async def test_an_idle_worker_looks_again_when_a_rate_window_has_passed(db: str, store: Store) -> None:
    # Nothing notifies a worker that a rate window opened: it waited its poll interval, so a window shorter than
    # that drained slower than the rate (25 per 0.5 s under a 1 s poll: 300 jobs in 11.4 s, not 6).
    registry = Registry()
    registry.register("metered", lambda job: None)
    ids = supaworker.create_jobs([{"type": "metered"}] * 20, store=store)
    supaworker.set_limits("metered", rate_limit=5, rate_period=0.3, store=store)
    async with running(make_worker(db, registry, poll_interval_seconds=60)):  # a poll would take a minute
        for job_id in ids:
            await wait_until_async(status_is(db, job_id, "completed"), "four windows of five jobs", timeout=10)


async def test_an_idle_worker_with_a_short_rate_window_and_no_jobs_polls_at_its_interval(db: str, store: Store) -> None:
    # Looking again every window whether or not any job of the type had come: 98 claims in 3 s for a 0.05 s
    # window with a 1 s poll (6 without the limit), each taking the control's row lock.
    registry = Registry()
    registry.register("metered", lambda job: None)
    supaworker.set_limits("metered", rate_limit=5, rate_period=0.05, store=store)
    worker = make_worker(db, registry, poll_interval_seconds=1.0)
    claims = 0
    claim = worker.store.claim_jobs

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await claim(*args, **kwargs)

    worker.store.claim_jobs = counted  # type: ignore[method-assign]
    async with running(worker):
        await wait_until_async(lambda: worker.claimer.rate_windows == {"metered": 0.05}, "the windows read")
        before = claims
        await asyncio.sleep(3)
        idle_claims = claims - before
        assert idle_claims <= 8, idle_claims
        ids = supaworker.create_jobs([{"type": "metered"}] * 20, store=store)  # and a backlog still drains fast
        for job_id in ids:
            await wait_until_async(status_is(db, job_id, "completed"), "four windows of five jobs", timeout=5)


async def test_a_rate_limit_set_while_a_worker_runs_reaches_it(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("metered", lambda job: None)
    async with running(make_worker(db, registry, poll_interval_seconds=60)) as worker:
        await wait_until_async(lambda: worker.claimed_once.is_set(), "the first claim")
        supaworker.set_limits("metered", rate_limit=5, rate_period=0.3, store=store)
        await wait_until_async(lambda: worker.claimer.rate_windows == {"metered": 0.3}, "the limit's NOTIFY")
        ids = supaworker.create_jobs([{"type": "metered"}] * 20, store=store)
        for job_id in ids:
            await wait_until_async(status_is(db, job_id, "completed"), "four windows of five jobs", timeout=10)
        supaworker.set_limits("metered", store=store)  # removed
        await wait_until_async(lambda: worker.claimer.rate_windows == {}, "the removal's NOTIFY")


def test_a_change_of_a_rate_limit_notifies_and_a_claim_counting_its_window_does_not(
    conn: psycopg.Connection, store: Store
) -> None:
    conn.execute("LISTEN supaworker_jobs")

    def heard() -> list[str]:
        return [n.payload for n in conn.notifies(timeout=0.3, stop_after=10) if n.payload.startswith("limits:")]

    supaworker.set_limits("t", rate_limit=100, rate_period=60, store=store)
    assert heard() == ["limits:type:t"]
    supaworker.create_job("t", store=store)
    conn.execute("SELECT count(*) FROM supaworker.claim_jobs_v2('w', ARRAY['t'], 1, 30, NULL, 1, 0)")
    assert conn.execute("SELECT window_count FROM supaworker.job_controls").fetchone() == (1,)
    supaworker.set_limits("t", max_running=3, rate_limit=100, rate_period=60, store=store)  # same rate
    assert heard() == []
    supaworker.set_limits("t", store=store)
    assert heard() == ["limits:type:t"]
