"""Keeps the leases of the jobs a worker holds, and fences the worker when it cannot.

Every third of the lease one statement extends the lease of every job the worker holds (running, claimed
ahead, or finished and not yet recorded). A job missing from the answer was lost (cancelled, or rescued
after a stall) and is stopped.

A lease is only as good as the worker's knowledge of it. Behind a silent partition a statement can hang for
as long as TCP retransmits (minutes), while another worker's rescuer hands the jobs on once their leases
run out. So the heartbeat runs as a task of its own that nothing waits for, and the keeper watches the
clock, counting from when the last successful renewal was sent (no later than the database started that
lease). After half a lease without one, it tries a new connection of its own, which renews the leases if
the server answers, and otherwise tells two outages apart:

- the server is down (it refused, or said it is stopping or starting): nobody can be handed these jobs
  while it is, and after it starts the rescuers wait a lease for their owners, so the jobs keep running
  and their leases are renewed when it returns;
- nothing answers: this worker may be cut off while the others are not. At 0.8 of a lease (or at once, if
  the new connection found nothing) it fences itself: its running jobs are stopped, it claims nothing, and
  it tries again every third of a lease. The first answer ends the fence.

A server just found down that then does not answer is most likely still coming back (a crash recovery, a
first connection slow on a loaded host), not a partition: for 0.8 of a lease after its last "down" answer the
keeper holds as if it were down. The rescuers cannot act sooner: the server waits a lease after it starts,
and a rescuer that had trouble waits until the database has answered it for a lease (maintenance/rescuer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from ..retry import TRANSIENT_ERRORS
from .protocol import Reachability, WorkerQueries

log = logging.getLogger("supaworker.worker")

# After this much of a lease without a renewal the keeper tries a connection of its own.
PROBE_AT_LEASE_FRACTION = 0.5
# ... and at this much, unless the server was found down, the worker fences itself: before the database's
# lease runs out (and before any rescuer could act), with room for the stop to take effect.
FENCE_AT_LEASE_FRACTION = 0.8


# One attempt of a job: (job id, attempt). A renewal names jobs by id, but what it finds lost is the attempt it
# was sent for: the same job, failed and claimed again by this worker while the renewal was in flight, is a
# new attempt that renewal knew nothing of, and must not be dropped with the old one.
Held = tuple[int, int]


class LeaseHolder(Protocol):
    """The worker whose leases the keeper keeps: what it holds, and what it does when they fail."""

    worker_id: str

    def held(self) -> list[Held]:
        """Every attempt the worker holds a lease on."""
        ...

    def leases_lost(self, lost: set[Held]) -> None:
        """Attempts the heartbeat no longer owns (rescued or cancelled)."""
        ...

    def fence(self, silent_seconds: float) -> None:
        """No lease renewed for most of a lease: stop the jobs, claim nothing."""
        ...

    def recover(self, fenced_seconds: float) -> None:
        """The database answered again after a fence."""
        ...

    def database_trouble(self) -> None:
        """A statement of the keeper's failed."""
        ...


class LeaseKeeper:
    def __init__(self, store: WorkerQueries, holder: LeaseHolder, lease_seconds: float) -> None:
        self.store = store
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self.renewed_at = time.monotonic()  # when the last successful renewal was sent
        # When the oldest renewal not yet answered was sent (None: none outstanding). A worker fences itself
        # only after asking: an event loop blocked by a handler is silence too, but the database is fine.
        self._asked_at: float | None = None
        self._floor = math.inf  # claims sent while a heartbeat was in flight: it does not cover their jobs
        self.fenced = False
        self._fenced_at = 0.0
        self.server_down = False  # the server was found refusing, and not reached since: hold, do not fence
        self._down_seen_at = -math.inf  # monotonic time a probe last found the server down
        self.recovered = asyncio.Event()
        self.recovered.set()
        self._now = asyncio.Event()  # something to look at now: a renewal asked for, or a task done
        self._renew_requested = False
        self._warned = False

    def renew_now(self) -> None:
        self._renew_requested = True
        self._now.set()

    def claimed(self, sent_at: float) -> None:
        """The claim sent at `sent_at` (monotonic) returned jobs: their leases began no earlier than that."""
        self.renewed_at = min(self.renewed_at, sent_at)
        self._floor = min(self._floor, sent_at)

    async def run(self) -> None:
        beat: asyncio.Task[None] | None = None
        probe: asyncio.Task[None] | None = None
        next_beat = next_probe = time.monotonic() + self.interval
        try:
            while True:
                wake = self._next_wake(time.monotonic(), next_beat, next_probe)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wake - time.monotonic())):
                        await self._now.wait()
                self._now.clear()
                now = time.monotonic()
                if now - wake > self.interval / 4 and self._asked_at is not None:
                    # The event loop itself was held up (a handler blocking it, a paused process): the
                    # database gets a fresh chance to answer before its silence counts.
                    self._asked_at = now
                if not self.fenced and (beat is None or beat.done()) and (self._renew_requested or now >= next_beat):
                    self._renew_requested = False
                    beat = self._task(self._beat(), "heartbeat")
                    next_beat = now + self.interval
                if (probe is None or probe.done()) and now >= next_probe and self._needs_probe(now):
                    probe = self._task(self._probe(), "lease-probe")
                    next_probe = now + self.interval
                self._check(now)
        finally:
            for task in (beat, probe):
                if task is not None:
                    task.cancel()

    def _task(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(lambda _: self._now.set())
        return task

    def _unanswered(self, now: float) -> bool:
        return self._asked_at is not None and now - self._asked_at >= self.interval / 2

    def _needs_probe(self, now: float) -> bool:
        if self.fenced:
            return True
        return bool(self.holder.held()) and now - self.renewed_at >= PROBE_AT_LEASE_FRACTION * self.lease_seconds

    def _next_wake(self, now: float, next_beat: float, next_probe: float) -> float:
        """The next moment something is due: a heartbeat, a probe, or the point to probe or fence at."""
        if self.fenced:
            return max(next_probe, now + 0.05)
        times = [next_beat]
        if self.holder.held():
            marks = [
                self.renewed_at + f * self.lease_seconds for f in (PROBE_AT_LEASE_FRACTION, FENCE_AT_LEASE_FRACTION)
            ]
            if self._asked_at is not None:
                marks.append(self._asked_at + self.interval / 2)
            times += [t for t in marks if t > now]
            if now >= marks[0]:
                times.append(max(next_probe, now + 0.05))
        return min(times)

    def _check(self, now: float) -> None:
        if self.fenced:
            return
        if not self.holder.held():
            self.renewed_at = max(self.renewed_at, min(now, self._floor))  # nothing to lose
            return
        silent = now - self.renewed_at
        if silent >= FENCE_AT_LEASE_FRACTION * self.lease_seconds and not self.server_down and self._unanswered(now):
            self._fence(silent)

    def _fence(self, silent: float) -> None:
        self.fenced, self._fenced_at = True, time.monotonic()
        self.recovered.clear()
        self.holder.database_trouble()
        self.holder.fence(silent)

    def _renewed(self, sent: float, held: list[Held], owned: set[int]) -> None:
        self.renewed_at = max(self.renewed_at, min(sent, self._floor))
        self._asked_at = None
        # Only attempts sent in this renewal: jobs claimed while it was in flight are not in `owned`.
        lost = {attempt for attempt in held if attempt[0] not in owned}
        if lost:
            self.holder.leases_lost(lost)

    def _ask(self) -> tuple[list[Held], list[int], float]:
        """The attempts a renewal is about to send, their job ids, and when it is sent (the oldest unanswered
        one is remembered)."""
        held = self.holder.held()
        ids = sorted({job_id for job_id, _ in held})
        sent = time.monotonic()
        self._floor = math.inf
        if ids and self._asked_at is None:
            self._asked_at = sent
        return held, ids, sent

    async def _beat(self) -> None:
        held, ids, sent = self._ask()
        if not ids:
            return
        try:
            owned = await self.store.heartbeat_jobs(self.holder.worker_id, ids, self.lease_seconds)
        except TRANSIENT_ERRORS as exc:
            self.holder.database_trouble()
            if not self._warned:
                log.warning("heartbeat failed", extra={"error": str(exc).strip(), "jobs": len(ids)})
                self._warned = True
            return
        self._warned = False
        if not self.fenced:
            self._renewed(sent, held, owned)

    async def _probe(self) -> None:
        """Renews over a connection of its own; says whether the server is down or out of reach."""
        held, ids, sent = self._ask()
        reach: Reachability
        reach, owned = await self.store.renew_directly(self.holder.worker_id, ids, self.lease_seconds, self.interval)
        if reach != "up":
            self.holder.database_trouble()
            if reach == "down":
                if not self.server_down:
                    log.warning(
                        "database down: running jobs keep going, their leases are renewed when it is back",
                        extra={"worker_id": self.holder.worker_id, "running": len(ids)},
                    )
                self.server_down, self._down_seen_at = True, time.monotonic()
            elif time.monotonic() - self._down_seen_at >= FENCE_AT_LEASE_FRACTION * self.lease_seconds:
                self.server_down = False  # silence long after the server was last seen down: maybe cut off
            if not self.server_down and not self.fenced and ids:
                self._fence(sent - self.renewed_at)
            return
        self.server_down = False
        if self.fenced:
            self.fenced = False
            self.renewed_at = sent
            self._asked_at = None
            self.recovered.set()
            self.holder.recover(time.monotonic() - self._fenced_at)
        self._renewed(sent, held, owned)
