"""The queue's SQL functions, called directly: claiming, fencing, retries, rescue, release, dependencies."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

import supaworker
from supaworker.store import Store


def claim(conn: psycopg.Connection, worker: str, limit: int = 1, lease: float = 30, types: list[str] | None = None):
    return conn.execute(
        "SELECT id, attempts FROM supaworker.claim_jobs(%s, %s, %s, %s) ORDER BY id", (worker, types, limit, lease)
    ).fetchall()


def job(conn: psycopg.Connection, job_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()


def fail(conn: psycopg.Connection, job_id: int, worker: str, attempt: int, error: str = "boom", base: float = 5.0):
    return conn.execute(
        "SELECT supaworker.fail_job(%s, %s, %s, %s, %s, 3600)::text", (job_id, worker, error, attempt, base)
    ).fetchone()[0]


def test_claim_takes_jobs_in_priority_then_run_at_order(store: Store, conn: psycopg.Connection) -> None:
    low = supaworker.create_job("t", priority=5, store=store)
    first = supaworker.create_job("t", priority=0, store=store)
    second = supaworker.create_job("t", priority=0, store=store)
    order = [conn.execute("SELECT id FROM supaworker.claim_jobs('w', NULL, 1, 30)").fetchone()[0] for _ in range(3)]
    assert order == [first.id, second.id, low.id]


def test_claim_skips_future_jobs_and_other_types(store: Store, conn: psycopg.Connection) -> None:
    supaworker.create_job("t", delay=3600, store=store)
    supaworker.create_job("other", store=store)
    wanted = supaworker.create_job("t", store=store)
    assert claim(conn, "w", limit=10, types=["t"]) == [(wanted.id, 1)]


def test_claim_job_compat_function_returns_one_row(store: Store, conn: psycopg.Connection) -> None:
    supaworker.create_jobs([{"type": "t"}] * 3, store=store)
    rows = conn.execute("SELECT id, status, worker_id FROM supaworker.claim_job('w-1')").fetchall()
    assert len(rows) == 1 and rows[0][1:] == ("processing", "w-1")


def test_concurrent_claims_never_share_a_job(db: str, store: Store) -> None:
    supaworker.create_jobs([{"type": "t"}] * 2000, store=store)
    claimed: list[list[int]] = [[] for _ in range(8)]

    def claimer(n: int) -> None:
        with psycopg.connect(db, autocommit=True) as c:
            while rows := claim(c, f"w{n}", limit=7):
                claimed[n].extend(r[0] for r in rows)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in claimed for i in ids]
    assert len(everything) == 2000 and len(set(everything)) == 2000
    assert sum(1 for ids in claimed if ids) > 1


def test_complete_is_fenced_by_worker_and_attempt(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", store=store)
    claim(conn, "w1")
    wrong_worker = conn.execute("SELECT supaworker.complete_job(%s, 'w2', '{}', 1)", (j.id,)).fetchone()[0]
    wrong_attempt = conn.execute("SELECT supaworker.complete_job(%s, 'w1', '{}', 2)", (j.id,)).fetchone()[0]
    right = conn.execute("""SELECT supaworker.complete_job(%s, 'w1', '{"ok": 1}', 1)""", (j.id,)).fetchone()[0]
    again = conn.execute("SELECT supaworker.complete_job(%s, 'w1', '{}', 1)", (j.id,)).fetchone()[0]
    assert (wrong_worker, wrong_attempt, right, again) == (False, False, True, False)
    row = job(conn, j.id)
    assert (row["status"], row["result"], row["lease_expires_at"]) == ("completed", {"ok": 1}, None)


def test_complete_jobs_batch_reports_only_owned_rows(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 3, store=store)
    claim(conn, "w1", limit=3)
    done = conn.execute(
        "SELECT * FROM supaworker.complete_jobs('w1', %s, %s, %s)",
        (ids, [1, 1, 2], [psycopg.types.json.Jsonb(i) for i in ids]),
    ).fetchall()
    assert sorted(r[0] for r in done) == ids[:2]
    assert job(conn, ids[2])["status"] == "processing"


def test_failed_attempts_back_off_exponentially_then_fail_permanently(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", max_attempts=3, store=store)
    delays = []
    for attempt in (1, 2):
        conn.execute("UPDATE supaworker.jobs SET run_at = now() WHERE id = %s", (j.id,))
        assert claim(conn, "w") == [(j.id, attempt)]
        # In the failing transaction, now() is the instant fail_job computed run_at from: the delay read back
        # is exactly the one it chose, however late this test runs.
        with conn.transaction():
            assert fail(conn, j.id, "w", attempt, f"error {attempt}", base=10) == "pending"
            delays.append(
                conn.execute(
                    "SELECT extract(epoch FROM run_at - now()) FROM supaworker.jobs WHERE id = %s", (j.id,)
                ).fetchone()[0]
            )
    # base * 2^(attempt-1) with +-15 % jitter: 10 s, then 20 s (a microsecond of rounding either way).
    assert 8.5 - 1e-6 <= delays[0] <= 11.5 + 1e-6
    assert 17 - 1e-6 <= delays[1] <= 23 + 1e-6
    conn.execute("UPDATE supaworker.jobs SET run_at = now() WHERE id = %s", (j.id,))
    assert claim(conn, "w") == [(j.id, 3)]
    assert fail(conn, j.id, "w", 3, "error 3") == "failed"
    row = job(conn, j.id)
    assert row["status"] == "failed" and row["completed_at"] is not None and row["last_error"] == "error 3"
    assert [(e["attempt"], e["error"]) for e in row["errors"]] == [(1, "error 1"), (2, "error 2"), (3, "error 3")]
    assert claim(conn, "w") == []


def test_backoff_is_capped(conn: psycopg.Connection) -> None:
    seconds = conn.execute("SELECT extract(epoch FROM supaworker.retry_delay(20, 5, 60))").fetchone()[0]
    assert 51 <= seconds <= 69


def test_unretryable_failure_fails_at_once(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", max_attempts=5, store=store)
    claim(conn, "w")
    status = conn.execute("SELECT supaworker.fail_job(%s, 'w', 'bad payload', 1, 1, 10, false)::text", (j.id,))
    assert status.fetchone()[0] == "failed"


def test_late_failure_from_stale_worker_is_rejected(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", store=store)
    claim(conn, "w1", lease=0.01)
    conn.execute("SELECT pg_sleep(0.05)")
    conn.execute("SELECT * FROM supaworker.rescue_expired_jobs(100, 0, 0)")
    conn.execute("UPDATE supaworker.jobs SET run_at = now() WHERE id = %s", (j.id,))
    assert claim(conn, "w2") == [(j.id, 2)]
    assert fail(conn, j.id, "w1", 1) is None
    assert conn.execute("SELECT supaworker.complete_job(%s, 'w1', '{}', 1)", (j.id,)).fetchone()[0] is False
    assert conn.execute("SELECT supaworker.complete_job(%s, 'w2', '{}', 2)", (j.id,)).fetchone()[0] is True


def test_rescue_retries_expired_jobs_and_fails_those_out_of_attempts(store: Store, conn: psycopg.Connection) -> None:
    retry = supaworker.create_job("t", max_attempts=2, store=store)
    doomed = supaworker.create_job("t", max_attempts=1, store=store)
    alive = supaworker.create_job("t", store=store)
    claim(conn, "dead", limit=2, lease=0.01)
    claim(conn, "alive", limit=1, lease=60)
    conn.execute("SELECT pg_sleep(0.05)")
    rescued = conn.execute("SELECT id, status, worker_id FROM supaworker.rescue_expired_jobs(100, 0, 0)").fetchall()
    assert sorted(rescued) == [(retry.id, "pending", "dead"), (doomed.id, "failed", "dead")]
    assert "died while running the job" in job(conn, retry.id)["last_error"]
    assert job(conn, alive.id)["status"] == "processing"
    assert conn.execute("SELECT count(*) FROM supaworker.rescue_expired_jobs(100, 0, 0)").fetchone()[0] == 0


def test_heartbeat_extends_only_owned_leases(store: Store, conn: psycopg.Connection) -> None:
    a, b = supaworker.create_jobs([{"type": "t"}] * 2, store=store)
    claim(conn, "w1", lease=1)
    claim(conn, "w2", lease=1)
    owned = conn.execute("SELECT * FROM supaworker.heartbeat_jobs('w1', %s, 120)", ([a, b],)).fetchall()
    assert owned == [(a,)]
    remaining = conn.execute(
        "SELECT extract(epoch FROM lease_expires_at - now()) FROM supaworker.jobs WHERE id=%s", (a,)
    )
    assert remaining.fetchone()[0] > 100


def test_release_hands_job_back_without_counting_the_attempt(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", store=store)
    claim(conn, "w1")
    released = conn.execute("SELECT * FROM supaworker.release_jobs('w1', %s, %s)", ([j.id], [1])).fetchall()
    assert released == [(j.id,)]
    row = job(conn, j.id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("pending", 0, None)
    assert claim(conn, "w2") == [(j.id, 1)]


def test_retry_job_requeues_failed_job_with_an_extra_attempt(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", max_attempts=1, store=store)
    claim(conn, "w")
    fail(conn, j.id, "w", 1)
    assert supaworker.retry_job(j.id, store=store) == "pending"
    row = job(conn, j.id)
    assert (row["status"], row["max_attempts"], row["completed_at"]) == ("pending", 2, None)
    with pytest.raises(supaworker.InvalidTransition, match="only failed or cancelled"):
        supaworker.retry_job(j.id, store=store)
    with pytest.raises(supaworker.JobNotFound):
        supaworker.retry_job(10**9, store=store)


def test_cancel_job_fences_out_its_running_worker(store: Store, conn: psycopg.Connection) -> None:
    j = supaworker.create_job("t", store=store)
    claim(conn, "w")
    assert supaworker.cancel_job(j.id, store=store) == "cancelled"
    assert conn.execute("SELECT supaworker.complete_job(%s, 'w', '{}', 1)", (j.id,)).fetchone()[0] is False
    with pytest.raises(supaworker.InvalidTransition, match="already cancelled"):
        supaworker.cancel_job(j.id, store=store)


def add_dependency(conn: psycopg.Connection, child: int, parent: int) -> None:
    conn.execute("UPDATE supaworker.jobs SET status = 'waiting' WHERE id = %s", (child,))
    conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (child, parent))


def test_child_waits_for_all_parents_then_becomes_pending(store: Store, conn: psycopg.Connection) -> None:
    p1, p2, child = supaworker.create_jobs([{"type": "p"}, {"type": "p"}, {"type": "c"}], store=store)
    add_dependency(conn, child, p1)
    add_dependency(conn, child, p2)
    claim(conn, "w", limit=5)
    conn.execute("SELECT supaworker.complete_job(%s, 'w', '{}', 1)", (p1,))
    assert job(conn, child)["status"] == "waiting"
    conn.execute("SELECT supaworker.complete_job(%s, 'w', '{}', 1)", (p2,))
    assert job(conn, child)["status"] == "pending"


def test_parents_completing_concurrently_still_release_the_child(
    db: str, store: Store, conn: psycopg.Connection
) -> None:
    for _ in range(20):
        p1, p2, child = supaworker.create_jobs([{"type": "p"}, {"type": "p"}, {"type": "c"}], store=store)
        add_dependency(conn, child, p1)
        add_dependency(conn, child, p2)
        claim(conn, "w", limit=2, types=["p"])
        barrier = threading.Barrier(2)

        def complete(job_id: int, barrier: threading.Barrier = barrier) -> None:
            with psycopg.connect(db) as c:
                c.execute("SELECT 1")
                barrier.wait()
                c.execute("SELECT supaworker.complete_job(%s, 'w', '{}', 1)", (job_id,))
                c.commit()

        threads = [threading.Thread(target=complete, args=(p,)) for p in (p1, p2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert job(conn, child)["status"] == "pending"
        conn.execute("DELETE FROM supaworker.jobs")


def test_permanent_failure_cancels_descendants_and_retry_restores_them(store: Store, conn: psycopg.Connection) -> None:
    parent, child, grandchild = supaworker.create_jobs(
        [{"type": "a", "max_attempts": 1}, {"type": "b"}, {"type": "c"}], store=store
    )
    add_dependency(conn, child, parent)
    add_dependency(conn, grandchild, child)
    claim(conn, "w")
    fail(conn, parent, "w", 1, "exploded")
    for descendant in (child, grandchild):
        row = job(conn, descendant)
        assert row["status"] == "cancelled" and f"dependency {parent} failed: exploded" in row["last_error"]
    assert supaworker.retry_job(parent, store=store) == "pending"
    assert [job(conn, d)["status"] for d in (child, grandchild)] == ["waiting", "waiting"]
