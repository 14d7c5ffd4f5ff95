"""A worker whose side task dies stops itself (and says why) instead of claiming on without it."""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
import pytest

import supaworker
from supaworker.registry import Registry
from supaworker.store import Store
from tests.support.waiting import wait_until_async
from tests.support.worker import job_row, make_worker

STOP_BOUND_SECONDS = 20  # only bounds a broken test; the worker stops as soon as it notices


class DyingService:
    """A worker service that fails after a moment, as a maintenance loop with a bug would."""

    name = "dying-service"

    async def run(self) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("the service broke")


def slow(job: supaworker.Job) -> str:
    time.sleep(0.5)
    return "done"


async def test_a_dead_service_stops_the_worker_and_its_running_job_is_not_lost(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("slow", slow)
    job = supaworker.create_job("slow", store=store)
    worker = make_worker(db, registry)
    worker.services.append(DyingService())
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(task, STOP_BOUND_SECONDS)  # returns by itself: nobody asked it to stop
    assert worker.failure is not None and "dying-service" in worker.failure and "the service broke" in worker.failure
    # The job it was running finished within the grace period (or went back to the queue): never stranded.
    assert job_row(db, job.id)["status"] in ("completed", "pending")


async def test_a_dead_heartbeat_stops_the_worker_before_it_claims_more(db: str, store: Store) -> None:
    registry = Registry()
    registry.register("slow", slow)
    worker = make_worker(db, registry, concurrency=1, prefetch=0)

    async def heartbeat_that_dies() -> None:
        await asyncio.sleep(0.1)
        raise psycopg.ProgrammingError("heartbeat broke")

    worker.leases.run = heartbeat_that_dies  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(task, STOP_BOUND_SECONDS)
    assert worker.failure is not None and "leases" in worker.failure
    # Jobs enqueued after it stopped stay for a healthy worker.
    later = supaworker.create_job("slow", store=store)
    await asyncio.sleep(0.2)
    assert job_row(db, later.id)["status"] == "pending"


async def test_a_stop_that_was_asked_for_is_not_a_failure(
    db: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()
    registry.register("slow", slow)
    job = supaworker.create_job("slow", store=store)
    worker = make_worker(db, registry)
    task = asyncio.create_task(worker.run())
    await wait_until_async(lambda: job_row(db, job.id)["status"] == "completed")
    worker.request_stop()
    await asyncio.wait_for(task, STOP_BOUND_SECONDS)
    assert worker.failure is None
    # Its slots ended by themselves once it stopped: nothing to report.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
