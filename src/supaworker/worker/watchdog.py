"""Times out running jobs with one timer for all of them.

The timer is due at the nearest deadline and moved earlier only when a job due sooner starts: a timer per
job cost a fifth of the worker's time on short jobs. An async handler is cancelled at its deadline; a sync
handler's thread cannot be stopped, so it is told through `job.cancelled`, and the attempt is failed either
way.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterable

from .slots import RunningJob


class Watchdog:
    def __init__(self, running: Callable[[], Iterable[RunningJob]]) -> None:
        self._running = running
        self._due = math.inf  # when the watchdog next looks at the running jobs' deadlines
        self._sooner = asyncio.Event()

    def arm(self, running: RunningJob, deadline: float) -> None:
        """Starts the clock of a job whose handler is about to run (`deadline` in loop time)."""
        running.deadline = deadline
        if deadline < self._due:
            self._sooner.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now, due = loop.time(), math.inf
            for running in list(self._running()):
                if running.deadline <= now:
                    running.deadline, running.timed_out = math.inf, True
                    running.job.request_cancel()
                    running.stop()
                else:
                    due = min(due, running.deadline)
            self._due = due
            self._sooner.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(None if due == math.inf else due):
                    await self._sooner.wait()
