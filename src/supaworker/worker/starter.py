"""Records in the database how far a worker has started the jobs it claimed ahead, before it starts them.

A worker claims more jobs than it has free slots (prefetch). If it dies, only the jobs whose handlers had
begun may be charged an attempt: the rescue hands the others back untouched. Every claimed job has its
place in the worker's claim sequence, and the worker runs its claimed-ahead jobs strictly in that order,
so "started" is one number: a slot that takes the job at place n waits until "up to n" is recorded (unless
the claim already marked that job started, as it does for jobs that go straight to free slots). Slots
that come free together share one write, which rides with the claim loop's next round trip when one is
about to go, and a job starts only once it has committed: a job that kills its worker is always charged,
and one that never ran never is.

`start_ahead` > 0 records that many places further each time, so short jobs need not wait for a write
each: a crash may then charge up to that many jobs that had not begun.
"""

from __future__ import annotations

import asyncio
import logging

from ..job import Job
from .protocol import TRANSIENT_ERRORS, WorkerQueries

log = logging.getLogger("supaworker.worker")

RETRY_DELAY_SECONDS = 0.5


class StartRecorder:
    def __init__(self, store: WorkerQueries, worker_id: str, start_ahead: int = 0) -> None:
        self.store = store
        self.worker_id = worker_id
        self.start_ahead = start_ahead
        self.recorded_through = 0  # committed
        self._wanted_through = 0  # asked for by a slot (plus start_ahead)
        self._sent_through = 0  # handed to a write not yet settled
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self.writes = 0

    async def record(self, job: Job) -> None:
        """Returns once the database knows this job may start."""
        if job._start_recorded or job._claim_seq <= self.recorded_through:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((job._claim_seq, future))
        self._wanted_through = max(self._wanted_through, job._claim_seq + self.start_ahead)
        self._wake.set()
        await future

    def take(self) -> int | None:
        """Hands the place to record to the claim loop, which writes it with its next claim (None: nothing)."""
        if self._wanted_through <= max(self.recorded_through, self._sent_through):
            return None
        self._sent_through = self._wanted_through
        return self._wanted_through

    def settle(self, through: int | None) -> None:
        """`through` is committed: wakes every slot waiting for a place up to it."""
        if through is None:
            return
        self.recorded_through = max(self.recorded_through, through)
        waiting, self._waiting = self._waiting, []
        for seq, future in waiting:
            if seq <= self.recorded_through:
                if not future.done():
                    future.set_result(None)
            else:
                self._waiting.append((seq, future))

    def give_back(self, through: int | None) -> None:
        """A place the claim loop could not write: written here instead."""
        if through is not None:
            self._sent_through = self.recorded_through
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # One turn of the loop first: a claim about to go out takes this along (one round trip for both).
            await asyncio.sleep(0)
            through = self.take()
            if through is not None:
                await self._write(through)
                self.settle(through)

    async def _write(self, through: int) -> None:
        while True:
            try:
                self.writes += 1
                await self.store.record_job_starts(self.worker_id, through)
                return
            except TRANSIENT_ERRORS as exc:
                log.warning("recording job starts failed, retrying", extra={"error": str(exc).strip()})
                await asyncio.sleep(RETRY_DELAY_SECONDS)
