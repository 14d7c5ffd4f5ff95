"""`GET /api/briefs/{id}/events`: one brief's progress as server-sent events, for the service key or for the
brief's owner with their Supabase session JWT (verified with SUPABASE_JWT_SECRET), nobody else."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient

from supaworker.api.auth import verify_session_jwt
from supaworker.briefs import create_brief_with_job
from supaworker.store import Store
from tests.support.api import AUTH, claim, complete, make_app

SECRET = "project-jwt-secret-for-the-events-tests-0123"


def session(sub: str | None, role: str = "authenticated", secret: str = SECRET, expires_in: int = 3600) -> str:
    claims: dict[str, Any] = {"role": role, "aud": "authenticated", "exp": int(time.time()) + expires_in}
    if sub is not None:
        claims["sub"] = sub
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture
def api(store: Store, db: str) -> Iterator[TestClient]:
    with TestClient(make_app(store, db, jwt_secret=SECRET)) as client:
        yield client


def events(lines: Iterator[str], count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next `count` events of a stream's lines, as (name, data)."""
    found: list[tuple[str, dict[str, Any]]] = []
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name:
            found.append((name, json.loads(line.removeprefix("data: "))))
            if len(found) == count:
                return found
    return found


def test_brief_events_stream_each_change_until_the_brief_is_final(
    api: TestClient, store: Store, conn: psycopg.Connection
) -> None:
    made = create_brief_with_job(user_id="alice", query="q", media_type="text", store=store)
    with api.stream("GET", f"/api/briefs/{made.brief.id}/events", headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = events(lines, 1)
        assert first[0][0] == "brief" and first[0][1]["status"] == "pending"
        assert first[0][1]["steps"][0]["type"] == "analysis"
        job = claim(conn)
        conn.execute("UPDATE supaworker.jobs SET progress = 40 WHERE id = %s", (job,))
        running = events(lines, 1)
        assert running[0][1]["status"] == "processing" and running[0][1]["steps"][0]["progress"] == 40
        complete(conn, job)
        rest = events(lines, 2)
        assert [name for name, _ in rest] == ["brief", "end"]
        assert rest[0][1]["status"] == "completed" and rest[1][1] == {"status": "completed"}


def test_the_owners_session_jwt_reads_their_brief_by_header_or_access_token(api: TestClient, store: Store) -> None:
    made = create_brief_with_job(user_id="alice", query="q", media_type="text", store=store)
    url = f"/api/briefs/{made.brief.id}/events"
    with api.stream("GET", url, headers={"Authorization": f"Bearer {session('alice')}"}) as response:
        assert response.status_code == 200
        assert events(response.iter_lines(), 1)[0][1]["id"] == str(made.brief.id)
    with api.stream("GET", url, params={"access_token": session("alice")}) as response:
        assert response.status_code == 200
        brief = events(response.iter_lines(), 1)[0][1]
    assert brief["user_id"] == "alice"
    assert brief["steps"][0]["status"] == "pending" and "payload" not in brief["steps"][0]
    assert "worker_id" not in brief["steps"][0]
    with api.stream("GET", url, headers=AUTH) as response:
        assert events(response.iter_lines(), 1)[0][1]["steps"][0]["payload"]["query"] == "q"


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (session("bob"), 404),  # another user: as if there were no such brief
        (session("alice", role="anon"), 401),
        (session(None), 401),
        (session("alice", expires_in=-10), 401),
        (session("alice", secret="another-projects-secret-0123456789"), 401),
        (jwt.encode({"role": "authenticated", "sub": "alice"}, SECRET, algorithm="HS256"), 401),  # no exp
        ("not-a-jwt", 401),
        (None, 401),
    ],
    ids=["other-user", "anon", "no-sub", "expired", "wrong-secret", "no-exp", "garbage", "none"],
)
def test_brief_events_refuse_everyone_else(api: TestClient, store: Store, token: str | None, status: int) -> None:
    made = create_brief_with_job(user_id="alice", query="q", media_type="text", store=store)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = api.get(f"/api/briefs/{made.brief.id}/events", headers=headers)
    assert response.status_code == status, response.text
    assert "alice" not in response.text


def test_session_jwts_are_refused_when_no_jwt_secret_is_configured(store: Store, db: str) -> None:
    made = create_brief_with_job(user_id="alice", query="q", media_type="text", store=store)
    with TestClient(make_app(store, db)) as api:
        response = api.get(
            f"/api/briefs/{made.brief.id}/events", headers={"Authorization": f"Bearer {session('alice')}"}
        )
    assert response.status_code == 401
    assert "SUPABASE_JWT_SECRET" in response.json()["error"]


def test_verify_session_jwt_takes_only_hs256_signed_with_the_secret() -> None:
    assert verify_session_jwt(session("alice"), SECRET)["sub"] == "alice"  # type: ignore[index]
    none_alg = jwt.encode({"role": "authenticated", "sub": "a", "exp": time.time() + 60}, None, algorithm="none")
    assert verify_session_jwt(none_alg, SECRET) is None
    assert verify_session_jwt(session("alice"), SECRET + "x") is None
    assert verify_session_jwt(session("alice", expires_in=-1), SECRET) is None
