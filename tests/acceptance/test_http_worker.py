"""The HTTP worker against a real PostgREST on loopback, as on a Supabase project reached by URL and key."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import httpx
import jwt
import psycopg
import pytest

import supaworker
from supaworker.errors import ConfigError
from supaworker.migrate import migrate
from supaworker.postgrest import PostgrestWorkerStore
from supaworker.worker.protocol import ClaimRequest, RetryDelays
from tests.conftest import PREFIX, SCHEMA, admin_url, create_database, drop_database
from tests.faults.harness import Fleet, enqueue_effects, prepare_effects, status_counts, tally, worker_env
from tests.servers import PostgREST, ensure_supabase_roles
from tests.support.waiting import wait_until

pytestmark = pytest.mark.acceptance

JWT_SECRET = "supaworker-test-secret-at-least-32-characters-long"
FAST = {
    "SUPAWORKER_RESCUE_INTERVAL_SECONDS": "0.5",
    "SUPAWORKER_RETRY_BASE_SECONDS": "0.05",
    "WORKER_POLL_INTERVAL_MS": "50",
}


def key(role: str) -> str:
    return jwt.encode({"role": role, "iss": "supabase", "exp": int(time.time()) + 3600}, JWT_SECRET, algorithm="HS256")


@pytest.fixture
def supa() -> Iterator[tuple[str, PostgREST]]:
    """A migrated Supabase-shaped database and a PostgREST serving its supaworker schema."""
    ensure_supabase_roles(admin_url())
    name = f"{PREFIX}_http_{time.monotonic_ns() % 10**9}"
    url = create_database(name)
    migrate(url, SCHEMA)
    prepare_effects(url)
    server = PostgREST(url, SCHEMA, JWT_SECRET).start()
    wait_until(
        lambda: (
            httpx.post(
                f"{server.url}/rpc/heartbeat_jobs",
                json={"p_worker_id": "x", "p_ids": []},
                headers={"Authorization": f"Bearer {key('service_role')}", "Content-Profile": SCHEMA},
            ).status_code
            == 200
        ),
        "PostgREST to load its schema cache",
        timeout=30,
    )
    yield url, server
    server.stop()
    drop_database(name)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet()
    yield f
    f.stop_all()


def http_env(url: str, server: PostgREST, role: str = "service_role", **extra: str) -> dict[str, str]:
    # No DATABASE_URL at all: the worker can only go through PostgREST.
    return worker_env(
        None, url, SUPAWORKER_POSTGREST_URL=server.url, SUPABASE_SERVICE_ROLE_KEY=key(role), **FAST, **extra
    )


def test_jobs_complete_through_postgrest(supa: tuple[str, PostgREST], fleet: Fleet) -> None:
    url, server = supa
    ids = enqueue_effects(url, 40)
    enqueue_effects(url, 10, fail_attempts=1)  # each fails once and is retried through fail_job()
    w = fleet.start(http_env(url, server))
    wait_until(lambda: status_counts(url)["completed"] == 50, fleet.explain("50 jobs completed over HTTP"))
    assert w.stop() == 0
    with psycopg.connect(url) as conn:
        retried = conn.execute("SELECT count(*) FROM supaworker.jobs WHERE attempts = 2").fetchone()
        workers = conn.execute("SELECT DISTINCT worker_id FROM supaworker.jobs WHERE id = ANY(%s)", (ids,)).fetchall()
    assert retried == (10,)
    assert [w[0].startswith("worker-") for w in workers] == [True]
    assert "listen=False" in w.log_text() or '"listen": false' in w.log_text()


def test_a_job_whose_payload_python_cannot_read_fails_alone_through_postgrest(
    supa: tuple[str, PostgREST], fleet: Fleet
) -> None:
    # One such payload in a claim made the whole response unreadable: the claim failed, and the worker with it;
    # so did a time beyond Python's range. Those jobs run.
    url, server = supa
    ordinary = enqueue_effects(url, 3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE supaworker.jobs SET run_at = '-infinity' WHERE id = %s", (ordinary[0],))
        conn.execute("UPDATE supaworker.jobs SET created_at = '200000-01-01' WHERE id = %s", (ordinary[1],))
        odd = [
            conn.execute(
                "INSERT INTO supaworker.jobs (type, payload) VALUES ('effect', %s::jsonb) RETURNING id", (text,)
            ).fetchone()[0]  # type: ignore[index]
            for text in ('{"n": ' + "9" * 5001 + "}", "[" * 3000 + "]" * 3000)
        ]
    w = fleet.start(http_env(url, server))
    wait_until(lambda: status_counts(url) == {"completed": 3, "failed": 2}, fleet.explain("the jobs over HTTP"))
    assert w.stop() == 0, w.log_text()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, status::text, attempts, last_error FROM supaworker.jobs ORDER BY id").fetchall()
    outcome = {job_id: (status, attempts, error) for job_id, status, attempts, error in rows}
    assert all(outcome[i][0] == "completed" for i in ordinary)
    for job_id, reason in zip(odd, ("4300 digits", "nested deeper"), strict=True):
        status, attempts, error = outcome[job_id]
        assert (status, attempts) == ("failed", 1) and error is not None, outcome[job_id]
        assert error.startswith("InvalidJob: the payload cannot be read") and reason in error, error


def test_pipeline_steps_get_their_parents_results_and_progress_is_written_through_postgrest(
    supa: tuple[str, PostgREST], fleet: Fleet
) -> None:
    url, server = supa
    with psycopg.connect(url, autocommit=True) as conn:
        parent = supaworker.create_job("echo_upstream", {"step": 1}, conn=conn)
        child = supaworker.create_job("echo_upstream", {"step": 2}, depends_on=[parent.id], conn=conn)
        progress = supaworker.create_job("reports_progress", conn=conn)
    w = fleet.start(http_env(url, server))
    wait_until(lambda: status_counts(url)["completed"] == 3, fleet.explain("3 jobs completed over HTTP"))
    assert w.stop() == 0, w.log_text()  # no side task of the worker failed on the way
    with psycopg.connect(url) as conn:
        rows = dict(conn.execute("SELECT id, result FROM supaworker.jobs").fetchall())
        reported = conn.execute(
            "SELECT progress, progress_message FROM supaworker.jobs WHERE id = %s", (progress.id,)
        ).fetchone()
    assert rows[child.id] == {"payload": {"step": 2}, "upstream": {str(parent.id): rows[parent.id]}}
    assert reported == (40.0, "almost there")


def test_anon_key_is_refused_by_the_worker_before_it_starts(supa: tuple[str, PostgREST], fleet: Fleet) -> None:
    url, server = supa
    enqueue_effects(url, 3)
    w = fleet.start(http_env(url, server, role="anon"))
    assert w.proc.wait(60) == 3
    assert "role 'anon'" in w.log_text() and "service_role key" in w.log_text()
    assert status_counts(url) == {"pending": 3}


@pytest.mark.parametrize(
    "function,args",
    [
        ("claim_jobs", {"p_worker_id": "thief", "p_limit": 10}),
        ("complete_jobs", {"p_worker_id": "t", "p_ids": [1], "p_attempts": [1], "p_results": [None]}),
        ("fail_job", {"p_job_id": 1, "p_worker_id": "t", "p_error": "x"}),
        ("heartbeat_jobs", {"p_worker_id": "t", "p_ids": [1]}),
        ("rescue_expired_jobs", {}),
        ("cancel_job", {"p_job_id": 1}),
        ("upstream_results", {"p_job_id": 1}),
        ("jobs_with_parents", {"p_ids": [1]}),
        (
            "update_job_progress",
            {"p_worker_id": "t", "p_ids": [1], "p_attempts": [1], "p_percents": [1], "p_messages": ["x"]},
        ),
    ],
)
def test_postgrest_refuses_an_anon_jwt_for_every_worker_function(
    supa: tuple[str, PostgREST], function: str, args: dict[str, object]
) -> None:
    url, server = supa
    enqueue_effects(url, 1)
    for role in ("anon", "authenticated"):
        response = httpx.post(
            f"{server.url}/rpc/{function}",
            json=args,
            headers={"Authorization": f"Bearer {key(role)}", "Content-Profile": SCHEMA},
        )
        assert response.status_code in (401, 403), response.text
        assert response.json()["code"] == "42501"
    assert status_counts(url) == {"pending": 1}


async def test_a_key_without_a_role_claim_is_refused_with_a_clear_error(supa: tuple[str, PostgREST]) -> None:
    # An opaque key cannot be checked locally: the server's refusal must still be explained.
    _, server = supa
    store = PostgrestWorkerStore(server.url, jwt.encode({"sub": "x"}, JWT_SECRET, algorithm="HS256"), SCHEMA)
    with pytest.raises(ConfigError, match=r"refused the key.*service_role"):
        await store.open()
    await store.close()


async def test_a_claim_whose_answer_was_lost_comes_back_to_its_worker(supa: tuple[str, PostgREST]) -> None:
    # A gateway timeout after the claim committed: the worker never received these jobs, and was alone.
    url, server = supa
    ids = enqueue_effects(url, 3)
    store = PostgrestWorkerStore(server.url, key("service_role"), SCHEMA)
    try:
        await store.claim_jobs("alone", ClaimRequest(5, lease_seconds=0.1, start=1))  # its answer "lost"
        await asyncio.sleep(0.3)
        delays = RetryDelays(0, 0)
        assert (
            await store.rescue_expired_jobs(worker_id="alone", held=None, limit=10, delays=delays, grace_seconds=0)
            == []
        )
        rescued = await store.rescue_expired_jobs(worker_id="alone", held=[], limit=10, delays=delays, grace_seconds=0)
        # The first was marked started by the claim: charged, as a dead worker's would be; the others not.
        assert sorted((r[0], r[2], r[3], r[5]) for r in rescued) == sorted(
            [(min(ids), 1, "pending", True)] + [(i, 0, "pending", False) for i in sorted(ids)[1:]]
        )
    finally:
        await store.close()


async def test_a_late_http_completion_is_fenced_out(supa: tuple[str, PostgREST]) -> None:
    url, server = supa
    (job_id,) = enqueue_effects(url, 1)
    store = PostgrestWorkerStore(server.url, key("service_role"), SCHEMA)
    try:
        (job,) = await store.claim_jobs("slow-worker", ClaimRequest(5, lease_seconds=0.1))
        await asyncio.sleep(0.3)  # the lease runs out (the database clock decides)
        rescued = await store.rescue_expired_jobs(
            worker_id="fast-worker", held=[], limit=10, delays=RetryDelays(0, 0), grace_seconds=0
        )
        assert [(r[0], r[3], r[4]) for r in rescued] == [(job_id, "pending", "slow-worker")]
        (again,) = await store.claim_jobs("fast-worker", ClaimRequest(5, lease_seconds=30))
        assert again.attempt == 2
        assert await store.complete_jobs("slow-worker", [job_id], [job.attempt], [{"late": True}]) == set()
        assert await store.heartbeat_jobs("slow-worker", [job_id], 30) == set()
        assert await store.complete_jobs("fast-worker", [job_id], [again.attempt], [{"ok": True}]) == {job_id}
    finally:
        await store.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT status::text, result FROM supaworker.jobs").fetchall() == [
            ("completed", {"ok": True})
        ]


@pytest.mark.slow
@pytest.mark.parametrize("tenants", [1, 30])
def test_concurrent_http_workers_never_run_a_job_twice(supa: tuple[str, PostgREST], fleet: Fleet, tenants: int) -> None:
    # Over 30 tenants the claims take turns round them, each PostgREST connection from its own place.
    url, server = supa
    for _ in range(3):
        fleet.start(http_env(url, server), "--concurrency", "8")
    fleet.wait_started()  # all three are claiming before the jobs arrive (one alone drains 300 no-ops at once)
    enqueue_effects(url, 300, tenants=tenants)
    wait_until(lambda: status_counts(url)["completed"] == 300, fleet.explain("300 jobs completed"))
    for w in fleet.workers:
        w.signal(signal.SIGTERM)
    result = tally(url, fleet)
    assert (result.lost, result.executions, result.jobs_run_twice, result.completed_twice) == (0, 300, 0, 0)
    busy = {e["_worker"] for e in fleet.events() if e.get("msg") == "job completed"}
    assert len(busy) >= 2, "the jobs were not shared between workers"
