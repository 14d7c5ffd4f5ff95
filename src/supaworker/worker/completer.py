"""Buffers completions and writes them in one fenced statement per batch.

While one batch is being written the next one gathers, so batches grow with load and a lone job is still
completed at once (group commit). The claim loop carries a few with its claim and leaves a bigger batch to
run() here, beside the claim; it counts what is not yet written beyond a prefetch's worth against its slots,
which bounds how many finished-but-unrecorded jobs a crash can make run again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..job import Job
from ..retry import Backoff, retry_transient
from .protocol import Completions, WorkerQueries

log = logging.getLogger("supaworker.worker")

MAX_BATCH = 1000
RETRY_DELAY_SECONDS = 0.5
# How long a completion may wait for the claim loop to carry it (one round trip for both) before it is
# written on its own.
LINGER_SECONDS = 0.002


@dataclass(slots=True)
class Completion:
    job: Job
    result: Any
    duration_seconds: float


class Completer:
    def __init__(
        self,
        store: WorkerQueries,
        worker_id: str,
        on_written: Callable[[], None],
        on_written_alone: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self._on_written = on_written  # buffered jobs hold slots: tell the claim loop they are free
        # A batch written in a transaction of its own, which a claim running beside it did not see: the jobs
        # it completed may have been counted against a limit that is free now.
        self._on_written_alone = on_written_alone
        self._buffer: list[Completion] = []
        self._in_flight: list[Completion] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.completed = 0
        self.rejected = 0

    @property
    def backlog(self) -> int:
        return len(self._buffer) + len(self._in_flight)

    def held(self) -> list[tuple[int, int]]:
        """(job id, attempt) of every completion not yet recorded."""
        return [(c.job.id, c.job.attempt) for c in self._buffer + self._in_flight]

    def add(self, job: Job, result: Any, duration_seconds: float) -> None:
        self._buffer.append(Completion(job, result, duration_seconds))
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Waits until everything buffered has been written."""
        await self._idle.wait()

    def take(self) -> list[Completion]:
        """Hands the buffered completions to the claim loop, which writes them with its next claim."""
        batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
        self._in_flight += batch
        return batch

    def settle(self, batch: list[Completion], done: set[int]) -> None:
        """Records the outcome of a written batch (by the claim loop or by run())."""
        self._drop_in_flight(batch)
        self._report(batch, done)
        self._on_written()
        if not self._buffer and not self._in_flight:
            self._idle.set()

    def give_back(self, batch: list[Completion]) -> None:
        """A batch the claim loop could not write: written again here (fencing makes the retry safe)."""
        self._drop_in_flight(batch)
        self._buffer = batch + self._buffer
        self._wake.set()

    def _drop_in_flight(self, batch: list[Completion]) -> None:
        taken = {id(c) for c in batch}
        self._in_flight = [c for c in self._in_flight if id(c) not in taken]

    @staticmethod
    def as_columns(batch: list[Completion]) -> Completions:
        # In id order, as the heartbeat locks the same rows: two orders deadlocked a worker with itself.
        ordered = sorted(batch, key=lambda c: c.job.id)
        return [c.job.id for c in ordered], [c.job.attempt for c in ordered], [c.result for c in ordered]

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(LINGER_SECONDS)
            while self._buffer:
                batch = self.take()
                self.settle(batch, await self._write(batch))
                self._on_written_alone()

    async def _write(self, batch: list[Completion]) -> set[int]:
        ids, attempts, results = self.as_columns(batch)
        # Fencing makes a retry safe: a row that already committed is simply not matched again.
        return await retry_transient(
            lambda: self.store.complete_jobs(self.worker_id, ids, attempts, results),
            what="completing jobs",
            log=log,
            extra={"jobs": len(ids)},
            backoff=Backoff(RETRY_DELAY_SECONDS, RETRY_DELAY_SECONDS),
        )

    def _report(self, batch: list[Completion], done: set[int]) -> None:
        verbose = log.isEnabledFor(logging.INFO)
        for c in batch:
            if c.job.id in done:
                self.completed += 1
                if not verbose:
                    continue
            fields = {
                "job_id": c.job.id,
                "type": c.job.type,
                "attempt": c.job.attempt,
                "duration_ms": round(c.duration_seconds * 1000, 1),
            }
            if c.job.id in done:
                log.info("job completed", extra=fields)
            else:
                self.rejected += 1
                log.warning("job completion rejected: this worker no longer owns the attempt", extra=fields)
