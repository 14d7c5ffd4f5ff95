"""Periodic jobs on a real database: one job per tick however many schedulers run, missed ticks once."""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import supaworker
from supaworker.errors import InvalidJob
from supaworker.maintenance import (
    LEADER_RENEW_SECONDS,
    LEADER_TTL_SECONDS,
    MaintenanceConfig,
    MaintenanceService,
    PeriodicScheduler,
)
from supaworker.periodic import PeriodicRegistry, periodic, sync_periodic_jobs
from supaworker.registry import Registry
from supaworker.store import Store
from tests.conftest import run_cli
from tests.support.waiting import wait_until, wait_until_async
from tests.support.worker import make_worker, running


def periodic_jobs(conn: psycopg.Connection, type: str = "report") -> list[str]:
    return [r[0] for r in conn.execute("SELECT unique_key FROM supaworker.jobs WHERE type = %s ORDER BY id", (type,))]


def test_concurrent_schedulers_enqueue_each_tick_exactly_once(db: str, store: Store, conn: psycopg.Connection) -> None:
    supaworker.add_periodic_job("*/5 * * * *", type="report", store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = now() - interval '31 minutes'")
    threads, barrier = 8, threading.Barrier(8)
    totals: list[dict[str, int]] = []

    def schedule() -> None:
        with ConnectionPool(db, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
            # A grace of an hour makes every tick of the last 31 minutes "on time": 6 or 7 ticks are due.
            scheduler = PeriodicScheduler(Store(pool, "supaworker"), grace_seconds=3600)
            barrier.wait()
            totals.append(scheduler.run_once())

    workers = [threading.Thread(target=schedule) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    enqueued = sum(t["enqueued"] for t in totals)
    keys = periodic_jobs(conn)
    assert enqueued == len(keys) and len(keys) in (6, 7)
    assert len(set(keys)) == len(keys)
    last = conn.execute("SELECT last_tick_at, last_job_id FROM supaworker.periodic_jobs").fetchone()
    assert keys[-1].endswith(last[0].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert PeriodicScheduler(store, grace_seconds=3600).run_once()["enqueued"] == 0


def test_ticks_missed_while_all_workers_were_down_are_enqueued_once(store: Store, conn: psycopg.Connection) -> None:
    # Yearly ticks, two years down: several ticks missed, none recent (unless this runs at New Year).
    supaworker.add_periodic_job("0 0 1 1 *", type="report", payload={"kind": "daily"}, store=store)
    supaworker.add_periodic_job("0 0 1 1 *", type="digest", name="no-catch-up", catch_up=False, store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = now() - interval '2 years 1 day'")
    counts = PeriodicScheduler(store).run_once()
    assert len(periodic_jobs(conn)) == 1 and periodic_jobs(conn, "digest") == []
    assert counts["enqueued"] + counts["skipped"] >= 2
    assert PeriodicScheduler(store).run_once()["enqueued"] == 0
    job = conn.execute("SELECT payload, status FROM supaworker.jobs WHERE type = 'report'").fetchone()
    assert job == ({"kind": "daily"}, "pending")


def test_a_downtime_of_many_ticks_enqueues_one_catch_up_job(store: Store, conn: psycopg.Connection) -> None:
    # Every 2 s (seconds last) and no worker for 36 s: 18 ticks missed, which were 18 jobs.
    supaworker.add_periodic_job("* * * * * */2", type="report", store=store)
    supaworker.add_periodic_job("* * * * * */2", type="digest", name="no-catch-up", catch_up=False, store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = date_trunc('second', now()) - interval '36 s'")
    counts = PeriodicScheduler(store).run_once()
    keys = periodic_jobs(conn)
    assert len(keys) == 1, keys
    assert periodic_jobs(conn, "digest") == [] and (counts["enqueued"], counts["skipped"]) == (1, 1)
    # The one job is for the latest missed tick, where both schedules now stand: less than 2 s ago.
    ticks = conn.execute("SELECT DISTINCT last_tick_at, now() - last_tick_at FROM supaworker.periodic_jobs").fetchall()
    [(tick, age)] = ticks
    assert keys == [f"periodic:report:{tick.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"] and age.total_seconds() < 2


def test_without_downtime_every_tick_is_enqueued_once_across_a_change_of_leader(
    store: Store, conn: psycopg.Connection
) -> None:
    # The new leader finds the ticks due since the old one's last run (a lease and a renewal): each is enqueued.
    supaworker.add_periodic_job("* * * * * *", type="report", store=store)
    gap = int(LEADER_TTL_SECONDS + LEADER_RENEW_SECONDS)
    conn.execute(
        "UPDATE supaworker.periodic_jobs SET last_tick_at = date_trunc('second', now()) - %s::interval", (f"{gap} s",)
    )
    scheduler = PeriodicScheduler(store)
    first = scheduler.run_once()["enqueued"]
    wait_until(lambda: scheduler.run_once() and len(periodic_jobs(conn)) >= gap + 2, "two ticks more")
    keys = periodic_jobs(conn)
    ticks = [datetime.strptime(k.split(":", 2)[2], "%Y-%m-%dT%H:%M:%SZ") for k in keys]  # periodic:NAME:TICK
    assert first >= gap and len(set(keys)) == len(keys)
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(ticks))  # no gap, none twice


def test_periodic_list_shows_whether_each_schedule_is_enabled(db: str, store: Store) -> None:
    supaworker.add_periodic_job("0 3 * * *", type="nightly", store=store)
    supaworker.add_periodic_job("0 4 * * *", type="early", store=store)

    def listed() -> dict[str, dict[str, str]]:
        header, *lines = run_cli(db, "periodic", "list").stdout.splitlines()
        starts = [m.start() for m in re.finditer(r"\S+", header)]
        names = header.split()
        return {
            line[: starts[1]].strip(): {
                name: line[start:end].strip()
                for name, start, end in zip(names, starts, [*starts[1:], None], strict=True)
            }
            for line in lines
        }

    before = listed()
    assert [(r["enabled"], r["next_tick_at"] != "-") for r in before.values()] == [("True", True)] * 2
    assert run_cli(db, "periodic", "disable", "early").returncode == 0
    after = listed()
    assert after["nightly"] == before["nightly"]
    assert (after["early"]["enabled"], after["early"]["next_tick_at"]) == ("False", "-")
    rows = {r["name"]: r for r in json.loads(run_cli(db, "periodic", "list", "--json").stdout)}
    assert (rows["early"]["enabled"], rows["early"]["next_tick_at"]) == (False, None)
    assert rows["nightly"]["enabled"] is True and rows["nightly"]["next_tick_at"] is not None


def test_new_schedule_waits_for_its_first_tick(store: Store, conn: psycopg.Connection) -> None:
    supaworker.add_periodic_job("0 0 1 1 *", type="yearly", store=store)
    assert PeriodicScheduler(store).run_once() == {
        "enqueued": 0,
        "skipped": 0,
        "lost": 0,
        "duplicate": 0,
        "unreadable": 0,
    }
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (0,)


def test_a_cron_that_never_fires_is_refused(store: Store, conn: psycopg.Connection) -> None:
    for cron in ("0 0 30 2 *", "* * 31 2 *", "0 0 31 4 *", "0 0 30 2 * 0"):
        with pytest.raises(InvalidJob, match=re.escape(f"cron '{cron}' never fires")):
            supaworker.add_periodic_job(cron, type="analysis", store=store)
    supaworker.add_periodic_job("0 0 29 2 *", type="leap", store=store)  # once in four years is not never
    assert conn.execute("SELECT name FROM supaworker.periodic_jobs").fetchall() == [("leap",)]


def test_scheduler_skips_schedules_it_cannot_compute_and_runs_the_others(
    store: Store, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # Rows only plain SQL can store; one of them must neither stop the scheduler nor be warned about every tick.
    conn.execute(
        """INSERT INTO supaworker.periodic_jobs (name, cron, type, last_tick_at) VALUES
             ('not-cron', 'not a cron at all', 'x', now()),
             ('feb-30', '0 0 30 2 *', 'x', now() - interval '1 day'),
             ('infinite', '* * * * *', 'x', 'infinity'),
             ('minus-infinite', '* * * * *', 'x', '-infinity'),
             ('year-9999', '* * * * *', 'x', '9999-12-31 23:59:00+00')"""
    )
    supaworker.add_periodic_job("* * * * * *", type="report", store=store)
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = now() - interval '3 s' WHERE name = 'report'")
    scheduler = PeriodicScheduler(store)

    def warned() -> list[str]:
        return sorted(getattr(r, "schedule", "") for r in caplog.records if "cannot be computed" in r.message)

    with caplog.at_level(logging.WARNING, "supaworker.maintenance"):
        first, second = scheduler.run_once(), scheduler.run_once()
        assert warned() == ["feb-30", "infinite", "minus-infinite", "not-cron", "year-9999"]  # once each
        assert first["unreadable"] == second["unreadable"] == 5 and first["enqueued"] >= 2
        assert len(periodic_jobs(conn)) == first["enqueued"] + second["enqueued"]
        assert conn.execute("SELECT count(*) FROM supaworker.jobs WHERE type = 'x'").fetchone() == (0,)
        # Repaired, a schedule runs again; broken anew, it is warned about anew.
        caplog.clear()
        conn.execute("UPDATE supaworker.periodic_jobs SET cron = '0 0 1 1 *' WHERE name = 'feb-30'")
        conn.execute("UPDATE supaworker.periodic_jobs SET cron = '0 0 31 4 *' WHERE name = 'not-cron'")
        assert scheduler.run_once()["unreadable"] == 4
        assert warned() == ["not-cron"]


def test_schedules_declared_in_code_are_written_by_sync(store: Store) -> None:
    schedules = PeriodicRegistry()
    periodic("0 3 * * *", type="nightly", payload={"full": True}, registry=schedules, handlers=Registry())
    assert sync_periodic_jobs(store, schedules) == 1
    [row] = supaworker.list_periodic_jobs(store=store)
    assert (row["name"], row["cron"], row["source"], row["payload"]) == ("nightly", "0 3 * * *", "code", {"full": True})
    assert row["next_tick_at"].hour == 3
    assert supaworker.remove_periodic_job("nightly", store=store) is True
    assert supaworker.list_periodic_jobs(store=store) == []


async def test_several_workers_with_maintenance_enqueue_every_second_once(db: str) -> None:
    registry = Registry()
    registry.register("tick", lambda job: "tock")
    schedules = PeriodicRegistry()
    periodic("* * * * * *", type="tick", registry=schedules, handlers=registry)
    pools = [ConnectionPool(db, min_size=1, max_size=2, kwargs={"autocommit": True}, open=True) for _ in range(3)]
    config = MaintenanceConfig(leader_renew_seconds=0.2, scheduler_interval_seconds=0.2)
    workers = []
    for pool in pools:
        worker = make_worker(db, registry)
        service = MaintenanceService(Store(pool, "supaworker"), worker.worker_id, config, schedules)
        worker.services.append(service)
        workers.append(worker)

    def completed() -> int:
        with psycopg.connect(db) as c:
            return c.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'").fetchone()[0]

    try:
        async with running(workers[0]), running(workers[1]), running(workers[2]):
            await wait_until_async(lambda: completed() >= 4, timeout=30)
    finally:
        for pool in pools:
            pool.close()
    with psycopg.connect(db) as c:
        keys = [r[0] for r in c.execute("SELECT unique_key FROM supaworker.jobs ORDER BY unique_key")]
        leaders = c.execute("SELECT count(*) FROM supaworker.leaders").fetchone()[0]
    ticks = [datetime.strptime(k.split(":", 2)[2], "%Y-%m-%dT%H:%M:%SZ") for k in keys]  # periodic:NAME:TICK
    # One job per second with no gap: every tick was enqueued once, whichever worker led at the time.
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(ticks))
    assert leaders == 0  # the leader resigned on shutdown
