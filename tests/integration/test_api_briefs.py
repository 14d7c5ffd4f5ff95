"""The brief endpoints of the REST API on a real database: create (one job or a whole pipeline), show with
each step's status, list, cancel, retry, a brief's jobs; bad input answers 422 and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from supaworker.pipelines import PIPELINES
from supaworker.sql import Queries
from supaworker.store import Store
from tests.support.api import AUTH, claim, complete, fail, make_app

VIDEO = {
    "user_id": "user-1",
    "title": "My Video Project",
    "description": "Create a video about AI",
    "query": "Generate a video about artificial intelligence",
    "media_type": "video",
    "use_pipeline": True,
}


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with TestClient(make_app(store)) as client:
        yield client


def create_brief(api: TestClient, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/briefs", json={**VIDEO, **fields}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def rows(conn: psycopg.Connection) -> tuple[int, int]:
    """How many briefs and jobs the database holds."""
    briefs = conn.execute("SELECT count(*) FROM supaworker.briefs").fetchone()[0]
    jobs = conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0]
    return briefs, jobs


def statuses(brief: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["type"], s["status"]) for s in brief["step_statuses"]]


# -- creating ------------------------------------------------------------------------------------------
def test_create_brief_with_pipeline_returns_201_with_the_brief_and_its_chained_jobs(
    api: TestClient, conn: psycopg.Connection
) -> None:
    created = create_brief(api)
    brief, jobs = created["brief"], created["jobs"]
    assert (brief["user_id"], brief["title"], brief["media_type"], brief["status"]) == (
        "user-1", "My Video Project", "video", "pending",
    )  # fmt: skip
    assert brief["pipeline"] == list(PIPELINES["video"])
    assert [j["type"] for j in jobs] == list(PIPELINES["video"])
    assert [j["status"] for j in jobs] == ["pending", "waiting", "waiting", "waiting"]
    assert [j["depends_on"] for j in jobs] == [[], *([j["id"]] for j in jobs[:-1])]
    assert created["job"] == jobs[0]
    assert all(j["payload"]["query"] == VIDEO["query"] and j["brief_id"] == brief["id"] for j in jobs)
    stored = conn.execute(
        "SELECT type FROM supaworker.jobs WHERE brief_id = %s ORDER BY id", (uuid.UUID(brief["id"]),)
    ).fetchall()
    assert [r[0] for r in stored] == list(PIPELINES["video"])
    assert rows(conn) == (1, 4)


def test_create_brief_without_pipeline_runs_one_analysis_job(api: TestClient, conn: psycopg.Connection) -> None:
    created = create_brief(api, media_type="text", use_pipeline=False, title="", description="")
    assert [j["type"] for j in created["jobs"]] == ["analysis"]
    assert created["brief"]["steps_total"] == 1 and created["job"]["status"] == "pending"
    assert rows(conn) == (1, 1)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"user_id": None}, "user_id", "valid string"),
        ({"user_id": "   "}, "user_id", "blank"),
        ({"user_id": "u" * 256}, "user_id", "at most 255"),
        ({"query": ""}, "query", "at least 1"),
        ({"query": " \n "}, "query", "blank"),
        ({"query": "q" * 20_001}, "query", "at most 20000"),
        ({"title": 7}, "title", "valid string"),
        ({"title": "t" * 501}, "title", "at most 500"),
        ({"description": "d" * 20_001}, "description", "at most 20000"),
        ({"media_type": "podcast"}, "media_type", "one of video, image, audio, text"),
        ({"media_type": "VIDEO"}, "media_type", "one of video"),
        ({"use_pipeline": "yes"}, "use_pipeline", "valid boolean"),
        ({"use_pipeline": 1}, "use_pipeline", "valid boolean"),
        ({"priority": 5}, "priority", "not permitted"),
    ],
)
def test_create_brief_with_a_bad_field_gets_422_naming_field_and_reason_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, change: dict[str, Any], field: str, reason: str
) -> None:
    response = api.post("/api/briefs", json={**VIDEO, **change}, headers=AUTH)
    assert response.status_code == 422, response.text
    problem = response.json()
    named = {d["field"]: d["reason"] for d in problem["detail"]}
    assert field in named and reason in named[field]
    assert f"{field}: " in problem["error"] and reason in problem["error"]
    assert rows(conn) == (0, 0)


@pytest.mark.parametrize("missing", ["user_id", "query", "media_type"])
def test_create_brief_without_a_required_field_gets_422_naming_it(
    api: TestClient, conn: psycopg.Connection, missing: str
) -> None:
    body = {k: v for k, v in VIDEO.items() if k != missing}
    response = api.post("/api/briefs", json=body, headers=AUTH)
    assert response.status_code == 422
    assert {"field": missing, "in": "body", "reason": "Field required"} in response.json()["detail"]
    assert rows(conn) == (0, 0)


@pytest.mark.parametrize("content", [b'{"user_id": ', b"[1, 2]", b'"a brief"', b""])
def test_create_brief_with_a_body_that_is_not_an_object_gets_422_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, content: bytes
) -> None:
    response = api.post("/api/briefs", content=content, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("invalid request")
    assert rows(conn) == (0, 0)


# -- keys ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["missing", "wrong"])
def test_brief_writes_need_the_key_and_change_nothing_without_it(
    api: TestClient, conn: psycopg.Connection, headers: dict[str, str]
) -> None:
    assert api.post("/api/briefs", json=VIDEO, headers=headers).status_code == 401
    assert rows(conn) == (0, 0)
    brief = create_brief(api)["brief"]
    for action in ("cancel", "retry"):
        response = api.post(f"/api/briefs/{brief['id']}/{action}", headers=headers)
        assert response.status_code == 401, action
        assert "key" in response.json()["error"]
    assert conn.execute("SELECT array_agg(status::text ORDER BY id) FROM supaworker.jobs").fetchone()[0] == [
        "pending", "waiting", "waiting", "waiting",
    ]  # fmt: skip


def test_brief_reads_need_the_key_unless_configured_public(store: Store, api: TestClient) -> None:
    brief = create_brief(api)["brief"]
    paths = ("/api/briefs", f"/api/briefs/{brief['id']}", f"/api/jobs?action=by_brief&brief_id={brief['id']}")
    for path in paths:
        assert api.get(path).status_code == 401, path
        assert api.get(path, headers=AUTH).status_code == 200, path
    with TestClient(make_app(store, public_reads=True)) as open_api:
        for path in paths:
            assert open_api.get(path).status_code == 200, path
        assert open_api.post("/api/briefs", json=VIDEO).status_code == 401


# -- reading -------------------------------------------------------------------------------------------
def test_get_brief_shows_each_pipeline_steps_status_as_work_moves(api: TestClient, conn: psycopg.Connection) -> None:
    brief_id = create_brief(api, media_type="image")["brief"]["id"]
    first = claim(conn)
    shown = api.get(f"/api/briefs/{brief_id}", headers=AUTH).json()["brief"]
    assert shown["status"] == "processing"
    assert statuses(shown) == [
        ("analysis", "processing"), ("asset_prep", "waiting"), ("image_processing", "waiting"), ("render", "waiting"),
    ]  # fmt: skip
    assert [s["step"] for s in shown["step_statuses"]] == [1, 2, 3, 4]
    assert shown["step_statuses"][0]["job_id"] == first and shown["step_statuses"][0]["attempts"] == 1
    complete(conn, first)
    shown = api.get(f"/api/briefs/{brief_id}", headers=AUTH).json()["brief"]
    assert statuses(shown)[:2] == [("analysis", "completed"), ("asset_prep", "pending")]
    assert (shown["steps_completed"], shown["steps_total"]) == (1, 4)
    for _ in range(3):
        complete(conn, claim(conn))
    done = api.get(f"/api/briefs/{brief_id}", headers=AUTH).json()["brief"]
    assert done["status"] == "completed" and {s for _, s in statuses(done)} == {"completed"}
    assert done["completed_at"] is not None


@pytest.mark.parametrize("brief_id", [str(uuid.UUID(int=1)), "not-a-uuid"])
def test_unknown_brief_is_404_for_every_endpoint(api: TestClient, brief_id: str) -> None:
    for method, path in (
        ("GET", f"/api/briefs/{brief_id}"),
        ("POST", f"/api/briefs/{brief_id}/retry"),
        ("POST", f"/api/briefs/{brief_id}/cancel"),
    ):
        response = api.request(method, path, headers=AUTH)
        assert response.status_code == 404, path
        assert brief_id in response.json()["error"]


def test_list_briefs_newest_first_filtered_by_user_and_status_and_paged(
    api: TestClient, conn: psycopg.Connection
) -> None:
    ids = [create_brief(api, user_id="ben", title="b0")["brief"]["id"]]
    # The first brief's analysis, claimed while it is the only job (a claim shares among users at random).
    complete(conn, claim(conn))
    ids += [create_brief(api, user_id="ana" if i % 2 else "ben", title=f"b{i}")["brief"]["id"] for i in range(1, 5)]
    everything = api.get("/api/briefs", headers=AUTH).json()
    assert [b["id"] for b in everything["briefs"]] == ids[::-1] and everything["count"] == 5
    assert everything["next_before"] is None
    assert "steps" in everything["briefs"][0] and everything["briefs"][0]["steps"] == []
    bens = api.get("/api/briefs?user_id=ben&limit=2", headers=AUTH).json()
    assert [b["id"] for b in bens["briefs"]] == [ids[4], ids[2]]
    rest = api.get("/api/briefs", params={"user_id": "ben", "limit": 2, "before": bens["next_before"]}, headers=AUTH)
    assert [b["id"] for b in rest.json()["briefs"]] == [ids[0]]
    pasted = api.get(f"/api/briefs?user_id=ben&limit=2&before={bens['next_before']}", headers=AUTH)  # unencoded
    assert [b["id"] for b in pasted.json()["briefs"]] == [ids[0]], pasted.text
    processing = api.get("/api/briefs?status=processing", headers=AUTH).json()["briefs"]
    assert [(b["id"], b["steps_completed"]) for b in processing] == [(ids[0], 1)]


@pytest.mark.parametrize(
    ("query", "status", "said"),
    [("status=done", 400, "status must be one of"), ("limit=0", 422, "limit"), ("limit=101", 422, "limit"),
     ("before=yesterday", 422, "before"), ("user_id=", 422, "user_id")],
)  # fmt: skip
def test_list_briefs_with_a_bad_query_says_what_is_wrong(api: TestClient, query: str, status: int, said: str) -> None:
    response = api.get(f"/api/briefs?{query}", headers=AUTH)
    assert response.status_code == status
    assert said in response.json()["error"]


def test_jobs_by_brief_lists_its_steps_in_order_and_404s_an_unknown_brief(api: TestClient) -> None:
    created = create_brief(api, media_type="audio")
    brief_id = created["brief"]["id"]
    listed = api.get(f"/api/jobs?action=by_brief&brief_id={brief_id}", headers=AUTH).json()
    assert (listed["brief_id"], listed["count"]) == (brief_id, 3)
    assert [(j["id"], j["type"], j["depends_on"]) for j in listed["jobs"]] == [
        (j["id"], j["type"], j["depends_on"]) for j in created["jobs"]
    ]
    unknown = api.get(f"/api/jobs?action=by_brief&brief_id={uuid.UUID(int=7)}", headers=AUTH)
    assert unknown.status_code == 404 and str(uuid.UUID(int=7)) in unknown.json()["error"]


# -- cancelling and retrying ---------------------------------------------------------------------------
def test_cancel_brief_cancels_its_unfinished_steps_then_409_when_nothing_is_left(
    api: TestClient, conn: psycopg.Connection
) -> None:
    brief_id = create_brief(api, media_type="text")["brief"]["id"]
    complete(conn, claim(conn))
    response = api.post(f"/api/briefs/{brief_id}/cancel", json={"reason": "changed my mind"}, headers=AUTH)
    assert response.status_code == 200
    brief = response.json()["brief"]
    assert brief["status"] == "cancelled" and brief["error"] == "changed my mind"
    assert [s for _, s in statuses(brief)] == ["completed", "cancelled", "cancelled"]
    again = api.post(f"/api/briefs/{brief_id}/cancel", headers=AUTH)
    assert again.status_code == 409 and "no unfinished step" in again.json()["error"]


def test_cancel_brief_with_a_bad_reason_gets_422_and_changes_nothing(api: TestClient, conn: psycopg.Connection) -> None:
    brief_id = create_brief(api)["brief"]["id"]
    for body in ({"reason": ""}, {"reason": "r" * 1001}, {"why": "x"}):
        response = api.post(f"/api/briefs/{brief_id}/cancel", json=body, headers=AUTH)
        assert response.status_code == 422, body
    assert conn.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'cancelled'").fetchone()[0] == 0


def test_retry_a_failed_brief_resumes_from_the_failed_step(api: TestClient, conn: psycopg.Connection) -> None:
    brief_id = create_brief(api, media_type="image")["brief"]["id"]
    complete(conn, claim(conn))
    failed_job = claim(conn)
    fail(conn, failed_job, "out of disk")
    shown = api.get(f"/api/briefs/{brief_id}", headers=AUTH).json()["brief"]
    assert (shown["status"], shown["failed_step"], shown["failed_job_id"]) == ("failed", "asset_prep", failed_job)
    assert shown["step_statuses"][1]["error"] == "out of disk"
    assert [s for _, s in statuses(shown)] == ["completed", "failed", "cancelled", "cancelled"]

    response = api.post(f"/api/briefs/{brief_id}/retry", headers=AUTH)
    assert response.status_code == 200
    retried = response.json()["brief"]
    assert retried["status"] == "processing"
    assert [s for _, s in statuses(retried)] == ["completed", "pending", "waiting", "waiting"]


def test_retry_a_brief_that_has_not_failed_is_409_and_changes_nothing(
    api: TestClient, conn: psycopg.Connection
) -> None:
    brief_id = create_brief(api)["brief"]["id"]
    response = api.post(f"/api/briefs/{brief_id}/retry", headers=AUTH)
    assert response.status_code == 409 and "only failed or cancelled" in response.json()["error"]
    assert conn.execute("SELECT array_agg(status::text ORDER BY id) FROM supaworker.jobs").fetchone()[0] == [
        "pending", "waiting", "waiting", "waiting",
    ]  # fmt: skip


def test_recent_briefs_read_only_the_newest_rows_through_their_index(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline)"
        " SELECT 'u' || i % 50, 'q', 'video', ARRAY['analysis'] FROM generate_series(1, 5000) i"
    )
    conn.execute("ANALYZE supaworker.briefs")
    params = {"user_id": None, "status": None, "before": None, "limit": 8}
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + Queries("supaworker").list_briefs, params))
    assert "briefs_created_idx" in plan, plan
    assert "Seq Scan on briefs" not in plan, plan


def test_dashboard_briefs_panel_draws_each_step_with_its_status_and_escapes_the_title(
    api: TestClient, conn: psycopg.Connection
) -> None:
    brief_id = create_brief(api, media_type="audio", title="<script>alert(1)</script>")["brief"]["id"]
    complete(conn, claim(conn))
    fail(conn, claim(conn), "no <b>assets</b>")
    panel = api.get("/test-worker/panels", headers=AUTH).json()["panels"]["briefs"]
    assert f'id="brief-{brief_id}" data-brief-id="{brief_id}" data-status="failed"' in panel
    drawn = [(s, st) for s, st in zip(PIPELINES["audio"], ("completed", "failed", "cancelled"), strict=True)]
    for step, status in drawn:
        assert f'data-step="{step}" data-status="{status}"' in panel
    assert 'data-action="retry" data-id="' in panel and "retry step" in panel and "retry brief" in panel
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel and "<script>" not in panel
    assert "<bdi>asset_prep</bdi> failed: <bdi>no &lt;b&gt;assets&lt;/b&gt;</bdi>" in panel


def test_a_page_that_ends_at_a_time_beyond_pythons_range_in_utc_still_answers(
    db: str, conn: psycopg.Connection
) -> None:
    # Read in a session west of UTC, 10000-01-01 02:00 UTC is 9999-12-31 in Python: its UTC form for
    # `next_before` overflowed (a 500).
    conn.execute(f"ALTER DATABASE \"{conn.info.dbname}\" SET timezone = 'America/New_York'")
    conn.execute(
        "INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline, created_at)"
        " VALUES ('u', 'q', 'video', '{analysis}', '10000-01-01 02:00+00'), ('u', 'q', 'video', '{analysis}', now())"
    )
    with (
        ConnectionPool(db, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool,
        TestClient(make_app(Store(pool, "supaworker"))) as client,
    ):
        first = client.get("/api/briefs?limit=1", headers=AUTH)
        assert first.status_code == 200, first.text
        assert first.json()["next_before"].startswith("9999-12-31T21:00:00")
