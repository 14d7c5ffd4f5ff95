"""The HTTP worker as a real process when an answer goes missing between PostgREST and it: a claim whose answer a
gateway lost after it committed, and a PostgREST whose schema cache lacks a function a migration added."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from supaworker.worker.main import EXIT_FAILED
from tests.acceptance import test_http_worker
from tests.acceptance.test_http_worker import FAST, JWT_SECRET, key
from tests.conftest import SCHEMA, run_cli
from tests.faults.harness import Fleet, enqueue_effects, prepare_effects, report, status_counts, worker_env
from tests.servers import PostgREST
from tests.support.gateway import Gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.acceptance

supa = test_http_worker.supa  # the fixtures: a migrated database with PostgREST serving it; worker processes
fleet = test_http_worker.fleet

LEASE_SECONDS = 3.0
# What the worker's own clock adds to a lease before its lost jobs run again: the rescuer's interval, the
# lease it waits for PostgREST to have answered it after the failed claim, a claim. Generous for a busy machine.
HANDED_BACK_WITHIN_SECONDS = LEASE_SECONDS + 5
RESCUE_V3_ARGS = "text, bigint[], integer, double precision, double precision, double precision"
RESCUE_ARGS = {"p_worker_id": "probe", "p_held": [], "p_grace_seconds": 0}


class LosingGateway(Gateway):
    """The gateway, passing every call on, except the answer to the first claim that took jobs: PostgREST
    committed it, the worker gets 504 instead (a gateway timing out after the commit)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.lost: list[int] = []  # the ids of the jobs whose claim was answered 504
        self.lost_at = 0.0  # monotonic time of that answer

    def rewrite(self, path: str, status: int, content: bytes) -> tuple[int, bytes]:
        """Loses the answer of the first claim that answered some jobs."""
        if not path.startswith("/rpc/claim_jobs_v2") or status != 200:
            return status, content
        rows = json.loads(content)
        with self.lock:
            if self.lost or not rows:
                return status, content
            self.lost, self.lost_at = sorted(row["id"] for row in rows), time.monotonic()
        return 504, b'{"message":"upstream request timeout"}'


@pytest.fixture
def gateway(supa: tuple[str, PostgREST]) -> Iterator[LosingGateway]:
    g = LosingGateway(supa[1].url)
    yield g
    g.close()


def http_env(url: str, rest_url: str, **extra: str) -> dict[str, str]:
    # No DATABASE_URL: the worker can only go through PostgREST.
    return worker_env(None, url, SUPAWORKER_POSTGREST_URL=rest_url, SUPABASE_SERVICE_ROLE_KEY=key("service_role"),
                      **FAST, **extra)  # fmt: skip


def test_a_lone_worker_gets_back_the_jobs_of_a_claim_whose_answer_a_gateway_lost(
    supa: tuple[str, PostgREST], gateway: LosingGateway, fleet: Fleet
) -> None:
    # The claim committed, so the jobs are `processing` under this worker, which never heard of them: no other
    # worker runs to rescue them, and its own rescuer skipped its own jobs (20 of 20 stayed `processing`).
    url, _ = supa
    ids = enqueue_effects(url, 20)
    w = fleet.start(http_env(url, gateway.url, SUPAWORKER_LEASE_SECONDS=str(LEASE_SECONDS)), "--concurrency", "4")
    wait_until(lambda: gateway.lost, fleet.explain("a claim answered 504"))
    wait_until(
        lambda: status_counts(url)["completed"] == 20,
        lambda: (
            f"20 jobs completed ({len(gateway.lost)} claimed by the claim answered 504): {dict(status_counts(url))}"
            f"\n{fleet.logs()}"
        ),
        timeout=HANDED_BACK_WITHIN_SECONDS + 5,
    )
    took = time.monotonic() - gateway.lost_at
    report("claim answer lost over HTTP", lost=len(gateway.lost), back_after_s=f"{took:.1f}", lease_s=LEASE_SECONDS)
    assert w.stop() == 0, fleet.logs()
    with psycopg.connect(url) as conn:
        jobs = conn.execute("SELECT id, attempts, errors, last_error FROM supaworker.jobs ORDER BY id").fetchall()
        runs: dict[int, int] = dict(
            conn.execute("SELECT job_id, count(*) FROM public.test_effects GROUP BY 1").fetchall()
        )
    assert runs == dict.fromkeys(ids, 1)  # each handler ran once: the lost jobs only after they came back
    assert [j for j in jobs if j[0] not in gateway.lost] == [(i, 1, [], None) for i in ids if i not in gateway.lost]
    for _, attempts, errors, last_error in (j for j in jobs if j[0] in gateway.lost):
        # The claim marked the first of them started (they went straight to free slots), and the worker's later
        # start marks cover the places of the claim sequence its next claims reused: those are charged, as a
        # dead worker's would be, and say why.
        assert (attempts, len(errors)) in ((1, 0), (2, 1)), (attempts, errors)
        if errors:
            assert "no longer held the job" in errors[0]["error"] and last_error == errors[0]["error"], errors
    rescued = [e for e in w.events() if e.get("msg", "").startswith("expired jobs of this worker that it no longer")]
    assert [e["ids"] for e in rescued] == [gateway.lost], fleet.logs()
    assert took < HANDED_BACK_WITHIN_SECONDS, f"the lost jobs came back {took:.1f} s after the 504"


def rpc(server: PostgREST, function: str, args: dict[str, Any]) -> tuple[int, Any]:
    """POSTs to PostgREST as the service role: its status and JSON answer."""
    response = httpx.post(
        f"{server.url}/rpc/{function}",
        json=args,
        headers={"Authorization": f"Bearer {key('service_role')}", "Content-Profile": SCHEMA},
    )
    return response.status_code, response.json() if response.content else None


@pytest.fixture
def stale_cache(db: str) -> Iterator[tuple[str, PostgREST]]:
    """A database a release behind (without migration 0027) and a listening PostgREST whose cache lacks 0027's
    function, as when PostgREST started before the upgrade."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"DROP FUNCTION supaworker.rescue_expired_jobs_v3({RESCUE_V3_ARGS})")
        conn.execute("DELETE FROM supaworker.migrations WHERE version = 27")
    prepare_effects(db)
    server = PostgREST(db, SCHEMA, JWT_SECRET, listens=True).start()
    wait_until(lambda: rpc(server, "heartbeat_jobs", {"p_worker_id": "x", "p_ids": []})[0] == 200,
               "PostgREST to load its schema cache", timeout=30)  # fmt: skip
    yield db, server
    server.stop()


def test_migrate_makes_a_running_postgrest_serve_the_functions_it_added(
    stale_cache: tuple[str, PostgREST],
) -> None:
    # Without the reload PostgREST answered "function not found" for rescue_expired_jobs_v3 until restarted.
    db, server = stale_cache
    status, body = rpc(server, "rescue_expired_jobs_v3", RESCUE_ARGS)
    assert (status, body["code"]) == (404, "PGRST202")
    done = run_cli(db, "migrate")
    assert done.returncode == 0, done.stderr
    # The reload is asynchronous: PostgREST hears the NOTIFY and reads its cache again.
    wait_until(lambda: rpc(server, "rescue_expired_jobs_v3", RESCUE_ARGS)[0] == 200,
               lambda: f"PostgREST to serve the function: {rpc(server, 'rescue_expired_jobs_v3', RESCUE_ARGS)}",
               timeout=10)  # fmt: skip


def test_a_worker_whose_postgrest_lacks_the_rescuers_function_stops_naming_the_fix_and_leaves_no_job(
    stale_cache: tuple[str, PostgREST], fleet: Fleet
) -> None:
    # It starts (its first call exists), then its rescuer meets PGRST202 and the worker stops as when any of its
    # tasks dies: with 1, which a supervisor restarts, as a reload of PostgREST's cache is the cure.
    db, server = stale_cache
    ids = enqueue_effects(db, 12, sleep=1)
    first = fleet.start(http_env(db, server.url), "--concurrency", "4")
    assert first.proc.wait(30) == EXIT_FAILED, first.log_text()
    died = [e for e in first.events() if e.get("msg") == "worker task died, stopping the worker"]
    assert [e["task"] for e in died] == ["rescuer"], first.log_text()
    assert "rescue_expired_jobs_v3: function not found" in died[0]["error"], died
    assert "run `supaworker migrate`" in died[0]["error"], died
    counts = status_counts(db)
    assert counts["completed"] > 0 and counts["completed"] + counts["pending"] == 12, counts  # none left held
    assert run_cli(db, "migrate").returncode == 0
    wait_until(lambda: rpc(server, "rescue_expired_jobs_v3", RESCUE_ARGS)[0] == 200, "PostgREST to reload", timeout=10)
    second = fleet.start(http_env(db, server.url), "--concurrency", "4")
    wait_until(lambda: status_counts(db)["completed"] == 12, fleet.explain("12 jobs completed"), timeout=30)
    assert second.stop() == 0, second.log_text()
    with psycopg.connect(db) as conn:
        jobs = conn.execute("SELECT id, attempts FROM supaworker.jobs ORDER BY id").fetchall()
        runs: dict[int, int] = dict(
            conn.execute("SELECT job_id, count(*) FROM public.test_effects GROUP BY 1").fetchall()
        )
    assert jobs == [(i, 1) for i in ids] and runs == dict.fromkeys(ids, 1)
