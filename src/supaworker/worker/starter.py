"""Records in the database how far a worker has started the jobs it claimed ahead.

A worker claims more jobs than it has free slots (prefetch). If it dies, only the jobs whose handlers had
begun may be charged an attempt: the rescue hands the others back untouched. Every claimed job has its
place in the worker's claim sequence, and the worker runs its claimed-ahead jobs strictly in that order,
so "started" is one number, "up to n", written with the claim loop's next round trip (completions, this
mark and the next claim travel together) or on its own when no claim is about to go.

A slot does not wait for that write, so a job that kills its worker within a round trip of starting goes
back uncharged; the rescue then marks it handed back, and a job so marked waits for the write before it
starts: a job that kills its worker is charged at least every other time, and cannot loop forever.
"""

from __future__ import annotations

import asyncio
import logging

from ..job import Job
from ..retry import Backoff, retry_transient
from .protocol import WorkerQueries

log = logging.getLogger("supaworker.worker")

RETRY_DELAY_SECONDS = 0.5


class StartRecorder:
    """Keeps the place in the claim sequence up to which this worker's jobs have started, and gets it written
    with the claim loop's next round trip or, when none is about to go, on its own."""

    def __init__(self, store: WorkerQueries, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self.recorded_through = 0  # committed
        self._wanted_through = 0  # the last place a slot started (or is about to)
        self._sent_through = 0  # handed to a write not yet settled
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self.writes = 0

    async def record(self, job: Job) -> None:
        """Marks the job as started; waits for the write only for a job that was handed back before."""
        if job._start_recorded or job._claim_seq <= self.recorded_through:
            return
        self._wanted_through = max(self._wanted_through, job._claim_seq)
        self._wake.set()
        if not job._record_start_first:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((job._claim_seq, future))
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
        async def write() -> None:
            self.writes += 1
            await self.store.record_job_starts(self.worker_id, through)

        await retry_transient(
            write, what="recording job starts", log=log, backoff=Backoff(RETRY_DELAY_SECONDS, RETRY_DELAY_SECONDS)
        )
