"""The names a handler's Job and a JobRecord share, and create_jobs returning records when asked."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

import supaworker
from supaworker import Job, JobRecord
from supaworker.store import Store


def test_a_handlers_job_answers_attempts_like_its_record() -> None:
    now = datetime.now(UTC)
    job = Job(1, "t", "default", 0, {}, 2, 3, None, None, now, now, now)
    assert job.attempts == job.attempt == 2


def test_create_jobs_returns_records_in_order_when_asked(store: Store, conn: psycopg.Connection) -> None:
    plain = supaworker.create_jobs([{"type": "a"}, {"type": "b"}], store=store)
    assert all(isinstance(i, int) for i in plain)
    records = supaworker.create_jobs(
        [{"type": "c", "priority": 3}, {"type": "d", "payload": {"n": 1}}], store=store, return_records=True
    )
    assert [type(r) for r in records] == [JobRecord, JobRecord]
    assert [(r.type, r.priority, r.payload, str(r.status), r.attempts) for r in records] == [
        ("c", 3, {}, "pending", 0), ("d", 0, {"n": 1}, "pending", 0),
    ]  # fmt: skip
    assert records[0].id < records[1].id and records[0].id > plain[-1]
    chain = supaworker.create_jobs(
        [{"type": "child", "key": "c", "depends_on": ["p"]}, {"type": "parent", "key": "p"}],
        store=store,
        return_records=True,
    )
    assert [(r.type, str(r.status)) for r in chain] == [("child", "waiting"), ("parent", "pending")]
    assert chain[0].extra["depends_on"] == [chain[1].id]


def test_create_jobs_records_inside_the_callers_transaction(db: str) -> None:
    with psycopg.connect(db) as conn:
        records = supaworker.create_jobs([{"type": "x"}] * 3, conn=conn, return_records=True)
        assert len(records) == 3
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (0,)
