"""A worker in the test's own event loop, on the test's database, with short intervals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from supaworker.cli.app import COMMAND_MODULES
from supaworker.db import ConnectionProfile
from supaworker.registry import Registry
from supaworker.worker.options import WorkerOptions
from supaworker.worker.runner import Worker

# The modules of every command but the worker's own (cli/running.py): a worker never needs them.
OTHER_COMMAND_MODULES = sorted({f"supaworker.cli.{name}" for name in COMMAND_MODULES.values() if name != "running"})

FAST = {
    "concurrency": 5,
    "poll_interval_seconds": 0.05,
    "job_timeout_seconds": 30.0,
    "lease_seconds": 30.0,
    "rescue_interval_seconds": 0.2,
    "retry_base_seconds": 0.05,
    "retry_cap_seconds": 0.2,
    "shutdown_grace_seconds": 5.0,
}


def make_worker(
    db: str, registry: Registry, *, listen: bool = True, worker_id: str | None = None, **options: Any
) -> Worker:
    return Worker(
        ConnectionProfile(db, transaction_pooler=not listen),
        "supaworker",
        registry,
        WorkerOptions(**{**FAST, **options}),
        worker_id=worker_id,
    )


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 30)


def job_row(db: str, job_id: int) -> dict[str, Any]:
    with psycopg.connect(db) as c, c.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()


def status_is(db: str, job_id: int, *statuses: str) -> Callable[[], bool]:
    return lambda: job_row(db, job_id)["status"] in statuses
