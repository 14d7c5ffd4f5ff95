"""Every way in rejects what PostgreSQL cannot store or supaworker cannot read back, and writes nothing; every
reader renders a row that plain SQL stored oddly instead of failing the page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

import supaworker
from supaworker.errors import InvalidBrief, InvalidJob
from supaworker.feed.change_feed import ChangeFeed
from supaworker.loaders import OutOfRangeTime
from supaworker.rules import MAX_PAYLOAD_DEPTH
from supaworker.store import Store
from tests.conftest import run_cli
from tests.support.api import AUTH, make_app

NUL = "\u0000"
TOO_BIG_ID = 2**63


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with TestClient(make_app(store, public_reads=True)) as client:
        yield client


def row_counts(conn: psycopg.Connection) -> tuple[int, int]:
    """(jobs, briefs): compared before and after each rejected request."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM supaworker.jobs), (SELECT count(*) FROM supaworker.briefs)"
    ).fetchone()


def nested(depth: int) -> object:
    value: object = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def make_job(conn: psycopg.Connection) -> int:
    return conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('t') RETURNING id").fetchone()[0]


# -- the REST API: 422 naming the field, nothing written ------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "t", "delay": 1e12}, "delay"),
        ({"type": "t", "delay": 1e308}, "delay"),
        ({"type": "t", "delay": True}, "delay"),
        ({"type": "t", "delay": "5"}, "delay"),
        ({"type": "t", "timeout": 1e12}, "timeout"),
        ({"type": "t", "timeout": True}, "timeout"),
        ({"type": "t", "priority": True}, "priority"),
        ({"type": "t", "max_attempts": 2.5}, "max_attempts"),
        ({"type": "t", "run_at": "9999-06-01T00:00:00Z"}, "run_at"),
        ({"type": "t", "run_at": "1900-01-01T00:00:00Z"}, "run_at"),
        ({"type": "t", "payload": nested(MAX_PAYLOAD_DEPTH + 1)}, "payload"),
        ({"type": "t", "payload": nested(255)}, "payload"),
        ({"type": f"t{NUL}"}, "type"),
        ({"type": "t", "queue": f"q{NUL}"}, "queue"),
        ({"type": "t", "payload": {"note": f"a{NUL}b"}}, "payload"),
        ({"type": "t", "payload": {f"k{NUL}": 1}}, "payload"),
        ({"type": "t", "payload": [[f"{NUL}"]]}, "payload"),
        ({"type": "t", "brief_id": "00000000-0000-4000-8000-000000000001"}, "brief_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_create_job_out_of_bounds_gets_422_naming_the_field_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, body: dict, field: str
) -> None:
    before = row_counts(conn)
    response = api.post("/api/jobs", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert field in [d["field"] for d in problem["detail"]]
    assert field in problem["error"]
    assert row_counts(conn) == before == (0, 0)


def test_just_inside_the_limits_is_accepted(api: TestClient, conn: psycopg.Connection) -> None:
    ok = [
        {"type": "t", "payload": nested(MAX_PAYLOAD_DEPTH), "delay": 100 * 365 * 86_400},
        {"type": "t", "run_at": "9998-12-31T23:59:59Z", "timeout": 30 * 86_400},
        {"type": "t", "payload": {"emoji": "\U0001f600", "accents": "é"}},
    ]
    for body in ok:
        assert api.post("/api/jobs", json=body, headers=AUTH).status_code == 201, body
    listing = api.get("/api/jobs?action=list", headers=AUTH)
    assert listing.status_code == 200 and listing.json()["count"] == 3


@pytest.mark.parametrize(
    "raw",
    [b'{"type": "t", "payload": {"x": "\\ud800"}}', b'{"type": "t", "payload": {"\\udfff": 1}}'],
    ids=["value", "key"],
)
def test_lone_surrogates_get_422_and_write_nothing(api: TestClient, conn: psycopg.Connection, raw: bytes) -> None:
    response = api.post("/api/jobs", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "payload"
    assert row_counts(conn) == (0, 0)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "\xff\xfe"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type": "t", "payload": {"n": ' + b"9" * 5001 + b"}}",
    ],
    ids=["invalid-utf8", "nested-beyond-the-parser", "integer-beyond-the-parser"],
)
def test_a_body_that_is_not_json_gets_422_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, raw: bytes
) -> None:
    response = api.post("/api/jobs", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["in"] == "body"
    assert row_counts(conn) == (0, 0)


@pytest.mark.parametrize(
    "change",
    [{"query": f"a{NUL}"}, {"user_id": f"u{NUL}"}, {"title": f"{NUL}"}, {"description": "\ud800"}],
    ids=["query", "user_id", "title", "description"],
)
def test_create_brief_with_an_unstorable_string_gets_422_and_writes_nothing(
    api: TestClient, conn: psycopg.Connection, change: dict
) -> None:
    body = {"user_id": "u1", "query": "make a video", "media_type": "video", **change}
    (field,) = change
    # As JSON text: a lone surrogate has no UTF-8 form, so only its escape can be sent.
    raw = json.dumps(body).encode()
    response = api.post("/api/briefs", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["detail"]]
    assert row_counts(conn) == (0, 0)


def test_cancel_with_a_nul_in_the_reason_gets_422_and_changes_nothing(
    api: TestClient, conn: psycopg.Connection
) -> None:
    job_id = make_job(conn)
    response = api.post(f"/api/jobs/{job_id}/cancel", json={"reason": f"x{NUL}"}, headers=AUTH)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "reason"
    assert conn.execute("SELECT status::text FROM supaworker.jobs").fetchone() == ("pending",)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("get", "/api/jobs?action=list&type=a%00", "type"),
        ("get", "/api/briefs?user_id=u%00", "user_id"),
        ("get", f"/api/jobs?action=list&before_id={TOO_BIG_ID}", "before_id"),
        ("get", f"/api/jobs/{TOO_BIG_ID}", "job_id"),
        ("post", f"/api/jobs/{TOO_BIG_ID}/retry", "job_id"),
        ("post", f"/api/jobs/{TOO_BIG_ID}/cancel", "job_id"),
        ("get", "/test-worker/panels?type=%00", "type"),
    ],
)
def test_out_of_bounds_parameters_get_422_naming_them(
    api: TestClient, conn: psycopg.Connection, method: str, path: str, field: str
) -> None:
    make_job(conn)
    before = row_counts(conn)
    response = getattr(api, method)(path, headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["detail"]]
    assert row_counts(conn) == before
    assert conn.execute("SELECT status::text FROM supaworker.jobs").fetchone() == ("pending",)


# -- the Python API: InvalidJob, nothing written ---------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": f"t{NUL}"},
        {"type": "t", "queue": f"{NUL}"},
        {"type": "t", "payload": {"a": f"{NUL}"}},
        {"type": "t", "payload": {"a": "\udc80"}},
        {"type": "t", "payload": nested(MAX_PAYLOAD_DEPTH + 1)},
        {"type": "t", "payload": nested(5000)},
        {"type": "t", "delay": True},
        {"type": "t", "delay": 1e12},
        {"type": "t", "delay": float("inf")},
        {"type": "t", "timeout": 1e308},
        {"type": "t", "run_at": datetime(9999, 12, 31, tzinfo=UTC)},
        {"type": "t", "unique_key": "k", "unique_for": 1e300},
        {"type": "t", "unique_key": f"k{NUL}"},
        {"type": "t", "brief_id": "00000000-0000-4000-8000-000000000001"},
        # Numbers past a float's range, and keys that json would write as the same string (one value lost).
        {"type": "t", "timeout": 10**400},
        {"type": "t", "delay": 10**400},
        {"type": "t", "payload": {10**5000: 1}},
        {"type": "t", "payload": {1: "a", "1": "b"}},
        {"type": "t", "payload": {"x": [{True: "c", "true": "d"}]}},
        {"type": "t", "payload": {None: "e", "null": "f"}},
    ],
)
def test_create_job_raises_invalid_job_and_writes_nothing(store: Store, conn: psycopg.Connection, kwargs: dict) -> None:
    with pytest.raises(InvalidJob):
        supaworker.create_job(**kwargs, store=store)
    with pytest.raises(InvalidJob):
        supaworker.create_jobs([{"type": "ok"}, kwargs], store=store)
    assert row_counts(conn) == (0, 0)


def test_job_ids_beyond_bigint_raise_invalid_job(store: Store, conn: psycopg.Connection) -> None:
    for call in (supaworker.get_job, supaworker.retry_job, supaworker.cancel_job):
        with pytest.raises(InvalidJob, match="job_id"):
            call(TOO_BIG_ID, store=store)
    job_id = make_job(conn)
    with pytest.raises(InvalidJob, match="reason"):
        supaworker.cancel_job(job_id, f"no{NUL}", store=store)
    assert conn.execute("SELECT status::text FROM supaworker.jobs").fetchone() == ("pending",)


def test_create_brief_with_a_nul_raises_invalid_brief_and_writes_nothing(
    store: Store, conn: psycopg.Connection
) -> None:
    with pytest.raises(InvalidBrief, match="query"):
        supaworker.create_brief_with_job(user_id="u", query=f"q{NUL}", media_type="video", store=store)
    with pytest.raises(InvalidBrief, match="options"):
        supaworker.create_brief_with_job(
            user_id="u", query="q", media_type="video", options={"x": f"{NUL}"}, store=store
        )
    for step in (f"a{NUL}b", "\udcff"):  # a step the database cannot store failed with UnicodeEncodeError
        with pytest.raises(InvalidBrief, match="step"):
            supaworker.create_brief_with_job(
                user_id="u", query="q", media_type="video", use_pipeline=True, steps=["t", step], store=store
            )
    assert row_counts(conn) == (0, 0)


def test_a_job_of_an_existing_brief_is_accepted(store: Store, conn: psycopg.Connection) -> None:
    brief = supaworker.create_brief_with_job(user_id="u", query="q", media_type="video", store=store).brief
    job = supaworker.create_job("thumbnail", brief_id=brief.id, store=store)
    assert job.brief_id == brief.id
    assert supaworker.create_jobs([{"type": "t", "brief_id": brief.id}], store=store)


# -- the CLI: exit 2, nothing written ----------------------------------------------------------------------
BRIEF_CREATE = ["brief", "create", "--user-id", "u", "--query", "q", "--media-type", "video"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "t", "--payload", '{"a": "\\u0000"}'], "NUL"),
        (["enqueue", "t", "--payload", '{"a": "\\ud800"}'], "surrogate"),
        (["enqueue", "t", "--payload", "[" * 5000 + "]" * 5000], "nested"),
        (["enqueue", "t", "--delay", "1e12"], "delay"),
        (["enqueue", "t", "--timeout", "1e308"], "timeout"),
        (["retry", str(TOO_BIG_ID)], "job_id"),
        ([*BRIEF_CREATE, "--options", "{bad"], "--options is not valid JSON"),
    ],
)
def test_cli_rejects_out_of_bounds_input_with_exit_2(db: str, args: list[str], message: str) -> None:
    result = run_cli(db, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    with psycopg.connect(db) as conn:
        assert row_counts(conn) == (0, 0)


# -- readers: a row plain SQL stored oddly renders, and the rest of the page with it ---------------------
ODD_ROWS = [
    ("run_at", "'infinity'"),
    ("run_at", "'-infinity'"),
    ("run_at", "'200000-01-01 00:00:00+00'"),
    ("run_at", "'4000-01-01 BC'"),
    ("payload", "%(deep)s::jsonb"),
    ("payload", "%(deeper)s::jsonb"),
    ("result", "%(deep)s::jsonb"),
    ("payload", "%(huge)s::jsonb"),
    ("result", "%(huge)s::jsonb"),
    ("payload", "%(overflow)s::jsonb"),
]


def insert_odd_rows(conn: psycopg.Connection) -> list[int]:
    """One ordinary job, then one job per odd value, inserted by plain SQL."""
    # An integer of more than 4,300 digits: jsonb holds it, Python refuses to read it from text.
    params = {
        "deep": json.dumps(nested(300)),
        "deeper": "[" * 3000 + "]" * 3000,
        "huge": '{"n": ' + "9" * 5001 + "}",
        "overflow": '{"x": ' + "1" * 400 + ".5}",
    }
    ids = [make_job(conn)]
    for column, value in ODD_ROWS:
        sql = f"INSERT INTO supaworker.jobs (type, {column}) VALUES ('odd', {value}) RETURNING id"
        ids.append(conn.execute(sql, params).fetchone()[0])
    return ids


def test_api_readers_render_odd_rows(api: TestClient, conn: psycopg.Connection) -> None:
    ids = insert_odd_rows(conn)
    listing = api.get("/api/jobs?action=list", headers=AUTH)
    assert listing.status_code == 200, listing.text
    by_id = {j["id"]: j for j in listing.json()["jobs"]}
    assert sorted(by_id) == sorted(ids)
    assert by_id[ids[1]]["run_at"] == "infinity"
    assert by_id[ids[2]]["run_at"] == "-infinity"
    assert by_id[ids[3]]["run_at"].startswith("200000-01-01")
    assert by_id[ids[4]]["run_at"].endswith("BC")
    assert isinstance(by_id[ids[5]]["payload"], str) and by_id[ids[5]]["payload"].startswith('{"a": {"a"')
    assert by_id[ids[6]]["payload"].startswith("[[[[")
    assert by_id[ids[8]]["payload"] == '{"n": ' + "9" * 5001 + "}"
    assert by_id[ids[10]]["payload"] == '{"x": ' + "1" * 400 + ".5}"  # not an infinity
    for job_id in ids:
        one = api.get(f"/api/jobs/{job_id}", headers=AUTH)
        assert one.status_code == 200, one.text
    for action in ("pending", "active", "stats"):
        assert api.get(f"/api/jobs?action={action}", headers=AUTH).status_code == 200, action


def insert_infinite_time_rows(conn: psycopg.Connection) -> dict[str, int]:
    """Jobs whose times plain SQL set to an infinity: now() minus one is an error in PostgreSQL."""
    rows = {
        "pending": "INSERT INTO supaworker.jobs (type, created_at) VALUES ('odd', '-infinity')",
        "processing": "INSERT INTO supaworker.jobs (type, status, started_at, worker_id, lease_expires_at, attempts)"
        " VALUES ('odd', 'processing', '-infinity', 'w', now() + interval '1 hour', 1)",
        "finished": "INSERT INTO supaworker.jobs (type, status, run_at, started_at, completed_at)"
        " VALUES ('odd', 'completed', '-infinity', '-infinity', now())",
        "finished later than now": "INSERT INTO supaworker.jobs (type, status, completed_at)"
        " VALUES ('odd', 'completed', 'infinity')",
    }
    return {name: conn.execute(sql + " RETURNING id").fetchone()[0] for name, sql in rows.items()}  # type: ignore[index]


def test_the_views_and_the_api_answer_for_jobs_at_infinite_times(api: TestClient, conn: psycopg.Connection) -> None:
    ids = insert_infinite_time_rows(conn)
    assert conn.execute("SELECT age FROM supaworker.pending_jobs_queue").fetchall() == [(None,)]
    assert conn.execute("SELECT running_for FROM supaworker.active_jobs").fetchall() == [(None,)]
    for action, key in (("pending", "pending"), ("active", "processing")):
        answer = api.get(f"/api/jobs?action={action}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert [j["id"] for j in answer.json()["jobs"]] == [ids[key]]


def test_the_change_feed_goes_on_past_jobs_finished_at_odd_times(store: Store, conn: psycopg.Connection) -> None:
    # A finish with infinite times failed every sample; one later than now (read as the end of Python's range)
    # moved the feed's watermark past every job still to finish, and the arithmetic on it stopped the feed.
    ids = insert_infinite_time_rows(conn)
    feed = ChangeFeed(store, listen_conninfo=None, count_cap=1000)
    first = feed._sample()
    assert [r["id"] for r in first.backfill] == [ids["finished"]]
    assert first.backfill[0]["duration_seconds"] is None
    later = conn.execute(
        "INSERT INTO supaworker.jobs (type, status, completed_at) VALUES ('t', 'completed', now()) RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    assert [r["id"] for r in feed._sample().finished] == [later]


def test_a_time_beyond_pythons_range_takes_arithmetic_as_the_end_of_that_range() -> None:
    late, early = OutOfRangeTime("infinity"), OutOfRangeTime("-infinity")
    assert late - timedelta(seconds=5) == datetime.max.replace(tzinfo=UTC) - timedelta(seconds=5)
    assert early + timedelta(days=1) == datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
    assert str(late) == "infinity" and late > datetime(9999, 1, 1, tzinfo=UTC)


def test_dashboard_renders_odd_rows(api: TestClient, conn: psycopg.Connection) -> None:
    ids = insert_odd_rows(conn)
    api.app.state.feed.poke()
    for path in ("/test-worker", "/test-worker/panels", "/test-worker/panels?type=odd"):
        page = api.get(path)
        assert page.status_code == 200, (path, page.text)
        assert str(ids[-1]) in page.text


def test_an_error_of_megabytes_on_one_line_is_cut_short_in_the_lists(api: TestClient, conn: psycopg.Connection) -> None:
    # Plain SQL can store one: the overview and every panel refresh rendered it whole, twice (4 MB a refresh).
    error = "RuntimeError: " + "x" * 2_000_000
    job_id = conn.execute(
        "INSERT INTO supaworker.jobs (type, status, completed_at, attempts, last_error)"
        " VALUES ('odd', 'failed', now(), 1, %s) RETURNING id",
        (error,),
    ).fetchone()[0]  # type: ignore[index]
    api.app.state.feed.poke()
    for path in ("/test-worker", "/test-worker/panels", "/test-worker/jobs?status=failed"):
        page = api.get(path, headers=AUTH)
        assert page.status_code == 200 and str(job_id) in page.text, path
        assert len(page.text) < 100_000, (path, len(page.text))
    assert error[:50_000] in api.get(f"/test-worker/panels/jobs/{job_id}", headers=AUTH).text  # its own page


def test_cli_readers_render_odd_rows(db: str, conn: psycopg.Connection) -> None:
    ids = insert_odd_rows(conn)
    shown = run_cli(db, "show", str(ids[1]))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run_at"] == "infinity"
    listing = run_cli(db, "jobs", "--json")
    assert listing.returncode == 0, listing.stderr
    assert len(json.loads(listing.stdout)) == len(ids)
    assert run_cli(db, "jobs").returncode == 0


def test_the_overview_shows_a_payload_in_any_script_as_written(api: TestClient, conn: psycopg.Connection) -> None:
    # It showed {"t":"\u0645\u0631..."} for Arabic text, while the jobs list showed the text itself.
    conn.execute("""INSERT INTO supaworker.jobs (type, payload) VALUES ('odd', '{"t": "مرحبا 世界 🧨"}')""")
    api.app.state.feed.poke()
    page = api.get("/test-worker/panels", headers=AUTH)
    assert page.status_code == 200
    assert "مرحبا 世界 🧨" in page.text and "\\u0645" not in page.text
