"""`GET /api/jobs?action=stats` costs what the dashboard costs: each status read through its own index and
at most `count_cap` rows of it, at most STATS_TYPES_LIMIT types in one answer, and one reading shared by the
requests of a second. Below the cap it says what the job_stats view says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from supaworker.api.stats import JobStatsReader
from supaworker.store import Store
from tests.support.api import AUTH, make_app

# Rows per status, each status over many types; finished ones ran 1-10 s.
ROWS_SQL = """
INSERT INTO supaworker.jobs (type, status, priority, attempts, worker_id, lease_expires_at, created_at, started_at,
                             completed_at)
SELECT 't' || (i %% %(types)s), s.status::supaworker.job_status, 0,
       CASE WHEN s.status IN ('waiting', 'pending') THEN 0 ELSE 1 END,
       CASE WHEN s.status = 'processing' THEN 'w' END,
       CASE WHEN s.status = 'processing' THEN now() + interval '30 s' END,
       now() - i * interval '1 s',
       CASE WHEN s.status NOT IN ('waiting', 'pending') THEN now() - i * interval '1 s' END,
       CASE WHEN s.status IN ('completed', 'failed', 'cancelled')
            THEN now() - i * interval '1 s' + (1 + i %% 10) * interval '1 s' END
  FROM (VALUES ('waiting'), ('pending'), ('processing'), ('completed'), ('failed'), ('cancelled')) s (status),
       generate_series(1, %(per_status)s) i
"""


def insert_jobs(conn: psycopg.Connection, per_status: int, types: int) -> None:
    conn.execute(ROWS_SQL, {"per_status": per_status, "types": types})
    conn.execute("ANALYZE supaworker.jobs")


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with TestClient(make_app(store, count_cap=100)) as client:
        yield client


def scans_of_jobs(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan] if plan.get("Relation Name") == "jobs" else []
    for child in plan.get("Plans", []):
        found += scans_of_jobs(child)
    return found


def test_stats_read_at_most_the_cap_per_status_through_each_status_index(
    store: Store, conn: psycopg.Connection
) -> None:
    insert_jobs(conn, per_status=3000, types=50)
    cap = 200
    [[plan]] = conn.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + store.q.job_stats_capped, {"cap": cap, "types": 10}
    ).fetchone()  # type: ignore[misc]
    scans = scans_of_jobs(plan["Plan"])
    assert len(scans) == 6, scans
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), scan["Node Type"]
        assert scan["Actual Rows"] <= cap, scan


def test_stats_answer_keeps_the_top_types_and_says_it_left_some_out(api: TestClient, conn: psycopg.Connection) -> None:
    insert_jobs(conn, per_status=3000, types=1978)
    conn.execute(  # the newest failures: among the counted jobs, the type with the most
        "INSERT INTO supaworker.jobs (type, status, attempts, completed_at)"
        " SELECT 'hot', 'failed', 1, now() + interval '1 h' FROM generate_series(1, 50)"
    )
    answer = api.get("/api/jobs?action=stats", headers=AUTH).json()
    types = {row["type"] for row in answer["stats"]}
    assert answer["truncated"] is True and answer["types_limit"] == 100 and len(types) == 100
    assert answer["stats"][0]["type"] == "hot"  # the types with the most counted jobs are the ones kept
    assert answer["count_cap"] == 100
    assert {"pending", "processing", "completed", "failed", "cancelled"} <= set(answer["capped_statuses"])
    for status in answer["capped_statuses"]:
        assert sum(row["count"] for row in answer["stats"] if row["status"] == status) <= 100
    assert set(answer["stats"][0]) == {
        "type", "status", "count", "avg_duration_seconds", "p50_duration_seconds", "p95_duration_seconds",
        "oldest_created_at", "newest_created_at",
    }  # fmt: skip
    assert answer["as_of"]


def test_stats_below_the_cap_are_the_job_stats_view(store: Store, conn: psycopg.Connection) -> None:
    insert_jobs(conn, per_status=40, types=7)
    view = store.job_stats()
    answer = JobStatsReader(store, count_cap=1000).answer()
    assert answer["truncated"] is False and answer["capped_statuses"] == []
    rows = answer["stats"]
    assert [(r["type"], r["status"], r["count"]) for r in rows] == [(r["type"], r["status"], r["count"]) for r in view]
    for mine, theirs in zip(rows, view, strict=True):
        for key in ("avg_duration_seconds", "p50_duration_seconds", "p95_duration_seconds"):
            assert mine[key] == (None if theirs[key] is None else float(theirs[key])), (key, mine, theirs)
        assert mine["oldest_created_at"] == theirs["oldest_created_at"].isoformat()
        assert mine["newest_created_at"] == theirs["newest_created_at"].isoformat()


def test_one_reading_serves_every_request_for_its_max_age(store: Store, conn: psycopg.Connection) -> None:
    reader = JobStatsReader(store, count_cap=1000, max_age_seconds=0.5)
    first = reader.answer()
    conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('new')")
    assert reader.answer() is first
    time.sleep(0.6)
    assert [(r["type"], r["count"]) for r in reader.answer()["stats"]] == [("new", 1)]
