"""What operators already run keeps working, and the claim query keeps using its index."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

import supaworker
from supaworker.sql import Queries
from supaworker.store import Store


def test_old_monitoring_queries_run_as_written_with_the_schema_on_the_search_path(
    store: Store, conn: psycopg.Connection
) -> None:
    supaworker.create_jobs([{"type": "analysis"}] * 3 + [{"type": "render"}], store=store)
    conn.execute("SELECT * FROM supaworker.claim_jobs('w', ARRAY['render'], 1, 30)")
    conn.execute("UPDATE supaworker.jobs SET started_at = now() - interval '11 minutes' WHERE type = 'render'")
    conn.execute("SET search_path TO supaworker, public")
    by_type = conn.execute("SELECT type, status, COUNT(*) FROM jobs GROUP BY type, status ORDER BY 1").fetchall()
    assert by_type == [("analysis", "pending", 3), ("render", "processing", 1)]
    stuck = conn.execute(
        "SELECT * FROM jobs WHERE status = 'processing' AND started_at < NOW() - INTERVAL '10 minutes';"
    ).fetchall()
    assert len(stuck) == 1
    stats = conn.execute("SELECT * FROM job_stats ORDER BY count DESC;").fetchall()
    assert stats[0][:3] == ("analysis", "pending", 3)
    assert conn.execute("SELECT count(*) FROM active_jobs").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM pending_jobs_queue").fetchone() == (3,)


def test_job_stats_reports_duration_percentiles(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 4, store=store)
    conn.execute("SELECT * FROM supaworker.claim_jobs('w', NULL, 4, 30)")
    conn.execute("SELECT * FROM supaworker.complete_jobs('w', %s, %s, %s)", (ids, [1] * 4, [Jsonb(None)] * 4))
    conn.execute("UPDATE supaworker.jobs SET started_at = completed_at - make_interval(secs => id - %s + 1)", (ids[0],))
    row = conn.execute(
        "SELECT count, avg_duration_seconds, p50_duration_seconds, p95_duration_seconds FROM supaworker.job_stats"
    ).fetchone()
    assert row[0] == 4 and float(row[1]) == 2.5 and float(row[2]) == 2.5 and 3.8 <= float(row[3]) <= 4


def test_claim_query_uses_the_pending_index_with_a_large_finished_history(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO supaworker.jobs (type, status, completed_at) "
        "SELECT 't', 'completed', now() FROM generate_series(1, 50000)"
    )
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 't' FROM generate_series(1, 100)")
    conn.execute("ANALYZE supaworker.jobs")
    # The statement inside claim_jobs(), explained on its own.
    claim_select = (
        "SELECT c.id FROM supaworker.jobs c WHERE c.status = 'pending' AND c.run_at <= now() "
        "AND c.type = ANY (ARRAY['t']) ORDER BY c.priority, c.run_at, c.id LIMIT 10 FOR UPDATE SKIP LOCKED"
    )
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + claim_select))
    assert "jobs_claim_idx" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "claim_jobs" in Queries("supaworker").claim_jobs
