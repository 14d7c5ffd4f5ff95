"""Periodic jobs against hostile input and failures: a cron whose ticks are random, a scheduler whose enqueue
dies half-way, a last tick moved back. Each tick is enqueued once, or the schedule is refused and named."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

import supaworker
from supaworker.errors import InvalidJob
from supaworker.maintenance import PeriodicScheduler
from supaworker.store import Store
from tests.support.waiting import wait_until


def job_keys(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT unique_key FROM supaworker.jobs ORDER BY unique_key")]


@pytest.mark.parametrize("cron", ["R * * * *", "0 r * * *", "0 0 R(1-28) * *", "0 0 * * R/2", "* * * * * R"])
def test_a_cron_with_a_random_field_is_refused_naming_cron(cron: str, store: Store, conn: psycopg.Connection) -> None:
    # croniter draws R anew each time it reads the cron, and the scheduler reads it every run: 'R * * * *'
    # fired at a new minute each second, hundreds of jobs an hour instead of one.
    with pytest.raises(InvalidJob, match="random field") as refused:
        supaworker.add_periodic_job(cron, type="report", store=store)
    assert refused.value.field == "cron"
    assert conn.execute("SELECT count(*) FROM supaworker.periodic_jobs").fetchone() == (0,)


def test_month_and_day_names_holding_an_r_are_not_random(store: Store) -> None:
    for cron in ("0 0 1 MAR *", "0 0 * APR-OCT FRI", "0 0 1 mar thu"):
        supaworker.add_periodic_job(cron, type="report", name=cron, store=store)
    assert len(supaworker.list_periodic_jobs(store=store)) == 3


def test_a_random_cron_stored_by_plain_sql_enqueues_nothing(store: Store, conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO supaworker.periodic_jobs (name, cron, type, last_tick_at)"
        " VALUES ('random', 'R * * * *', 'report', now() - interval '2 hours')"
    )
    # With an hour of grace every hour holds one of its minutes: the random one was always due.
    counts = PeriodicScheduler(store, grace_seconds=3600).run_once()
    assert counts["unreadable"] == 1 and counts["enqueued"] == 0
    assert job_keys(conn) == []
    [row] = supaworker.list_periodic_jobs(store=store)
    assert row["next_tick_at"] is None


@pytest.mark.parametrize("ends", ["rolled back", "committed"])
def test_an_enqueue_that_dies_half_way_leaves_its_tick_to_the_next_scheduler_once(
    ends: str, db: str, store: Store, conn: psycopg.Connection
) -> None:
    supaworker.add_periodic_job("* * * * * *", type="report", store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = date_trunc('second', now()) - interval '5 s'")
    prev = conn.execute("SELECT last_tick_at FROM supaworker.periodic_jobs").fetchone()[0]
    tick = prev + timedelta(seconds=1)
    with psycopg.connect(db) as dying:  # a worker killed mid-enqueue: its transaction is open, then ends
        dying.execute("SELECT supaworker.advance_periodic_job('report', %s, %s, true)", (prev, tick))
        totals: list[dict[str, int]] = []
        other = threading.Thread(target=lambda: totals.append(PeriodicScheduler(store).run_once()))
        other.start()
        wait_until(
            lambda: conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()[0],
            "the second scheduler to wait on the first one's row",
        )
        dying.rollback() if ends == "rolled back" else dying.commit()
        other.join()
    keys = job_keys(conn)
    assert len(keys) == len(set(keys))  # no tick twice
    if ends == "rolled back":
        # The second scheduler enqueued every tick, the dead one's included.
        assert keys[0].endswith(tick.strftime("%H:%M:%SZ")) and totals[0]["lost"] == 0
    else:
        # The first one's tick stands; the second found it taken and enqueued nothing.
        assert len(keys) == 1 and keys[0].endswith(tick.strftime("%H:%M:%SZ")) and totals[0]["lost"] == 1


def test_a_last_tick_moved_back_does_not_enqueue_a_tick_twice(store: Store, conn: psycopg.Connection) -> None:
    supaworker.add_periodic_job("* * * * * *", type="report", store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = date_trunc('second', now()) - interval '5 s'")
    PeriodicScheduler(store).run_once()
    first = job_keys(conn)
    # Moved back by plain SQL (or a restored backup): the unique key of each tick still holds it once.
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = last_tick_at - interval '4 s'")
    PeriodicScheduler(store).run_once()
    keys = job_keys(conn)
    assert len(first) >= 5 and len(keys) == len(set(keys)) and set(first) <= set(keys)
    # The ticks moved back over were there already: counted as such, not as enqueued again.
    assert PeriodicScheduler(store).run_once()["duplicate"] == 0  # nothing left to do


def test_a_repeated_tick_is_counted_as_a_duplicate_not_as_enqueued(store: Store, conn: psycopg.Connection) -> None:
    supaworker.add_periodic_job("* * * * * *", type="report", store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = date_trunc('second', now()) - interval '3 s'")
    enqueued = PeriodicScheduler(store).run_once()["enqueued"]
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = last_tick_at - interval '2 s'")
    again = PeriodicScheduler(store).run_once()
    assert enqueued >= 3 and again["duplicate"] >= 2, again


@pytest.mark.parametrize("change", ["switched off", "cron changed"])
def test_a_schedule_added_again_counts_ticks_from_then(store: Store, conn: psycopg.Connection, change: str) -> None:
    # Re-adding a disabled schedule (or the same name with another cron) caught up on what fell due meanwhile,
    # though a schedule switched on again counts its ticks from then on (no catch-up).
    supaworker.add_periodic_job("0 0 * * *", type="daily", catch_up=True, store=store)
    if change == "switched off":
        conn.execute("UPDATE supaworker.periodic_jobs SET enabled = false")
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = now() - interval '3 days'")
    cron = "0 0 * * *" if change == "switched off" else "0 * * * *"
    supaworker.add_periodic_job(cron, type="daily", catch_up=True, store=store)
    assert PeriodicScheduler(store).run_once()["enqueued"] == 0
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (0,)


def test_a_schedule_written_again_unchanged_keeps_its_ticks(store: Store, conn: psycopg.Connection) -> None:
    # Workers write the schedules their code declares at every start, and a deploy may add one again: an
    # enabled schedule with the same cron keeps its last tick, and so the catch-up it asked for.
    supaworker.add_periodic_job("0 0 * * *", type="daily", catch_up=True, store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = now() - interval '2 days'")
    supaworker.add_periodic_job("0 0 * * *", type="daily", catch_up=True, store=store)
    assert PeriodicScheduler(store).run_once()["enqueued"] >= 1
