"""The threads that run plain `def` handlers: results and errors reach the loop, blocking handlers run side
by side, and a job stopped before its thread reached it never runs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from supaworker.worker.threads import HandlerThreads
from tests.support.waiting import wait_until_async


def _job(n: int) -> object:
    return n  # the handlers below take any value as their job


async def test_results_and_errors_come_back_to_the_loop() -> None:
    threads = HandlerThreads(3)

    def double(n: object) -> int:
        assert isinstance(n, int)
        if n < 0:
            raise ValueError("negative")
        return 2 * n

    try:
        done = await asyncio.gather(*(threads.run(double, _job(i)) for i in range(50)))  # type: ignore[arg-type]
        assert [value for value, _ in done] == [2 * i for i in range(50)]
        assert all(0 <= seconds < 10 for _, seconds in done)  # each call's own time
        with pytest.raises(ValueError, match="negative"):
            await threads.run(double, _job(-1))  # type: ignore[arg-type]
    finally:
        threads.shutdown()


async def test_blocking_handlers_run_side_by_side() -> None:
    threads = HandlerThreads(5)
    inside, most = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def blocks(_: object) -> None:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        release.wait(10)
        with lock:
            inside -= 1

    try:
        running = [threads.run(blocks, _job(i)) for i in range(5)]  # type: ignore[arg-type]
        await wait_until_async(lambda: threads.busy() == 5, "all five in their handler at once")
        release.set()
        await asyncio.gather(*running)
        assert most == 5 and threads.busy() == 0
    finally:
        threads.shutdown()


async def test_a_job_cancelled_before_its_thread_reached_it_never_runs() -> None:
    threads = HandlerThreads(1)
    release, ran = threading.Event(), []
    try:
        first = threads.run(lambda _: release.wait(10), _job(1))  # type: ignore[arg-type]
        second = threads.run(ran.append, _job(2))  # type: ignore[arg-type]
        second.cancel()  # a timeout or a cancel while it waited for the one thread
        release.set()
        await first
        await threads.run(lambda _: None, _job(3))  # type: ignore[arg-type]
        assert ran == []
    finally:
        threads.shutdown()
