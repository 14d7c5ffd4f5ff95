"""A pooler that ends a session with an error of its own: Supavisor, Supabase's pooler, answers a statement whose
server connection it lost (or could not check out) with a FATAL `XX000` error, `(EDBHANDLEREXITED) connection to
database closed ...`, and closes the session. psycopg raises that as an InternalError, not as a lost connection;
the worker, the API and the rescuer must ride it out like any other lost connection. A proxy in front of the test
database plays Supavisor (tests/faults/proxy.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

import supaworker
from supaworker.registry import Registry
from supaworker.retry import SessionEnded
from supaworker.store import Store
from supaworker.store.worker import _server_is_down
from tests.faults.proxy import FreezableProxy
from tests.support.api import AUTH, make_app
from tests.support.waiting import wait_until_async
from tests.support.worker import make_worker, running, status_is

from ..conftest import SCHEMA

DB_HANDLER_EXITED = "(EDBHANDLEREXITED) connection to database closed. Check logs for more information"


@pytest.fixture
def proxy(db: str) -> Iterator[FreezableProxy]:
    p = FreezableProxy.in_front_of(db)
    yield p
    p.close()


async def test_a_worker_rides_out_sessions_the_pooler_ended(db: str, store: Store, proxy: FreezableProxy) -> None:
    registry = Registry()
    done: list[int] = []

    async def record(job: supaworker.Job) -> None:
        done.append(job.id)

    registry.register("t", record)
    first = supaworker.create_jobs([{"type": "t"}] * 5, store=store)
    async with running(make_worker(proxy.url_for(db), registry)) as worker:
        for job_id in first:
            await wait_until_async(status_is(db, job_id, "completed"))
        assert proxy.end_sessions("XX000", DB_HANDLER_EXITED) >= 2  # the pool's and the listener's
        then = supaworker.create_jobs([{"type": "t"}] * 5, store=store)
        for job_id in then:
            await wait_until_async(status_is(db, job_id, "completed"))
        assert worker.failure is None
    assert sorted(done) == sorted(first + then)


def test_the_api_answers_503_for_a_session_the_pooler_ended_and_recovers(db: str, proxy: FreezableProxy) -> None:
    pool = ConnectionPool(proxy.url_for(db), min_size=1, max_size=1, kwargs={"autocommit": True})
    with pool, TestClient(make_app(Store(pool, SCHEMA))) as client:
        assert client.get("/api/jobs/1", headers=AUTH).status_code == 404
        proxy.end_sessions("XX000", DB_HANDLER_EXITED)
        ended = client.get("/api/jobs/1", headers=AUTH)
        assert ended.status_code == 503, ended.text
        assert client.get("/api/jobs/1", headers=AUTH).status_code == 404  # answered on a new session


def test_a_store_raises_an_ended_session_as_a_lost_connection(db: str, proxy: FreezableProxy) -> None:
    with ConnectionPool(proxy.url_for(db), min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        store = Store(pool, SCHEMA)
        supaworker.create_job("t", store=store)
        proxy.end_sessions("XX000", DB_HANDLER_EXITED)
        with pytest.raises(SessionEnded, match="EDBHANDLEREXITED") as ended:
            supaworker.create_job("t", store=store)
        assert isinstance(ended.value, psycopg.OperationalError)
        assert isinstance(ended.value.__cause__, psycopg.errors.InternalError_)
        supaworker.create_job("t", store=store)  # the pool replaced the dead connection


@pytest.mark.parametrize(
    "message",
    [
        DB_HANDLER_EXITED,
        "(EDBHANDLEREXITED) DbHandler exited. Check logs for more information",
        "(ECHECKOUTTIMEOUT) Pool checkout timeout. Request was dropped after 5000ms in Transaction mode.",
        "DbHandler exited",
        "Unable to check out process from the pool due to timeout",
    ],
)
def test_a_heartbeat_takes_what_the_pooler_says_for_a_server_that_is_down(message: str) -> None:
    assert _server_is_down(psycopg.errors.InternalError_(message))


def test_a_heartbeat_does_not_take_a_full_pooler_for_a_server_that_is_down() -> None:
    assert not _server_is_down(psycopg.errors.InternalError_("Max client connections reached"))
