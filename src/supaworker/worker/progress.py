"""Writes the progress handlers report with `job.progress(percent, message)`.

Reports are coalesced per job (only the latest matters) and written in one fenced statement at most every
`PROGRESS_FLUSH_INTERVAL_SECONDS`, so a handler reporting in a tight loop costs one row update per
interval, and `job.progress()` never waits for the database. A job this worker no longer owns is simply
not updated.
"""

from __future__ import annotations

import asyncio
import logging

from ..job import Job
from ..retry import TRANSIENT_ERRORS
from .protocol import WorkerQueries

log = logging.getLogger("supaworker.worker")

PROGRESS_FLUSH_INTERVAL_SECONDS = 0.25


class ProgressWriter:
    """Collects progress reports from handlers and writes the latest of each job in batches."""

    def __init__(self, store: WorkerQueries, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self._pending: dict[int, tuple[int, float, str | None]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.written = 0

    def report(self, job: Job, percent: float, message: str | None) -> None:
        """Called from the handler, on the event loop or in a handler thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._add, job.id, job.attempt, percent, message)

    def _add(self, job_id: int, attempt: int, percent: float, message: str | None) -> None:
        self._pending[job_id] = (attempt, percent, message)
        self._wake.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            ids = sorted(batch)  # every multi-row write of a worker locks in id order
            try:
                written = await self.store.update_job_progress(
                    self.worker_id,
                    ids,
                    [batch[i][0] for i in ids],
                    [batch[i][1] for i in ids],
                    [batch[i][2] for i in ids],
                )
                self.written += len(written)
            except TRANSIENT_ERRORS as exc:
                # Put the reports back unless newer ones arrived meanwhile; the next flush retries them.
                log.warning("writing job progress failed", extra={"error": str(exc).strip(), "jobs": len(ids)})
                self._pending = {**batch, **self._pending}
                self._wake.set()
            await asyncio.sleep(PROGRESS_FLUSH_INTERVAL_SECONDS)
