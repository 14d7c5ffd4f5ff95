"""Leader election and pruning on a real database, each service's run_once() called directly."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import supaworker
from supaworker.maintenance import LeaderElector, Pruner, PrunerConfig
from supaworker.maintenance.vacuumer import Vacuumer, VacuumerConfig
from supaworker.store import Store


def test_exactly_one_of_many_concurrent_candidates_becomes_leader(db: str) -> None:
    barrier, results = threading.Barrier(10), []

    def elect(n: int) -> None:
        with ConnectionPool(db, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
            elector = LeaderElector(Store(pool, "supaworker"), f"worker-{n}")
            barrier.wait()
            results.append(elector.run_once())

    threads = [threading.Thread(target=elect, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 9 + [True]


def test_leader_keeps_its_lease_until_it_expires_or_resigns(store: Store, conn: psycopg.Connection) -> None:
    a, b = LeaderElector(store, "a"), LeaderElector(store, "b")
    assert (a.run_once(), b.run_once(), a.run_once()) == (True, False, True)
    conn.execute("UPDATE supaworker.leaders SET expires_at = now() - interval '1 second'")  # a stopped renewing
    assert (b.run_once(), a.run_once()) == (True, False)
    b.resign()
    assert store.get_leader("maintenance") is None
    assert a.run_once() is True


def finish(conn: psycopg.Connection, ids: list[int], status: str, age: str) -> None:
    conn.execute(
        "UPDATE supaworker.jobs SET status = %s::supaworker.job_status, completed_at = now() - %s::interval "
        "WHERE id = ANY(%s)",
        (status, age, ids),
    )


def statuses(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status::text, count(*) FROM supaworker.jobs GROUP BY status"))


def test_pruner_deletes_each_status_after_its_own_retention(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 12, store=store)
    finish(conn, ids[0:3], "completed", "2 days")
    finish(conn, ids[3:5], "completed", "1 hour")
    finish(conn, ids[5:7], "failed", "2 days")
    finish(conn, ids[7:9], "failed", "8 days")
    finish(conn, ids[9:10], "cancelled", "2 days")
    counts = Pruner(store).run_once()  # defaults: completed and cancelled 24 h, failed 7 days
    assert counts == {"completed": 3, "failed": 2, "cancelled": 1}
    assert statuses(conn) == {"completed": 2, "failed": 2, "pending": 2}
    assert Pruner(store).run_once() == {"completed": 0, "failed": 0, "cancelled": 0}


def test_pruner_works_in_bounded_batches(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 50, store=store)
    finish(conn, ids, "completed", "2 days")
    pruner = Pruner(store, PrunerConfig(batch_size=10, max_batches=2))
    assert pruner.run_once()["completed"] == 20
    assert statuses(conn) == {"completed": 30}


def test_pruner_keeps_a_finished_parent_while_a_dependent_is_unfinished(store: Store, conn: psycopg.Connection) -> None:
    parent, child = supaworker.create_jobs([{"type": "p"}, {"type": "c"}], store=store)
    conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (child, parent))
    finish(conn, [parent], "completed", "2 days")
    assert Pruner(store).run_once()["completed"] == 0
    finish(conn, [child], "completed", "2 days")
    assert Pruner(store).run_once()["completed"] == 2


def test_none_retention_keeps_that_status_for_ever(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 2, store=store)
    finish(conn, ids, "failed", "400 days")
    assert Pruner(store, PrunerConfig(failed_retention_seconds=None)).run_once()["failed"] == 0


def test_bad_pruner_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="completed_retention_seconds must be >= 0"):
        PrunerConfig(completed_retention_seconds=-1)


def test_table_health_shows_dead_tuples_and_invalid_indexes(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 200, store=store)
    conn.execute("DELETE FROM supaworker.jobs WHERE id = ANY(%s)", (ids[:150],))
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens at the end of this session's next transaction
    # A unique index built concurrently over duplicate values fails and stays behind, invalid (River #909).
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY jobs_type_ccnew ON supaworker.jobs (type)")
    jobs = next(t for t in store.table_health() if t["table_name"] == "jobs")
    assert jobs["dead_tuples"] >= 150 and jobs["invalid_indexes"] == ["jobs_type_ccnew"]


def wait_for_dead_tuples(store: Store, at_least: int) -> int:
    """Statistics reach the shared counters asynchronously; bounded so a broken run cannot hang."""
    import time

    deadline = time.monotonic() + 20
    while (dead := store.jobs_tuple_counts()[1]) < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
    return dead


def test_vacuumer_vacuums_the_jobs_table_only_when_dead_tuples_pile_up(store: Store, conn: psycopg.Connection) -> None:
    vacuumer = Vacuumer(store, VacuumerConfig(min_dead_tuples=5_000, dead_fraction=0.2))
    assert vacuumer.run_once()["vacuumed"] == 0
    supaworker.create_jobs([{"type": "t"}] * 20_000, store=store)
    conn.execute("DELETE FROM supaworker.jobs WHERE id % 2 = 0")
    conn.execute("SELECT pg_stat_force_next_flush()")
    assert wait_for_dead_tuples(store, 10_000) >= 10_000
    outcome = vacuumer.run_once()
    assert outcome["vacuumed"] == 1 and outcome["dead_tuples"] >= 10_000
    live, dead = store.jobs_tuple_counts()
    assert (live, dead) == (10_000, 0)
    assert vacuumer.run_once()["vacuumed"] == 0
