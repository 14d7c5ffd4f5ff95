"""Long-lived threads for plain `def` handlers, as many awake as the handlers need.

A sync handler runs in a thread so that it cannot hold up the event loop (heartbeats, claims, completions).
Handing each job to a thread of its own costs more than a short handler itself: a thread wake-up, a write to
the loop's wake-up pipe, and with the GIL, threads that take turns. So:

- jobs wait in one list, and one thread takes them back to back for as long as there are any;
- handlers that block (I/O, sleep) get more threads, up to `size`: at once when the recent calls took
  `BLOCKING_CALL_SECONDS` or more on average, and otherwise, a thread for each waiting job, once every running
  call has been in its handler for `GROW_AFTER_SECONDS` (calls that block for the first time);
- finished jobs go back to the loop in one wake-up for everything that finished meanwhile.

With no-op handlers one thread drains a worker's jobs at about 0.9 of the rate of `async def` handlers; ten
threads taking turns drained them at 0.6 (bench/worker_cost.py --handler def).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..job import Job

THREAD_NAME = "supaworker-job"
# A call this long is a handler that blocks rather than one that lost its turn at the GIL (5 ms at most).
GROW_AFTER_SECONDS = 0.02
BLOCKING_CALL_SECONDS = 0.001
SMOOTHING = 0.1  # weight of the newest call in the average duration

_Work = tuple["asyncio.Future[Any]", Callable[[Job], Any], Job]


class HandlerThreads:
    """`run(func, job)` calls `func(job)` in one of at most `size` threads; returns a future of its result and
    how long the call took (the handler's own time, not the wait for a thread)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[_Work] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work
        self._calls: dict[int, float] = {}  # thread number -> when its running call began
        self._average_call = 0.0
        self._stopping = False
        self._finished: deque[tuple[asyncio.Future[Any], bool, Any]] = deque()
        self._settle_pending = False
        self._check_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, func: Callable[[Job], Any], job: Job) -> asyncio.Future[Any]:
        loop = self._loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._queue.append((future, func, job))
            if self._idle == len(self._threads) or self._blocking():
                self._add_thread()  # nobody at work to take it, or handlers that block: one more
        if not self._check_pending:
            self._check_pending = True
            loop.call_later(GROW_AFTER_SECONDS, self._check_stalled)
        return future

    def busy(self) -> int:
        """Handlers running now (a sync handler cannot be interrupted: it may outlive the worker's stop)."""
        return len(self._calls)

    def shutdown(self) -> None:
        """Lets every thread end once its current call returned; jobs not yet begun are dropped."""
        with self._lock:
            self._stopping = True
            self._queue.clear()
            self._wake.notify_all()

    def _blocking(self) -> bool:
        return self._average_call >= BLOCKING_CALL_SECONDS

    def _add_thread(self, wanted: int = 1) -> None:
        """`wanted` more threads at work (the lock is held): waiting ones, then new ones while fewer than `size`.
        A thread started but not yet at its first job counts as at work already."""
        woken = min(wanted, self._idle)
        for _ in range(woken):
            self._wake.notify()
        starting = len(self._threads) - self._idle - len(self._calls)
        for _ in range(min(wanted - woken - max(starting, 0), self.size - len(self._threads))):
            number = len(self._threads)
            thread = threading.Thread(target=self._serve, args=(number,), name=f"{THREAD_NAME}-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _check_stalled(self) -> None:
        """On the loop: jobs still wait while every running call has gone on for long: one more thread."""
        self._check_pending = False
        with self._lock:
            if not self._queue or self._stopping:
                return
            now = time.monotonic()
            if self._calls and all(now - began >= GROW_AFTER_SECONDS for began in self._calls.values()):
                self._add_thread(len(self._queue))  # handlers that block: a thread for each job waiting
        self._check_pending = True
        assert self._loop is not None
        self._loop.call_later(GROW_AFTER_SECONDS, self._check_stalled)

    def _serve(self, number: int) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._idle += 1
                    self._wake.wait()
                    self._idle -= 1
                if self._stopping:
                    return
                future, func, job = self._queue.popleft()
                if future.cancelled():  # stopped (a timeout, a cancel, a lost lease) before it began
                    continue
                if self._queue and self._blocking():
                    self._add_thread()
                began = self._calls[number] = time.monotonic()
            try:
                value = func(job)
                outcome: tuple[bool, Any] = (True, (value, time.monotonic() - began))
            except BaseException as exc:  # the loop side decides what an exception means
                outcome = (False, exc)
            with self._lock:
                del self._calls[number]
                self._average_call += SMOOTHING * (time.monotonic() - began - self._average_call)
                self._finished.append((future, *outcome))
                if self._settle_pending:
                    continue
                self._settle_pending = True
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._settle)
            except RuntimeError:
                return  # the loop is closed: the worker has gone

    def _settle(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, deque()
            self._settle_pending = False
        for future, ok, value in finished:
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
