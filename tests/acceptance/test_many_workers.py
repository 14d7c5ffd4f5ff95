"""Many worker processes on one queue: every job runs exactly once, and a SIGKILLed worker's jobs are
rescued and finished by the others."""

from __future__ import annotations

import signal
import time

import psycopg
import pytest

import supaworker
from supaworker.store import Store

from .conftest import Workers, count_by_status, unfinished, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


@pytest.mark.parametrize("tenants", [1, 100])
def test_four_workers_run_twenty_thousand_jobs_exactly_once(
    db: str, store: Store, workers: Workers, tenants: int
) -> None:
    # Over 100 tenants every claim takes turns round them, each worker's session from its own place.
    jobs = [{"type": "record", "payload": {"i": i}, "fairness_key": f"tenant-{i % tenants}"} for i in range(20_000)]
    ids = supaworker.create_jobs(jobs, store=store)
    for _ in range(4):
        workers.start("--concurrency", "10")
    wait_for(lambda: unfinished(db) == 0, what="queue to drain")
    assert workers.stop_all() == [0, 0, 0, 0]
    executions = workers.executions()
    assert count_by_status(db) == {"completed": 20_000}
    assert set(executions) == set(ids)
    assert max(executions.values()) == 1
    # The work was really shared.
    per_worker = {w for _, _, w in workers.execution_lines()}
    assert len(per_worker) == 4


def test_jobs_of_a_sigkilled_worker_are_rescued_and_only_they_run_twice(
    db: str, store: Store, workers: Workers
) -> None:
    ids = supaworker.create_jobs([{"type": "record", "payload": {"sleep": 0.02}} for _ in range(3000)], store=store)
    lease = ["--lease-seconds", "2", "--concurrency", "10"]
    env = {"SUPAWORKER_RESCUE_INTERVAL_SECONDS": "0.5", "SUPAWORKER_RETRY_BASE_SECONDS": "0"}
    victim = workers.start(*lease, **env)
    for _ in range(3):
        workers.start(*lease, **env)
    wait_for(lambda: count_by_status(db).get("completed", 0) > 500, what="work to get going")

    held: list[str] = []

    def victim_holds_a_job() -> bool:
        # The victim must hold work when it is killed (the others may have taken every batch so far).
        with psycopg.connect(db) as c:
            row = c.execute(
                "SELECT worker_id FROM supaworker.jobs WHERE worker_id LIKE %s AND status = 'processing' LIMIT 1",
                (f"worker-{victim.pid}-%",),
            ).fetchone()
        held.extend(row or ())
        return row is not None

    wait_for(victim_holds_a_job, what="the victim to hold a job")
    victim_id = held[-1]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    wait_for(lambda: unfinished(db) == 0, what="rescue and drain")
    workers.stop_all()

    assert count_by_status(db) == {"completed": 3000}
    executions = workers.executions()
    assert set(executions) == set(ids)
    twice = {job_id for job_id, n in executions.items() if n > 1}
    assert max(executions.values()) <= 2
    victim_ran = {job_id for job_id, _, w in workers.execution_lines() if w == victim_id}
    # Only jobs in flight on the killed worker ran again: at most its running jobs plus its unflushed completions.
    assert twice <= victim_ran
    assert len(twice) <= 2 * 10
    with psycopg.connect(db) as c:
        rescued = c.execute(
            "SELECT count(*) FROM supaworker.jobs WHERE errors @> %s::jsonb",
            (f'[{{"worker_id": "{victim_id}"}}]',),
        ).fetchone()[0]
    # Charged: the victim's jobs whose start it had recorded. One that started within a round trip of the
    # kill goes back uncharged instead (and records its start first next time), so it may run twice without
    # an error entry.
    assert rescued <= len(victim_ran)


def test_flaky_jobs_are_retried_across_processes_until_they_succeed(db: str, store: Store, workers: Workers) -> None:
    supaworker.create_jobs(
        [{"type": "flaky", "payload": {"succeed_on": 3}, "max_attempts": 3}] * 50
        + [{"type": "flaky", "payload": {}, "max_attempts": 2}] * 10,
        store=store,
    )
    for _ in range(2):
        workers.start(SUPAWORKER_RETRY_BASE_SECONDS="0.05")
    wait_for(lambda: unfinished(db) == 0, what="retries to finish")
    workers.stop_all()
    assert count_by_status(db) == {"completed": 50, "failed": 10}
    executions = workers.executions()
    assert sorted(executions.values()) == [2] * 10 + [3] * 50
    time.sleep(0)
