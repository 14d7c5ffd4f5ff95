"""Buffers completions and writes them in one fenced statement per batch.

While one batch is being written the next one gathers, so batches grow with load and a lone job is still
completed at once (group commit). The runner counts buffered jobs against its slots, which bounds how
many finished-but-unrecorded jobs a crash can make run again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from ..errors import DatabaseUnavailable
from ..job import Job
from .protocol import WorkerQueries

log = logging.getLogger("supaworker.worker")

MAX_BATCH = 1000
RETRY_DELAY_SECONDS = 0.5


@dataclass(slots=True)
class Completion:
    job: Job
    result: Any
    duration_seconds: float


class Completer:
    def __init__(self, store: WorkerQueries, worker_id: str, on_written: Callable[[], None]) -> None:
        self.store = store
        self.worker_id = worker_id
        self._on_written = on_written  # buffered jobs hold slots: tell the claim loop they are free
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

    def job_ids(self) -> list[int]:
        return [c.job.id for c in self._buffer] + [c.job.id for c in self._in_flight]

    def add(self, job: Job, result: Any, duration_seconds: float) -> None:
        self._buffer.append(Completion(job, result, duration_seconds))
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Waits until everything buffered has been written."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                self._in_flight, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
                await self._write(self._in_flight)
                self._in_flight = []
                self._on_written()
            self._idle.set()

    async def _write(self, batch: list[Completion]) -> None:
        ids = [c.job.id for c in batch]
        attempts = [c.job.attempt for c in batch]
        results = [c.result for c in batch]
        while True:
            try:
                done = await self.store.complete_jobs(self.worker_id, ids, attempts, results)
                break
            except (psycopg.OperationalError, PoolTimeout, DatabaseUnavailable) as exc:
                # Fencing makes the retry safe: a row that already committed is simply not matched again.
                log.warning("completing jobs failed, retrying", extra={"error": str(exc).strip(), "jobs": len(ids)})
                await asyncio.sleep(RETRY_DELAY_SECONDS)
        for c in batch:
            fields = {
                "job_id": c.job.id,
                "type": c.job.type,
                "attempt": c.job.attempt,
                "duration_ms": round(c.duration_seconds * 1000, 1),
            }
            if c.job.id in done:
                self.completed += 1
                log.info("job completed", extra=fields)
            else:
                self.rejected += 1
                log.warning("job completion rejected: this worker no longer owns the attempt", extra=fields)
