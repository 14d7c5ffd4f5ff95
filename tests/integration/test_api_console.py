"""The console's API writes on a real database: bulk retry / cancel / delete with a preview, pauses and limits,
and periodic schedules switched on and off (the scheduler honours the switch, a worker's start keeps it).
Every write needs the key; bad bodies get 422 naming the field and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from supaworker.maintenance import PeriodicScheduler
from supaworker.periodic import PeriodicRegistry, sync_periodic_jobs, validate_periodic
from supaworker.store import Store
from tests.support.api import AUTH, make_app


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with TestClient(make_app(store)) as client:
        yield client


def statuses(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status::text, count(*) FROM supaworker.jobs GROUP BY 1").fetchall())


def add_failed(conn: psycopg.Connection, n: int, type: str = "render") -> None:
    conn.execute(
        "INSERT INTO supaworker.jobs (type, status, attempts, completed_at, last_error)"
        " SELECT %s, 'failed', 3, now(), 'boom' FROM generate_series(1, %s)",
        (type, n),
    )


def test_bulk_retry_by_filter_previews_then_retries_exactly_those(api: TestClient, conn: psycopg.Connection) -> None:
    add_failed(conn, 100)
    add_failed(conn, 7, type="other")
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 'render' FROM generate_series(1, 5)")
    body = {"action": "retry", "filter": {"status": "failed", "type": "render"}}
    preview = api.post("/api/jobs/bulk/preview", json=body, headers=AUTH)
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == 100 and preview.json()["complete"] is True
    assert statuses(conn) == {"failed": 107, "pending": 5}
    run = api.post("/api/jobs/bulk", json={**body, "through_id": preview.json()["through_id"]}, headers=AUTH)
    assert run.status_code == 200, run.text
    assert run.json()["count"] == 100
    assert statuses(conn) == {"failed": 7, "pending": 105}


def test_bulk_by_ids_cancels_only_unfinished_jobs(api: TestClient, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 't' FROM generate_series(1, 3)")
    add_failed(conn, 1)
    body = {"action": "cancel", "ids": [1, 2, 4], "reason": "not needed"}
    assert api.post("/api/jobs/bulk/preview", json=body, headers=AUTH).json()["count"] == 2
    assert api.post("/api/jobs/bulk", json=body, headers=AUTH).json()["count"] == 2
    rows = conn.execute("SELECT id, status::text, last_error FROM supaworker.jobs ORDER BY id").fetchall()
    assert rows == [(1, "cancelled", "not needed"), (2, "cancelled", "not needed"), (3, "pending", None),
                    (4, "failed", "boom")]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "retry"}, "give either ids or filter"),
        ({"action": "retry", "ids": [1], "filter": {}}, "give either ids or filter"),
        ({"action": "explode", "ids": [1]}, "action"),
        ({"action": "retry", "ids": []}, "ids"),
        ({"action": "retry", "ids": ["1"]}, "ids.0"),
        ({"action": "retry", "ids": list(range(1, 502))}, "ids"),
        ({"action": "retry", "filter": {"status": "done"}}, "filter.status"),
        ({"action": "retry", "filter": {"type": "a\u0000"}}, "filter.type"),
        ({"action": "retry", "filter": {"created_after": "yesterday"}}, "filter.created_after"),
        ({"action": "retry", "filter": {"colour": "red"}}, "filter.colour"),
        ({"action": "cancel", "ids": [1], "reason": ""}, "reason"),
    ],
)
def test_bad_bulk_requests_get_422_naming_the_field_and_change_nothing(
    api: TestClient, conn: psycopg.Connection, body: dict, field: str
) -> None:
    add_failed(conn, 2)
    for path in ("/api/jobs/bulk/preview", "/api/jobs/bulk"):
        response = api.post(path, json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        assert field in response.text
    assert statuses(conn) == {"failed": 2}


def test_console_writes_need_the_key(api: TestClient, conn: psycopg.Connection) -> None:
    add_failed(conn, 1)
    for path, body in [
        ("/api/jobs/bulk", {"action": "retry", "ids": [1]}),
        ("/api/jobs/bulk/preview", {"action": "retry", "ids": [1]}),
        ("/api/controls/pause", {"type": "render"}),
        ("/api/controls/limits", {"type": "render", "max_running": 1}),
        ("/api/periodic/enabled", {"name": "x", "enabled": False}),
    ]:
        assert api.post(path, json=body).status_code == 401, path
    assert statuses(conn) == {"failed": 1}
    assert conn.execute("SELECT count(*) FROM supaworker.job_controls").fetchone()[0] == 0


def test_pause_resume_and_limits_through_the_api(api: TestClient, conn: psycopg.Connection) -> None:
    assert api.post("/api/controls/pause", json={"queue": "images"}, headers=AUTH).status_code == 200
    answer = api.post(
        "/api/controls/limits", json={"type": "render", "max_running": 2, "rate_limit": 10, "rate_period": 60},
        headers=AUTH,
    ).json()  # fmt: skip
    by_name = {c["name"]: c for c in answer["controls"]}
    assert by_name["images"]["paused"] is True and by_name["images"]["scope"] == "queue"
    assert (by_name["render"]["max_running"], by_name["render"]["rate_limit"]) == (2, 10)
    assert by_name["render"]["rate_period_seconds"] == 60
    assert api.post("/api/controls/resume", json={"queue": "images"}, headers=AUTH).status_code == 200
    assert api.post("/api/controls/limits", json={"type": "render"}, headers=AUTH).status_code == 200
    assert api.get("/api/controls", headers=AUTH).json() == {"controls": []}
    for body, field in [
        ({"type": "a", "queue": "b"}, "give either type or queue"),
        ({}, "give either type or queue"),
        ({"type": ""}, "type"),
    ]:
        response = api.post("/api/controls/pause", json=body, headers=AUTH)
        assert response.status_code == 422 and field in response.text
    response = api.post("/api/controls/limits", json={"type": "r", "max_running": 0}, headers=AUTH)
    assert response.status_code == 422 and "max_running" in response.text
    response = api.post("/api/controls/limits", json={"type": "r", "rate_limit": 1, "rate_period": 0}, headers=AUTH)
    assert response.status_code == 422 and "rate_period" in response.text
    assert conn.execute("SELECT count(*) FROM supaworker.job_controls").fetchone()[0] == 0


def test_a_disabled_schedule_enqueues_nothing_and_a_worker_start_keeps_it_off(
    api: TestClient, store: Store, conn: psycopg.Connection
) -> None:
    registry = PeriodicRegistry()
    registry.add(validate_periodic("* * * * * *", type="report"))
    sync_periodic_jobs(store, registry)
    assert api.post("/api/periodic/enabled", json={"name": "nope", "enabled": False}, headers=AUTH).status_code == 404
    off = api.post("/api/periodic/enabled", json={"name": "report", "enabled": False}, headers=AUTH)
    assert off.status_code == 200 and off.json()["periodic"]["enabled"] is False
    sync_periodic_jobs(store, registry)  # a worker starting with the schedule in its code
    conn.execute("UPDATE supaworker.periodic_jobs SET last_tick_at = now() - interval '30 seconds'")
    assert PeriodicScheduler(store).run_once()["enqueued"] == 0
    assert api.get("/api/periodic", headers=AUTH).json()["periodic"][0]["enabled"] is False
    # Switched on again: ticks count from now, the 30 s it was off are not caught up.
    assert api.post("/api/periodic/enabled", json={"name": "report", "enabled": True}, headers=AUTH).status_code == 200
    assert PeriodicScheduler(store).run_once()["enqueued"] <= 1
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0] <= 1
