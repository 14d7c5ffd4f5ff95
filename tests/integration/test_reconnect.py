"""A connection the server closed costs no failed request: the API and a worker's health check replace it."""

from __future__ import annotations

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from supaworker.api import ApiSettings
from supaworker.db import ConnectionProfile
from supaworker.server import ApiServer
from supaworker.store import WorkerStore
from tests.support.api import free_port

from ..conftest import SCHEMA

REQUESTS = 12


def terminate(db: str, application_name: str) -> int:
    with psycopg.connect(db, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_api_answers_every_request_after_its_connections_are_terminated(db: str) -> None:
    port = free_port()
    server = ApiServer(ConnectionProfile(db, False), SCHEMA, ApiSettings(host="127.0.0.1", port=port))
    await server.start(timeout=30)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            warm = [await http.get("/api/jobs", params={"action": "stats"}) for _ in range(3)]
            assert [r.status_code for r in warm] == [200] * 3
            assert terminate(db, "supaworker:api") >= 1
            after = [await http.get("/api/jobs", params={"action": "stats"}) for _ in range(REQUESTS)]
            assert [r.status_code for r in after] == [200] * REQUESTS, [r.text for r in after if r.status_code != 200]
    finally:
        await server.stop()


async def test_worker_health_ping_survives_terminated_connections(db: str) -> None:
    pool = AsyncConnectionPool(
        db, min_size=3, max_size=3, kwargs={"autocommit": True, "application_name": "sw-ping"}, open=False
    )
    await pool.open(wait=True)
    try:
        store = WorkerStore(pool, SCHEMA)
        await store.ping(2)
        assert terminate(db, "sw-ping") == 3
        for _ in range(5):
            await store.ping(2)  # each dead connection is dropped on the way, never reported as unhealthy
    finally:
        await pool.close()
