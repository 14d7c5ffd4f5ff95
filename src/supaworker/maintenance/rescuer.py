"""Hands the jobs of dead workers on: a `processing` job whose lease ran out goes back to `pending` (with
backoff) or to `failed` when its attempts are used up.

Every worker runs a rescuer (the statement is cheap and skips rows another rescuer holds). A rescue charges
an attempt only to a job whose handler had started; one that was merely claimed ahead goes back uncharged
(see `record_job_starts` in `sql/schema.sql`). The database side also waits a lease after the server
started, and of the rescuing worker's own jobs takes only the expired ones it does not hold (a claim whose
answer it lost, an outcome it could not write), by the same rule; this side adds the worker's own view: after
trouble of its own a rescuer cannot tell a dead worker from one cut off as it was, so it rescues only once
the database has answered it for a whole lease, and a fenced worker rescues nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..retry import TRANSIENT_ERRORS
from ..worker.protocol import RetryDelays, WorkerQueries

log = logging.getLogger("supaworker.worker")

RESCUE_BATCH_SIZE = 1000


@dataclass(frozen=True)
class RescuerConfig:
    interval_seconds: float
    lease_seconds: float  # also the grace owners get after the server or this rescuer had trouble
    delays: RetryDelays
    batch_size: int = RESCUE_BATCH_SIZE


class Rescuer:
    """`run_once()` rescues up to a batch and returns how many jobs were charged and retried (`retried`),
    failed for good (`failed`) and handed back uncharged (`handed_back`)."""

    def __init__(
        self,
        store: WorkerQueries,
        worker_id: str,
        config: RescuerConfig,
        held: Callable[[], list[int] | None] = lambda: None,
    ) -> None:
        """`held()`: the ids of the jobs the worker holds (what its heartbeat renews); None leaves its own
        jobs alone."""
        self.store = store
        self.worker_id = worker_id
        self.config = config
        self.held = held

    async def run_once(self) -> dict[str, int]:
        c = self.config
        rescued = await self.store.rescue_expired_jobs(
            worker_id=self.worker_id,
            held=self.held(),
            limit=c.batch_size,
            delays=c.delays,
            grace_seconds=c.lease_seconds,
        )
        counts = {"retried": 0, "failed": 0, "handed_back": 0}
        handed_back: list[int] = []
        not_held: list[int] = []
        for job_id, job_type, attempts, status, dead_worker, started in rescued:
            if dead_worker == self.worker_id:
                not_held.append(job_id)
            if not started:
                handed_back.append(job_id)
                continue
            counts["failed" if status == "failed" else "retried"] += 1
            log.warning(
                "job rescued from a dead worker" if dead_worker != self.worker_id else "job rescued from this worker",
                extra={
                    "job_id": job_id,
                    "type": job_type,
                    "attempt": attempts,
                    "status": status,
                    "dead_worker": dead_worker,
                },
            )
        counts["handed_back"] = len(handed_back)
        if not_held:
            log.warning(
                "expired jobs of this worker that it no longer held (its claim's answer lost, or an outcome not "
                "written) rescued",
                extra={"jobs": len(not_held), "ids": not_held[:20]},
            )
        if handed_back:
            log.warning(
                "jobs a dead worker had claimed but not started handed back, uncharged",
                extra={"jobs": len(handed_back), "ids": handed_back[:20]},
            )
        return counts

    async def run(
        self,
        *,
        paused: Callable[[], bool],
        last_trouble: Callable[[], float],
        on_trouble: Callable[[], None],
        on_rescued: Callable[[], None],
    ) -> None:
        """Rescues every interval until cancelled, except while `paused()` (the worker is fenced) and until the
        database has answered this worker for a whole lease since its last trouble (`last_trouble()`: monotonic
        time this worker last failed to reach it). Meanwhile it looks every interval with a ping: counting a
        lease from the last failure alone, a rescuer that did not look while the database stayed away (it
        holds off without statements) rescued the moment it came back, before live workers could renew."""
        answering_since = -math.inf  # since when every look found the database answering; none yet failed
        trouble_seen = last_trouble()
        while True:
            await asyncio.sleep(self.config.interval_seconds)
            if paused():
                continue
            if last_trouble() > trouble_seen:
                trouble_seen, answering_since = last_trouble(), math.inf
            try:
                if time.monotonic() - answering_since < self.config.lease_seconds:
                    await self.store.ping(self.config.interval_seconds)
                    answering_since = min(answering_since, time.monotonic())
                    continue
                counts = await self.run_once()
            except TRANSIENT_ERRORS as exc:
                on_trouble()  # a new last_trouble(): the next look starts the count again
                log.warning("rescue failed", extra={"error": str(exc).strip()})
                continue
            if any(counts.values()):
                on_rescued()
