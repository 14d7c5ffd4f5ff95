"""Each failed attempt's entry in jobs.errors says when that attempt started, whoever ended it: the worker
(fail_job) or the rescue of a dead worker. The job page draws every attempt from these entries."""

from __future__ import annotations

import psycopg

from tests.support.api import claim


def entries(conn: psycopg.Connection, job_id: int) -> list[dict]:
    return conn.execute("SELECT errors FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()[0]


def test_fail_job_records_when_the_failed_attempt_started(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('t')")
    job_id = claim(conn)
    started = conn.execute("SELECT started_at FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()[0]
    conn.execute("SELECT supaworker.fail_job(%s, 'worker-test-1', 'boom', NULL, 0, 0, true)", (job_id,))
    [entry] = entries(conn, job_id)
    assert entry["attempt"] == 1 and entry["error"] == "boom" and entry["worker_id"] == "worker-test-1"
    assert conn.execute("SELECT %s::timestamptz = %s", (entry["started_at"], started)).fetchone()[0]
    assert conn.execute("SELECT %s::timestamptz >= %s::timestamptz", (entry["at"], entry["started_at"])).fetchone()[0]


def test_the_rescue_records_when_the_lost_attempt_started(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('t')")
    job_id = claim(conn, "worker-dead-1")
    started = conn.execute("SELECT started_at FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()[0]
    conn.execute(
        "UPDATE supaworker.jobs SET lease_expires_at = now() - interval '1 minute', handler_started = true"
        " WHERE id = %s",
        (job_id,),
    )
    rescued = conn.execute(
        "SELECT id FROM supaworker.rescue_expired_jobs_v2(NULL, 10, 0, 0, p_grace_seconds => 0)"
    ).fetchall()
    assert rescued == [(job_id,)]
    [entry] = entries(conn, job_id)
    assert "died while running the job" in entry["error"] and entry["worker_id"] == "worker-dead-1"
    assert conn.execute("SELECT %s::timestamptz = %s", (entry["started_at"], started)).fetchone()[0]
