"""Records in the database that a claimed-ahead job's handler is about to run, before it runs.

A worker claims more jobs than it has free slots (prefetch). If it dies, only the jobs whose handlers had
begun may be charged an attempt: the rescue hands the others back untouched. So a slot that takes a job
the claim did not already mark started waits for this record first. Slots that come free together share
one statement (group commit), and a job starts only once the record has committed: a job that kills its
worker is always charged, and one that never ran never is.
"""

from __future__ import annotations

import asyncio
import logging

from ..job import Job
from .protocol import TRANSIENT_ERRORS, WorkerQueries

log = logging.getLogger("supaworker.worker")

RETRY_DELAY_SECONDS = 0.5


class StartRecorder:
    def __init__(self, store: WorkerQueries, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self._waiting: list[tuple[Job, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self.statements = 0

    async def record(self, job: Job) -> bool:
        """Returns once the start is recorded: True if the job is still this worker's to run."""
        if job._start_recorded:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._waiting = self._waiting, []
            batch = [(job, f) for job, f in batch if not f.done()]  # a slot stopped while waiting
            if not batch:
                continue
            batch.sort(key=lambda item: item[0].id)  # every multi-row write of a worker locks in id order
            owned = await self._write([job for job, _ in batch])
            for job, future in batch:
                job._start_recorded = job.id in owned
                if not future.done():
                    future.set_result(job._start_recorded)

    async def _write(self, jobs: list[Job]) -> set[int]:
        ids, attempts = [job.id for job in jobs], [job.attempt for job in jobs]
        while True:
            try:
                self.statements += 1
                return await self.store.start_jobs(self.worker_id, ids, attempts)
            except TRANSIENT_ERRORS as exc:
                log.warning(
                    "recording job starts failed, retrying", extra={"error": str(exc).strip(), "jobs": len(ids)}
                )
                await asyncio.sleep(RETRY_DELAY_SECONDS)
