"""Keeps the leases of the jobs a worker holds, and fences the worker when it cannot.

Every third of the lease one statement extends the lease of every job the worker holds (running, claimed
ahead, or finished and not yet recorded). A job missing from the answer was lost (cancelled, or rescued
after a stall) and is stopped.

A lease is only as good as the worker's knowledge of it. Behind a silent partition a statement can hang for
as long as TCP retransmits (minutes), while the rescuer of another worker hands the jobs on once their
leases run out. So the heartbeat runs as a task of its own that nothing waits for, and the keeper watches
the clock: once no renewal has succeeded for most of a lease (counted from when the last successful one was
sent, which is no later than the database's own clock started the lease), the worker fences itself: its
running jobs are stopped, it claims nothing, and it asks the database every third of a lease whether it is
back. The first answer ends the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from .protocol import TRANSIENT_ERRORS, WorkerQueries

log = logging.getLogger("supaworker.worker")

# The worker fences itself this far into a lease that it could not renew: before the database's lease runs
# out (and before any rescuer could act), with room for the stop to take effect.
FENCE_AT_LEASE_FRACTION = 0.8


class LeaseKeeper:
    def __init__(
        self,
        store: WorkerQueries,
        worker_id: str,
        lease_seconds: float,
        held: Callable[[], list[int]],
        on_lost: Callable[[set[int]], None],
        on_fence: Callable[[float], None],
        on_recover: Callable[[float], None],
        on_trouble: Callable[[], None],
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self._held = held
        self._on_lost = on_lost
        self._on_fence = on_fence
        self._on_recover = on_recover
        self._on_trouble = on_trouble
        self.renewed_at = time.monotonic()  # when the last successful renewal was sent
        self._floor = math.inf  # claims sent while a heartbeat was in flight: it does not cover their jobs
        self.fenced = False
        self._fenced_at = 0.0
        self.recovered = asyncio.Event()
        self.recovered.set()
        self._now = asyncio.Event()
        self._warned = False

    def renew_now(self) -> None:
        self._now.set()

    def claimed(self, sent_at: float) -> None:
        """The claim sent at `sent_at` (monotonic) returned jobs: their leases began no earlier than that."""
        self.renewed_at = min(self.renewed_at, sent_at)
        self._floor = min(self._floor, sent_at)

    async def run(self) -> None:
        beat: asyncio.Task[None] | None = None
        next_beat = time.monotonic() + self.interval
        try:
            while True:
                deadline = min(next_beat, self._fence_deadline())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await self._now.wait()
                early = self._now.is_set()
                self._now.clear()
                now = time.monotonic()
                if (beat is None or beat.done()) and (early or now >= next_beat):
                    beat = asyncio.create_task(self._beat(), name="heartbeat")
                    beat.add_done_callback(lambda _: self._now.set())
                    next_beat = now + self.interval
                self._check(now)
        finally:
            if beat is not None:
                beat.cancel()

    def _fence_deadline(self) -> float:
        if self.fenced:
            return math.inf
        return self.renewed_at + FENCE_AT_LEASE_FRACTION * self.lease_seconds

    def _check(self, now: float) -> None:
        if self.fenced:
            return
        if not self._held():
            self.renewed_at = max(self.renewed_at, min(now, self._floor))  # nothing to lose
            return
        silent = now - self.renewed_at
        if silent >= FENCE_AT_LEASE_FRACTION * self.lease_seconds:
            self.fenced, self._fenced_at = True, now
            self.recovered.clear()
            self._on_trouble()
            self._on_fence(silent)

    async def _beat(self) -> None:
        if self.fenced:
            await self._probe()
            return
        ids = sorted(self._held())
        sent = time.monotonic()
        self._floor = math.inf
        if not ids:
            return
        try:
            owned = await self.store.heartbeat_jobs(self.worker_id, ids, self.lease_seconds)
        except TRANSIENT_ERRORS as exc:
            self._on_trouble()
            if not self._warned:
                log.warning("heartbeat failed", extra={"error": str(exc).strip(), "jobs": len(ids)})
                self._warned = True
            return
        self._warned = False
        if not self.fenced:
            self.renewed_at = max(self.renewed_at, min(sent, self._floor))
        # Only ids sent in this heartbeat: jobs claimed while it was in flight are not in `owned`.
        lost = set(ids) - owned
        if lost:
            self._on_lost(lost)

    async def _probe(self) -> None:
        try:
            async with asyncio.timeout(self.interval):
                await self.store.ping(self.interval)
        except (*TRANSIENT_ERRORS, TimeoutError):
            return
        now = time.monotonic()
        self.fenced = False
        self.renewed_at = now
        self.recovered.set()
        self._on_recover(now - self._fenced_at)
