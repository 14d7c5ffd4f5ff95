"""Pipelines (jobs waiting on their parents) with several workers, directly and through PgBouncer: each
step runs once, only after all its parents completed, and a chain is never left half-done."""

from __future__ import annotations

import psycopg
import pytest

from .conftest import Workers, count_by_status, unfinished, wait_for

pytestmark = [pytest.mark.acceptance]

CHAINS = 40
STEPS = 4


def _create_chains(db: str) -> None:
    # analysis -> asset_prep -> generation -> render, plus a fan-in: render also waits on analysis.
    with psycopg.connect(db) as conn, conn.transaction():
        for chain in range(CHAINS):
            ids = []
            for step in range(STEPS):
                (job_id,) = conn.execute(
                    "INSERT INTO supaworker.jobs (type, status, payload) VALUES ('record', %s, %s) RETURNING id",
                    ("pending" if step == 0 else "waiting", psycopg.types.json.Jsonb({"chain": chain, "step": step})),
                ).fetchone()  # type: ignore[misc]
                if ids:
                    conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (job_id, ids[-1]))
                ids.append(job_id)
            conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (ids[-1], ids[0]))


def test_pipelines_run_each_step_once_after_its_parents(db: str, workers: Workers) -> None:
    _create_chains(db)
    for _ in range(3):
        workers.start("--concurrency", "4", WORKER_POLL_INTERVAL_MS="50")
    wait_for(lambda: unfinished(db) == 0, what="every chain to finish")
    workers.stop_all()
    assert count_by_status(db) == {"completed": CHAINS * STEPS}
    executions = workers.executions()
    assert len(executions) == CHAINS * STEPS and max(executions.values()) == 1
    with psycopg.connect(db) as conn:
        early = conn.execute(
            "SELECT count(*) FROM supaworker.job_dependencies d JOIN supaworker.jobs c ON c.id = d.job_id"
            " JOIN supaworker.jobs p ON p.id = d.depends_on WHERE c.started_at < p.completed_at"
        ).fetchone()
    assert early == (0,), "a step started before one of its parents completed"
