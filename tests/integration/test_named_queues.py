"""Named queues with slots of their own in one worker: a busy queue cannot starve another."""

from __future__ import annotations

import asyncio

import pytest

import supaworker
from supaworker.registry import Registry
from supaworker.store import Store
from supaworker.worker.options import WorkerOptions
from tests.support.waiting import wait_until_async
from tests.support.worker import FAST, make_worker, running, status_is


async def test_each_queue_runs_at_most_its_own_concurrency_and_a_full_queue_blocks_no_other(
    db: str, store: Store
) -> None:
    registry = Registry()
    release = asyncio.Event()
    current = {"images": 0, "default": 0}
    peak = dict(current)

    async def work(job: supaworker.Job) -> None:
        current[job.queue] += 1
        peak[job.queue] = max(peak[job.queue], current[job.queue])
        if job.queue == "images":
            await release.wait()
        else:
            await asyncio.sleep(0.01)
        current[job.queue] -= 1

    registry.register("work", work)
    images = supaworker.create_jobs([{"type": "work", "queue": "images"}] * 4, store=store)
    default = supaworker.create_jobs([{"type": "work"}] * 12, store=store)
    worker = make_worker(db, registry, queue_concurrency={"images": 1, "default": 3})
    async with running(worker):
        # The images queue's one slot is taken by a job that waits; the default queue drains regardless.
        await wait_until_async(lambda: all(status_is(db, i, "completed")() for i in default))
        assert sum(status_is(db, i, "processing")() for i in images) == 1
        release.set()
        await wait_until_async(lambda: all(status_is(db, i, "completed")() for i in images))
    assert peak == {"images": 1, "default": 3}


def test_queue_concurrency_sets_the_queues_and_total_slots() -> None:
    options = WorkerOptions(**{**FAST, "queue_concurrency": {"a": 2, "b": 5}})
    assert (list(options.queues or []), options.concurrency) == (["a", "b"], 7)
    with pytest.raises(ValueError, match="queue concurrency must be >= 1"):
        WorkerOptions(**{**FAST, "queue_concurrency": {"a": 0}})
