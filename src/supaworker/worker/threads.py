"""Long-lived threads for plain `def` handlers, fed through one queue.

A sync handler runs in a thread so that it cannot hold up the event loop (heartbeats, claims, completions).
`loop.run_in_executor` pays for that per job: a concurrent Future chained to an asyncio one, and a write to
the loop's wake-up pipe for every job that finishes. Here a finished job's outcome is appended to a list,
and the loop is woken once for everything that finished meanwhile: under load, one wake-up serves a whole
turn of the slots. (Waking fewer threads and running short jobs back to back in one was tried: with the
GIL, a thread that waits for the loop to let go looks busy, and it was slower.)
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from ..job import Job

THREAD_NAME = "supaworker-job"

_Work = tuple["asyncio.Future[Any]", Callable[[Job], Any], Job]


class HandlerThreads:
    """`run(func, job)` calls `func(job)` in one of `size` threads and returns a future of its result."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._work: SimpleQueue[_Work | None] = SimpleQueue()
        self._finished: deque[tuple[asyncio.Future[Any], bool, Any]] = deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = 0

    def run(self, func: Callable[[Job], Any], job: Job) -> asyncio.Future[Any]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._threads = [
                threading.Thread(target=self._serve, name=f"{THREAD_NAME}-{i}", daemon=True) for i in range(self.size)
            ]
            for thread in self._threads:
                thread.start()
        future: asyncio.Future[Any] = self._loop.create_future()
        self._work.put((future, func, job))
        return future

    def busy(self) -> int:
        """Handlers running now (a sync handler cannot be interrupted: it may outlive the worker's stop)."""
        return self._busy

    def shutdown(self) -> None:
        """Lets every thread end after the work queued before (a job whose future was cancelled is skipped)."""
        for _ in self._threads:
            self._work.put(None)

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            future, func, job = work
            if future.cancelled():  # stopped (a timeout, a cancel, a lost lease) before it began
                continue
            with self._lock:
                self._busy += 1
            try:
                outcome = (True, func(job))
            except BaseException as exc:  # the loop side decides what an exception means
                outcome = (False, exc)
            with self._lock:
                self._busy -= 1
                self._finished.append((future, *outcome))
                if self._wake_pending:
                    continue
                self._wake_pending = True
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._settle)
            except RuntimeError:
                return  # the loop is closed: the worker has gone

    def _settle(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, deque()
            self._wake_pending = False
        for future, ok, value in finished:
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
