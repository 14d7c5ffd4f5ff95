"""The SQL API as PostgREST RPC with Supabase's roles, and the Python API going through it with only a URL and
the service-role key (no database URL): the calls an application on Supabase makes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import psycopg
import pytest

import supaworker
from supaworker import client, rpc
from supaworker.config import get_settings
from supaworker.errors import ConfigError, InvalidBrief, InvalidJob
from supaworker.migrate import migrate
from tests.conftest import PREFIX, SCHEMA, admin_url, create_database, drop_database
from tests.servers import PostgREST, ensure_supabase_roles

pytestmark = pytest.mark.acceptance

JWT_SECRET = "supaworker-sql-api-test-secret-0123456789"
SQL_API_CALLS = {
    "create_job": {"type": "analysis", "payload": {"video_url": "v"}},
    "create_jobs": {"jobs": [{"type": "a"}]},
    "create_brief_with_job": {"user_id": "u", "query": "q", "media_type": "text"},
    "get_job": {"job_id": 1},
    "get_brief": {"brief_id": "00000000-0000-0000-0000-000000000000"},
    "list_briefs": {"limit": 5},
}


def key(role: str, **claims: object) -> str:
    body = {"role": role, "iss": "supabase", "exp": int(time.time()) + 3600, **claims}
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def rpc_call(server: PostgREST, function: str, args: dict[str, object], token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "apikey": token, "Content-Profile": SCHEMA}
    return httpx.post(f"{server.url}/rpc/{function}", json=args, headers=headers)


@pytest.fixture
def supa() -> Iterator[tuple[str, PostgREST]]:
    """A migrated Supabase-shaped database (end-user reads left off, the default) and PostgREST serving it."""
    ensure_supabase_roles(admin_url())
    name = f"{PREFIX}_sqlapi_{time.monotonic_ns() % 10**9}"
    url = create_database(name)
    migrate(url, SCHEMA)
    server = PostgREST(url, SCHEMA, JWT_SECRET).start()
    try:
        deadline = time.monotonic() + 30
        while rpc_call(server, "get_job", {"job_id": 1}, key("service_role")).status_code != 200:
            assert time.monotonic() < deadline, "PostgREST did not load the SQL API within 30s"
            time.sleep(0.1)
        yield url, server
    finally:
        server.stop()
        drop_database(name)


def jobs_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0]  # type: ignore[index]


def test_create_job_over_rpc_reads_as_the_python_call(supa: tuple[str, PostgREST]) -> None:
    _, server = supa
    response = rpc_call(server, "create_job", SQL_API_CALLS["create_job"], key("service_role"))
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["type"], job["payload"], job["status"], job["duplicate"]) == ("analysis", {"video_url": "v"}, "pending",
                                                                              False)  # fmt: skip
    pipeline = {"user_id": "u1", "query": "q", "media_type": "video", "use_pipeline": True}
    brief = rpc_call(server, "create_brief_with_job", pipeline, key("service_role"))
    assert brief.status_code == 200, brief.text
    assert [s["type"] for s in brief.json()["brief"]["steps"]] == [
        "analysis",
        "asset_prep",
        "video_generation",
        "render",
    ]
    listed = rpc_call(server, "list_briefs", {"user_id": "u1", "limit": 1}, key("service_role"))
    assert [b["id"] for b in listed.json()] == [brief.json()["brief"]["id"]]


def test_a_rejected_rpc_answers_400_with_the_message_and_the_field(supa: tuple[str, PostgREST]) -> None:
    url, server = supa
    response = rpc_call(server, "create_job", {"type": "t", "priority": 2**31}, key("service_role"))
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["message"], body["details"]) == (
        "22023",
        "priority must be a 32-bit integer (lower runs first)",
        "field: priority",
    )
    assert jobs_count(url) == 0


@pytest.mark.parametrize("function", sorted(SQL_API_CALLS))
def test_anon_and_authenticated_cannot_call_the_sql_api(supa: tuple[str, PostgREST], function: str) -> None:
    url, server = supa
    for token in (key("anon"), key("authenticated", sub="u")):
        response = rpc_call(server, function, SQL_API_CALLS[function], token)
        assert response.status_code in (401, 403), response.text
        assert response.json()["code"] == "42501"
    assert jobs_count(url) == 0


def test_end_user_reads_are_off_until_expose_briefs(supa: tuple[str, PostgREST]) -> None:
    url, server = supa
    rpc_call(
        server, "create_brief_with_job", {"user_id": "u1", "query": "q", "media_type": "text"}, key("service_role")
    )
    headers = {"Authorization": f"Bearer {key('authenticated', sub='u1')}", "Accept-Profile": SCHEMA}
    for relation in ("briefs", "jobs"):
        response = httpx.get(f"{server.url}/{relation}?select=id", headers=headers)
        assert response.status_code in (401, 403), response.text
        assert response.json()["code"] == "42501"
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('supaworker.user_briefs')").fetchone() == (None,)
        assert conn.execute("SELECT supaworker.expose_briefs(true)").fetchone() == (True,)
        assert conn.execute("SELECT supaworker.expose_briefs(false)").fetchone() == (False,)
        privileges = conn.execute(
            "SELECT has_schema_privilege('authenticated', 'supaworker', 'USAGE'),"
            " has_table_privilege('authenticated', 'supaworker.briefs', 'SELECT'),"
            " to_regclass('supaworker.user_briefs'),"
            " (SELECT count(*) FROM pg_policy WHERE polname IN ('briefs_owner_select', 'jobs_brief_owner_select'))"
        ).fetchone()
    assert privileges == (False, False, None, 0)


@pytest.fixture
def http_only(supa: tuple[str, PostgREST], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Settings as on a host with only SUPABASE_URL-style settings: no DATABASE_URL at all."""
    url, server = supa
    for name in ("DATABASE_URL", "SUPABASE_DB_URL", "SUPABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPAWORKER_POSTGREST_URL", server.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key("service_role"))
    get_settings.cache_clear()
    client.close()
    rpc.close()
    yield url
    rpc.close()
    get_settings.cache_clear()


def test_python_create_job_without_a_database_url_goes_through_rpc(http_only: str) -> None:
    url = http_only
    job = supaworker.create_job("analysis", {"video_url": "v.mp4"}, priority=3, queue="media", delay=60)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT type, payload, priority, queue, run_at > now() FROM supaworker.jobs WHERE id = %s",
                           (job.id,)).fetchone()  # fmt: skip
    assert row == ("analysis", {"video_url": "v.mp4"}, 3, "media", True)
    assert (job.status, job.priority, job.payload, job.duplicate) == ("pending", 3, {"video_url": "v.mp4"}, False)
    again = supaworker.create_job("analysis", unique_key="once")
    assert supaworker.create_job("analysis", unique_key="once").duplicate and not again.duplicate
    child = supaworker.create_job("render", depends_on=[job.id])
    assert (child.status, child.extra["depends_on"]) == ("waiting", [job.id])


def test_python_create_brief_with_job_without_a_database_url_goes_through_rpc(http_only: str) -> None:
    url = http_only
    made = supaworker.create_brief_with_job(user_id="u1", query="a video about AI", media_type="video",
                                            use_pipeline=True, options={"style": "noir"})  # fmt: skip
    assert [s.type for s in made.brief.steps] == ["analysis", "asset_prep", "video_generation", "render"]
    assert (made.job.id, made.job.payload["style"], str(made.brief.status)) == (
        made.brief.steps[0].id,
        "noir",
        "pending",
    )
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM supaworker.jobs WHERE brief_id = %s", (made.brief.id,)
        ).fetchone() == (4,)


def test_python_over_rpc_raises_the_database_refusals_as_invalid_job(http_only: str) -> None:
    url = http_only
    with pytest.raises(InvalidJob) as missing_brief:
        supaworker.create_job("analysis", brief_id="00000000-0000-0000-0000-000000000001")
    assert missing_brief.value.field == "brief_id"
    with pytest.raises(InvalidJob, match=r"unknown job id\(s\) 987654321"):
        supaworker.create_job("analysis", depends_on=[987654321])
    with pytest.raises(InvalidBrief, match="each step must be a non-empty job type"):
        supaworker.create_brief_with_job(user_id="u", query="q", media_type="text", steps=["analysis", ""])
    assert jobs_count(url) == 0


def test_python_over_rpc_with_the_anon_key_is_a_config_error(
    http_only: str, monkeypatch: pytest.MonkeyPatch, supa: tuple[str, PostgREST]
) -> None:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key("anon"))
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="service_role"):
        supaworker.create_job("analysis")
    assert jobs_count(http_only) == 0
