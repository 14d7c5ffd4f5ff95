"""The REST API on a real database: every endpoint, bad input (nothing written), and keys for writes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from supaworker.store import Store
from tests.support.api import AUTH, KEY, claim, complete, count_jobs, fail, make_app, serve
from tests.support.waiting import wait_until


@pytest.fixture
def api(store: Store, db: str) -> Iterator[TestClient]:
    with TestClient(make_app(store, db)) as client:
        yield client


@pytest.fixture
def open_api(store: Store) -> Iterator[TestClient]:
    with TestClient(make_app(store, public_reads=True)) as client:
        yield client


def make_brief(conn: psycopg.Connection) -> str:
    """A brief with no jobs yet, for jobs created through the API to belong to."""
    row = conn.execute(
        "INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline)"
        " VALUES ('u1', 'q', 'video', ARRAY['analysis']) RETURNING id"
    ).fetchone()
    return str(row[0])


def create(api: TestClient, **fields: object) -> dict:
    response = api.post("/api/jobs", json={"type": "analysis", **fields}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["job"]


# -- writing needs a key -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer "}],
    ids=["missing", "wrong", "not-bearer", "empty"],
)
def test_create_job_without_a_valid_key_gets_401_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, headers: dict[str, str]
) -> None:
    response = api.post("/api/jobs", json={"type": "analysis"}, headers=headers)
    assert response.status_code == 401
    assert "key" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert count_jobs(conn) == 0


def test_every_write_endpoint_needs_the_key(api: TestClient, conn: psycopg.Connection) -> None:
    job = create(api)
    for path in (f"/api/jobs/{job['id']}/cancel", f"/api/jobs/{job['id']}/retry", "/api/briefs"):
        assert api.post(path, json={}).status_code == 401, path
    assert conn.execute("SELECT status::text FROM supaworker.jobs").fetchone() == ("pending",)


def test_writes_are_refused_with_a_hint_when_no_key_is_configured(store: Store, conn: psycopg.Connection) -> None:
    with TestClient(make_app(store, api_keys=None, public_reads=True)) as client:
        response = client.post("/api/jobs", json={"type": "analysis"}, headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    assert "SUPAWORKER_API_KEY" in response.json()["error"]
    assert count_jobs(conn) == 0


def test_service_role_key_is_accepted_for_writes(store: Store) -> None:
    with TestClient(make_app(store, api_keys=None, service_role_key="service-role")) as client:
        response = client.post("/api/jobs", json={"type": "analysis"}, headers={"Authorization": "Bearer service-role"})
    assert response.status_code == 201


def test_reads_need_the_key_unless_configured_public(api: TestClient, open_api: TestClient) -> None:
    for path in ("/api/jobs?action=stats", "/api/jobs/1", "/metrics", "/test-worker/panels"):
        assert api.get(path).status_code == 401, path
    assert api.get("/api/jobs?action=stats", headers=AUTH).status_code == 200
    assert open_api.get("/api/jobs?action=stats").status_code == 200


# -- creating jobs -------------------------------------------------------------------------------------
def test_create_job_returns_201_with_the_stored_row(api: TestClient, conn: psycopg.Connection) -> None:
    job = create(api, payload={"video_url": "v.mp4"}, priority=2, max_attempts=5, queue="media")
    assert (job["type"], job["status"], job["priority"], job["max_attempts"], job["queue"]) == (
        "analysis", "pending", 2, 5, "media",
    )  # fmt: skip
    assert job["payload"] == {"video_url": "v.mp4"}
    assert conn.execute("SELECT payload FROM supaworker.jobs WHERE id = %s", (job["id"],)).fetchone() == (
        {"video_url": "v.mp4"},
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "type"),
        ({"type": ""}, "type"),
        ({"type": "x" * 129}, "type"),
        ({"type": "t", "priority": "high"}, "priority"),
        ({"type": "t", "max_attempts": 0}, "max_attempts"),
        ({"type": "t", "timeout": -1}, "timeout"),
        ({"type": "t", "delay": -5}, "delay"),
        ({"type": "t", "brief_id": "not-a-uuid"}, "brief_id"),
        ({"type": "t", "run_at": "yesterday"}, "run_at"),
        ({"type": "t", "colour": "red"}, "colour"),
    ],
)
def test_create_job_with_a_bad_field_gets_422_naming_it_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, body: dict, field: str
) -> None:
    response = api.post("/api/jobs", json=body, headers=AUTH)
    assert response.status_code == 422
    problem = response.json()
    assert field in [d["field"] for d in problem["detail"]]
    assert field in problem["error"]
    assert count_jobs(conn) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"type": "t", "delay": 5, "run_at": "2030-01-01T00:00:00Z"}, "not both"),
        ({"type": "t", "run_at": "2030-01-01T00:00:00"}, "timezone-aware"),
        ({"type": "   "}, "non-empty"),
    ],
)
def test_create_job_rejected_by_the_client_checks_gets_422_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, body: dict, reason: str
) -> None:
    response = api.post("/api/jobs", json=body, headers=AUTH)
    assert response.status_code == 422
    assert reason in response.json()["error"]
    assert count_jobs(conn) == 0


def test_invalid_json_gets_422_and_writes_nothing(api: TestClient, conn: psycopg.Connection) -> None:
    response = api.post("/api/jobs", content=b'{"type": ', headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert count_jobs(conn) == 0


def test_body_over_the_limit_gets_413_and_writes_nothing(store: Store, conn: psycopg.Connection) -> None:
    with TestClient(make_app(store, max_body_bytes=1000)) as client:
        big = json.dumps({"type": "t", "payload": {"blob": "x" * 2000}}).encode()
        declared = client.post("/api/jobs", content=big, headers={**AUTH, "Content-Type": "application/json"})

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 100):
                yield big[i : i + 100]

        streamed = client.post("/api/jobs", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        small = client.post("/api/jobs", json={"type": "t"}, headers=AUTH)
    assert declared.status_code == 413 and "1000 bytes" in declared.json()["error"]
    assert streamed.status_code == 413
    assert small.status_code == 201
    assert count_jobs(conn) == 1


# -- the old system's reads ----------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["", "?action=", "?action=everything", "?action=PENDING"])
def test_jobs_without_a_known_action_gets_400_naming_the_valid_ones(api: TestClient, query: str) -> None:
    response = api.get(f"/api/jobs{query}", headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    for action in ("pending", "active", "stats", "by_brief", "list"):
        assert action in error


def test_by_brief_without_or_with_a_bad_brief_id_gets_400(api: TestClient) -> None:
    missing = api.get("/api/jobs?action=by_brief", headers=AUTH)
    assert missing.status_code == 400 and "brief_id" in missing.json()["error"]
    bad = api.get("/api/jobs?action=by_brief&brief_id=nope", headers=AUTH)
    assert bad.status_code == 400 and "UUID" in bad.json()["error"]


def test_pending_active_stats_and_by_brief_show_the_queue(api: TestClient, conn: psycopg.Connection) -> None:
    brief_id = make_brief(conn)
    first = create(api, brief_id=brief_id)
    create(api, type="render", brief_id=brief_id)
    create(api, type="render")
    assert claim(conn) == first["id"]

    pending = api.get("/api/jobs?action=pending", headers=AUTH).json()
    assert [j["type"] for j in pending["jobs"]] == ["render", "render"] and pending["count"] == 2
    active = api.get("/api/jobs?action=active", headers=AUTH).json()
    assert [j["id"] for j in active["jobs"]] == [first["id"]]
    assert active["jobs"][0]["worker_id"] == "worker-test-1"
    stats = api.get("/api/jobs?action=stats", headers=AUTH).json()["stats"]
    assert {(s["type"], s["status"], s["count"]) for s in stats} == {
        ("analysis", "processing", 1), ("render", "pending", 2),
    }  # fmt: skip
    by_brief = api.get(f"/api/jobs?action=by_brief&brief_id={brief_id}", headers=AUTH).json()
    assert [j["type"] for j in by_brief["jobs"]] == ["analysis", "render"]


def test_list_filters_by_status_and_type_and_pages_by_id(api: TestClient, conn: psycopg.Connection) -> None:
    ids = [create(api, type="render" if i % 2 else "analysis")["id"] for i in range(7)]
    claim(conn)  # the first analysis job is now processing
    page1 = api.get("/api/jobs?action=list&type=render&limit=2", headers=AUTH).json()
    assert [j["id"] for j in page1["jobs"]] == [ids[5], ids[3]]
    page2 = api.get(f"/api/jobs?action=list&type=render&limit=2&before_id={page1['next_before_id']}", headers=AUTH)
    assert [j["id"] for j in page2.json()["jobs"]] == [ids[1]]
    assert page2.json()["next_before_id"] is None
    processing = api.get("/api/jobs?action=list&status=processing", headers=AUTH).json()
    assert [j["id"] for j in processing["jobs"]] == [ids[0]]
    assert api.get("/api/jobs?action=list&status=done", headers=AUTH).status_code == 400
    assert api.get("/api/jobs?action=list&limit=0", headers=AUTH).status_code == 422


# -- one job ------------------------------------------------------------------------------------------
def test_get_job_and_404_for_an_unknown_one(api: TestClient) -> None:
    job = create(api)
    assert api.get(f"/api/jobs/{job['id']}", headers=AUTH).json()["job"]["id"] == job["id"]
    missing = api.get("/api/jobs/999999", headers=AUTH)
    assert missing.status_code == 404 and "999999" in missing.json()["error"]
    assert api.get("/api/jobs/abc", headers=AUTH).status_code == 404  # no job has that id


def test_cancel_then_retry_a_job(api: TestClient, conn: psycopg.Connection) -> None:
    job = create(api)
    cancelled = api.post(f"/api/jobs/{job['id']}/cancel", json={"reason": "not needed"}, headers=AUTH)
    assert cancelled.status_code == 200
    assert (cancelled.json()["job"]["status"], cancelled.json()["job"]["last_error"]) == ("cancelled", "not needed")
    again = api.post(f"/api/jobs/{job['id']}/cancel", headers=AUTH)
    assert again.status_code == 409 and "cancelled" in again.json()["error"]
    retried = api.post(f"/api/jobs/{job['id']}/retry", headers=AUTH)
    assert retried.status_code == 200 and retried.json()["job"]["status"] == "pending"


def test_retry_a_pending_job_is_409_and_unknown_is_404(api: TestClient, conn: psycopg.Connection) -> None:
    job = create(api)
    conflict = api.post(f"/api/jobs/{job['id']}/retry", headers=AUTH)
    assert conflict.status_code == 409 and "only failed or cancelled" in conflict.json()["error"]
    assert api.post("/api/jobs/424242/retry", headers=AUTH).status_code == 404
    assert api.post("/api/jobs/424242/cancel", headers=AUTH).status_code == 404
    assert conn.execute("SELECT status::text FROM supaworker.jobs").fetchone() == ("pending",)


def test_retry_a_failed_job_puts_it_back_in_the_queue(api: TestClient, conn: psycopg.Connection) -> None:
    job = create(api)
    fail(conn, claim(conn), "boom")
    response = api.post(f"/api/jobs/{job['id']}/retry", headers=AUTH)
    assert response.json()["job"]["status"] == "pending"


def test_cancel_with_a_bad_reason_gets_422_and_changes_nothing(api: TestClient, conn: psycopg.Connection) -> None:
    job = create(api)
    response = api.post(f"/api/jobs/{job['id']}/cancel", json={"reason": ""}, headers=AUTH)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "reason"
    assert conn.execute("SELECT status::text FROM supaworker.jobs").fetchone() == ("pending",)


# -- docs, metrics, events -----------------------------------------------------------------------------
def test_openapi_is_published_at_docs(open_api: TestClient) -> None:
    assert open_api.get("/docs").status_code == 200
    paths = open_api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/retry",
        "/api/briefs",
        "/api/briefs/{brief_id}",
        "/api/briefs/{brief_id}/retry",
        "/api/briefs/{brief_id}/cancel",
        "/api/events",
    ):
        assert path in paths


def test_metrics_report_jobs_by_status_finished_counts_and_durations(api: TestClient, conn: psycopg.Connection) -> None:
    create(api)
    create(api, type="render")
    wait_until(lambda: 'supaworker_jobs{status="pending",type="render"} 1.0' in api.get("/metrics", headers=AUTH).text,
               "the pending render job in the metrics")  # fmt: skip
    complete(conn, claim(conn))
    text = wait_until(
        lambda: (
            (t := api.get("/metrics", headers=AUTH).text)
            and 'supaworker_jobs_finished_total{status="completed",type="analysis"} 1.0' in t
            and t
        ),
        "the completed job in the metrics",
    )
    assert 'supaworker_job_duration_seconds_count{type="analysis"} 1.0' in text
    assert 'supaworker_job_queue_latency_seconds_count{type="analysis"} 1.0' in text
    assert 'supaworker_jobs{status="completed",type="analysis"} 1.0' in text
    assert "supaworker_workers 0.0" in text
    assert "supaworker_throughput_jobs_per_second" in text


def test_metrics_count_running_workers_by_their_connections(api: TestClient, db: str) -> None:
    with psycopg.connect(db, application_name="supaworker:worker-77-1"):
        wait_until(lambda: "supaworker_workers 1.0" in api.get("/metrics", headers=AUTH).text, "the worker")


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            yield name, json.loads(line[6:])
            name = None


def test_events_stream_job_changes(store: Store, db: str, conn: psycopg.Connection) -> None:
    app = make_app(store, db)
    with (
        serve(app) as base,
        httpx.Client(base_url=base, headers=AUTH, timeout=30) as http,
        http.stream("GET", "/api/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = read_events(stream)
        assert next(events)[0] == "hello"
        job = http.post("/api/jobs", json={"type": "analysis", "brief_id": make_brief(conn)}).json()["job"]
        name, data = next(events)
        assert name == "change" and data["totals"]["pending"] == 1 and data["created"] == 1
        complete(conn, claim(conn))
        finished = next(d for n, d in events if any(j["status"] == "completed" for j in d["jobs"]))
        assert finished["jobs"][-1] == {
            "id": job["id"], "type": "analysis", "status": "completed", "brief_id": job["brief_id"],
        }  # fmt: skip
        assert finished["briefs"] == [job["brief_id"]]
        assert finished["totals"]["completed"] == 1


def test_events_need_the_key_when_reads_are_closed(api: TestClient) -> None:
    assert api.get("/api/events").status_code == 401


# -- the dashboard, server side ------------------------------------------------------------------------
def test_dashboard_renders_job_data_as_text(open_api: TestClient, conn: psycopg.Connection) -> None:
    hostile = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"
    job = create(open_api, type="<b>bold</b>", payload={"note": hostile})
    fail(conn, claim(conn), hostile)
    wait_until(lambda: str(job["id"]) in open_api.get("/test-worker/panels").text, "the job on the dashboard")
    for page in (open_api.get("/test-worker").text, json.dumps(open_api.get("/test-worker/panels").json())):
        assert "<script>window" not in page and "<img src=x" not in page and "<b>bold" not in page
    page = open_api.get("/").text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_dashboard_shell_asks_for_the_key_when_reads_are_closed(api: TestClient) -> None:
    page = api.get("/test-worker")
    assert page.status_code == 200
    assert "Reading needs the API key" in page.text
    assert api.get("/test-worker/panels", headers=AUTH).status_code == 200


def test_dashboard_counts_are_capped_and_marked(store: Store, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 'bulk' FROM generate_series(1, 150)")
    with TestClient(make_app(store, public_reads=True, count_cap=100)) as client:
        client.app.state.feed.poke()
        summary = wait_until(
            lambda: (p := client.get("/test-worker/panels").json()["panels"]["summary"]) and "100+" in p and p,
            "the capped count on the summary panel",
        )
        assert 'data-status="pending"><div class="n">100+</div>' in summary
        assert 'data-status="completed"><div class="n">0</div>' in summary


def test_create_job_takes_the_old_systems_metadata_as_the_payload(api: TestClient, conn: psycopg.Connection) -> None:
    brief_id = make_brief(conn)
    response = api.post(
        "/api/jobs", json={"brief_id": brief_id, "type": "analysis", "metadata": {"video_url": "v.mp4"}}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    job = response.json()["job"]
    assert (job["payload"], job["brief_id"]) == ({"video_url": "v.mp4"}, brief_id)
    assert conn.execute("SELECT payload FROM supaworker.jobs WHERE id = %s", (job["id"],)).fetchone() == (
        {"video_url": "v.mp4"},
    )


@pytest.mark.parametrize(
    "body",
    [
        {"type": "t", "metadata": {"a": 1}, "payload": {"b": 2}},
        {"type": "t", "metadata": {"deep": json.loads("[" * 64 + "1" + "]" * 64)}},
    ],
    ids=["both", "too-deep"],
)
def test_create_job_with_bad_metadata_gets_422_naming_it_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, body: dict
) -> None:
    response = api.post("/api/jobs", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert "metadata" in response.json()["error"]
    assert count_jobs(conn) == 0
