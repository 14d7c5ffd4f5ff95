"""The application API on a real database: enqueue, bulk enqueue, transactions, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import supaworker
from supaworker import InvalidJob, JobStatus
from supaworker.store import Store


def count_jobs(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0]


def test_create_job_returns_pending_row_with_defaults(store: Store) -> None:
    job = supaworker.create_job("analysis", {"video_url": "v.mp4"}, store=store)
    assert job.status is JobStatus.PENDING
    assert job.payload == {"video_url": "v.mp4"}
    assert (job.attempts, job.max_attempts, job.priority, job.queue) == (0, 3, 0, "default")
    assert job.errors == []


def test_create_job_with_delay_is_not_runnable_yet(store: Store, conn: psycopg.Connection) -> None:
    job = supaworker.create_job("render", delay=60, store=store)
    runnable = conn.execute("SELECT runnable FROM supaworker.pending_jobs_queue WHERE id = %s", (job.id,)).fetchone()
    assert runnable == (False,)


def test_create_job_in_rolled_back_transaction_leaves_no_job(db: str) -> None:
    with psycopg.connect(db) as app_conn:
        job = supaworker.create_job("analysis", {"a": 1}, conn=app_conn)
        assert job.id > 0
        app_conn.rollback()
    with psycopg.connect(db) as check:
        assert count_jobs(check) == 0


def test_create_job_in_committed_transaction_appears_with_the_apps_rows(db: str) -> None:
    with psycopg.connect(db) as app_conn:
        app_conn.execute("CREATE TABLE orders (id int)")
        app_conn.execute("INSERT INTO orders VALUES (1)")
        supaworker.create_job("analysis", {"order": 1}, conn=app_conn)
        app_conn.commit()
    with psycopg.connect(db) as check:
        assert count_jobs(check) == 1
        assert check.execute("SELECT count(*) FROM orders").fetchone() == (1,)


def test_create_jobs_bulk_returns_ids_in_order(store: Store, conn: psycopg.Connection) -> None:
    run_at = datetime.now(UTC) + timedelta(hours=1)
    ids = supaworker.create_jobs(
        [{"type": "t", "payload": {"i": i}, "priority": i % 3} for i in range(500)]
        + [{"type": "later", "run_at": run_at}],
        store=store,
    )
    assert len(ids) == 501 and ids == sorted(ids)
    rows = conn.execute(
        "SELECT id, payload->>'i', priority FROM supaworker.jobs WHERE type = 't' ORDER BY id"
    ).fetchall()
    assert [(r[0], int(r[1]), r[2]) for r in rows] == [(ids[i], i, i % 3) for i in range(500)]
    later = conn.execute("SELECT run_at FROM supaworker.jobs WHERE id = %s", (ids[-1],)).fetchone()[0]
    assert abs((later - run_at).total_seconds()) < 0.001


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": ""}, "type must be a non-empty string"),
        ({"type": "x" * 200}, "at most 128"),
        ({"type": "t", "payload": {"f": object()}}, "JSON-serialisable"),
        ({"type": "t", "payload": {"f": float("nan")}}, "payload.f must be a finite number"),
        ({"type": "t", "max_attempts": 0}, "max_attempts"),
        ({"type": "t", "priority": "high"}, "priority"),
        ({"type": "t", "timeout": -1}, "timeout"),
        ({"type": "t", "run_at": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"type": "t", "brief_id": "not-a-uuid"}, "brief_id must be a UUID"),
        ({"type": "t", "delay": 5, "run_at": datetime.now(UTC)}, "not both"),
    ],
)
def test_create_job_rejects_bad_input_and_writes_nothing(
    store: Store, conn: psycopg.Connection, kwargs: dict, message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        supaworker.create_job(**kwargs, store=store)
    assert count_jobs(conn) == 0


def test_create_jobs_rejects_whole_batch_when_one_job_is_bad(store: Store, conn: psycopg.Connection) -> None:
    with pytest.raises(InvalidJob, match="job #2"):
        supaworker.create_jobs([{"type": "a"}, {"type": "b"}, {"type": "c", "max_attempts": -1}], store=store)
    assert count_jobs(conn) == 0


def test_create_job_without_store_uses_database_url(default_client: None, conn: psycopg.Connection) -> None:
    job = supaworker.create_job("analysis", {"q": "x"})
    assert supaworker.get_job(job.id).payload == {"q": "x"}
    assert count_jobs(conn) == 1


def test_installing_supaworker_touches_no_app_table(db: str, conn: psycopg.Connection) -> None:
    outside = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S', 'i')"
    ).fetchone()[0]
    functions = conn.execute(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
    ).fetchone()[0]
    assert (outside, functions) == (0, 0)
