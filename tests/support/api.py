"""Helpers for the API tests: an app on the test's database, a real server on a free port, job moves in SQL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import uvicorn
from fastapi import FastAPI

from supaworker.api import ApiSettings, create_app
from supaworker.dashboard import add_dashboard
from supaworker.store import Store
from tests.support.waiting import wait_until

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def make_app(store: Store, db: str | None = None, **settings: Any) -> FastAPI:
    values: dict[str, Any] = {"api_keys": KEY, "public_reads": False, **settings}
    app = create_app(store, ApiSettings(**values), listen_conninfo=db)
    add_dashboard(app)
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Runs the app under uvicorn in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the test server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def count_jobs(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0]


def claim(conn: psycopg.Connection, worker: str = "worker-test-1") -> int:
    row = conn.execute("SELECT id FROM supaworker.claim_jobs(%s, NULL, 1, 60)", (worker,)).fetchone()
    assert row is not None, "no job to claim"
    return row[0]


def complete(conn: psycopg.Connection, job_id: int, worker: str = "worker-test-1") -> None:
    attempt = conn.execute("SELECT attempts FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()[0]
    done = conn.execute(
        "SELECT supaworker.complete_jobs(%s, ARRAY[%s]::bigint[], ARRAY[%s], ARRAY['{}'::jsonb])",
        (worker, job_id, attempt),
    ).fetchall()
    assert done, f"job {job_id} was not completed"


def fail(conn: psycopg.Connection, job_id: int, error: str, worker: str = "worker-test-1") -> None:
    status = conn.execute(
        "SELECT supaworker.fail_job(%s, %s, %s, NULL, 5, 60, false)", (job_id, worker, error)
    ).fetchone()[0]
    assert status == "failed"
