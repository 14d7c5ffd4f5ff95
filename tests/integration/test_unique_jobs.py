"""Unique jobs on a real database: the partial unique index decides, the duplicate gets the existing job."""

from __future__ import annotations

import threading

import psycopg
import pytest

import supaworker
from supaworker import InvalidJob, JobStatus
from supaworker.store import Store


def count_jobs(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0]


def test_second_job_with_live_key_returns_the_first_and_inserts_nothing(store: Store, conn: psycopg.Connection) -> None:
    first = supaworker.create_job("report", {"day": 1}, unique_key="report:day-1", store=store)
    second = supaworker.create_job("report", {"day": 1, "other": True}, unique_key="report:day-1", store=store)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.id == first.id and second.payload == {"day": 1}
    assert count_jobs(conn) == 1


def test_concurrent_inserts_with_one_key_make_exactly_one_job(db: str, store: Store, conn: psycopg.Connection) -> None:
    threads, barrier = 8, threading.Barrier(8)
    results: list[supaworker.JobRecord] = []

    def insert() -> None:
        with psycopg.connect(db, autocommit=True) as c:
            barrier.wait()
            results.append(supaworker.create_job("sync", unique_key="sync:account-7", conn=c))

    workers = [threading.Thread(target=insert) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert count_jobs(conn) == 1
    assert len({r.id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * (threads - 1)


def test_completed_holder_keeps_its_key_until_pruned(store: Store, conn: psycopg.Connection) -> None:
    job = supaworker.create_job("once", unique_key="once", store=store)
    conn.execute("UPDATE supaworker.jobs SET status = 'completed', completed_at = now() WHERE id = %s", (job.id,))
    assert supaworker.create_job("once", unique_key="once", store=store).id == job.id
    conn.execute("DELETE FROM supaworker.jobs WHERE id = %s", (job.id,))
    again = supaworker.create_job("once", unique_key="once", store=store)
    assert not again.duplicate and again.id != job.id


@pytest.mark.parametrize("final_status", ["failed", "cancelled"])
def test_failed_or_cancelled_holder_gives_its_key_up(store: Store, conn: psycopg.Connection, final_status: str) -> None:
    old = supaworker.create_job("mail", unique_key="mail:42", store=store)
    conn.execute(
        "UPDATE supaworker.jobs SET status = %s::supaworker.job_status, completed_at = now() WHERE id = %s",
        (final_status, old.id),
    )
    new = supaworker.create_job("mail", unique_key="mail:42", store=store)
    assert not new.duplicate and new.id != old.id
    assert conn.execute("SELECT unique_key FROM supaworker.jobs WHERE id = %s", (old.id,)).fetchone() == (None,)


def test_key_with_unique_for_is_released_when_its_period_ends(store: Store, conn: psycopg.Connection) -> None:
    first = supaworker.create_job("digest", unique_key="digest", unique_for=60, store=store)
    assert supaworker.create_job("digest", unique_key="digest", unique_for=60, store=store).duplicate
    # The period has passed (moved back rather than waited for).
    conn.execute("UPDATE supaworker.jobs SET unique_until = now() - interval '1 second' WHERE id = %s", (first.id,))
    second = supaworker.create_job("digest", unique_key="digest", unique_for=60, store=store)
    assert not second.duplicate and second.id != first.id
    assert count_jobs(conn) == 2


def test_unique_job_in_rolled_back_transaction_leaves_the_key_free(db: str, store: Store) -> None:
    with psycopg.connect(db) as app_conn:
        supaworker.create_job("t", unique_key="k", conn=app_conn)
        app_conn.rollback()
    assert not supaworker.create_job("t", unique_key="k", store=store).duplicate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unique_key": ""}, "unique_key must be a non-empty string"),
        ({"unique_key": "x" * 513}, "at most 512"),
        ({"unique_for": 10}, "unique_for needs a unique_key"),
        ({"unique_key": "k", "unique_for": 0}, "unique_for must be a finite number of seconds > 0"),
    ],
)
def test_bad_unique_options_are_rejected_and_write_nothing(
    store: Store, conn: psycopg.Connection, kwargs: dict, message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        supaworker.create_job("t", store=store, **kwargs)
    assert count_jobs(conn) == 0


def test_bulk_create_refuses_unique_keys_and_writes_nothing(store: Store, conn: psycopg.Connection) -> None:
    with pytest.raises(InvalidJob, match="job #1: bulk jobs take no unique_key"):
        supaworker.create_jobs([{"type": "a"}, {"type": "a", "unique_key": "k"}], store=store)
    assert count_jobs(conn) == 0


def test_duplicate_record_reports_the_existing_jobs_state(store: Store, conn: psycopg.Connection) -> None:
    job = supaworker.create_job("t", unique_key="k", store=store)
    conn.execute("SELECT * FROM supaworker.claim_jobs('w1', NULL, 1)")
    dup = supaworker.create_job("t", unique_key="k", store=store)
    assert dup.id == job.id and dup.status is JobStatus.PROCESSING and dup.duplicate
