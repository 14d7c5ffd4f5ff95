"""Watches the worker's side tasks (heartbeat, completer, rescuer, listener, slots, services).

Each of them runs until the worker stops. One that ends early, by an error or by returning, leaves the
worker unable to keep its promises: without its heartbeat it would keep claiming jobs whose leases nobody
renews; without its completer, finished jobs would never be recorded. So the monitor stops the worker, and
the worker exits non-zero, for its supervisor (systemd, Kubernetes, `--processes`) to start it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("supaworker.worker")


class TaskMonitor:
    """Starts tasks and calls `on_death(name, error)` for one that ends on its own while `stopping()` is false
    (once the worker stops, its slots end by themselves)."""

    def __init__(self, on_death: Callable[[str, BaseException | None], None], stopping: Callable[[], bool]) -> None:
        self._on_death = on_death
        self._stopping = stopping
        self.tasks: list[asyncio.Task[Any]] = []
        self._closing = False

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self.watch(asyncio.create_task(coro, name=name))

    def watch(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        task.add_done_callback(self._done)
        self.tasks.append(task)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        if self._closing or task.cancelled() or self._stopping():
            return
        error = task.exception()
        if error is not None:
            log.error(
                "worker task died, stopping the worker",
                extra={"task": task.get_name(), "error": f"{type(error).__name__}: {error}"},
                exc_info=error,
            )
        else:
            log.error("worker task ended unexpectedly, stopping the worker", extra={"task": task.get_name()})
        self._on_death(task.get_name(), error)

    async def close(self) -> None:
        """Cancels every task and waits for them (their ends are expected now)."""
        self._closing = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
