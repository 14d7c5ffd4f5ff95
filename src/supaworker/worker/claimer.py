"""The claim loop: how many jobs to claim and when, with a few buffered completions and the start marks riding
along in the same round trip.

A worker claims its free capacity (slots plus prefetch) in batches, never one job at a time while it still
has work queued; waits for a NOTIFY (or the poll interval) when the queue ran short; claims nothing while
fenced; and with named queues claims each queue's free slots separately.

A claim carries the buffered completions only while they are few (a slot's worth), or after a claim that came
back short: one round trip and one commit for both. A bigger batch, while the queue has more than the worker
takes, is the completer's to write on a connection of its own while the claim runs: two server backends at
work instead of one, where short jobs spend their time (a drain of no-op jobs went from about 19,500 to 25,000
jobs a second; see bench/worker_cost.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import psycopg

from ..job import Job
from ..retry import TRANSIENT_ERRORS, Backoff
from .lease import LeaseKeeper
from .options import WorkerOptions
from .prefetch import Prefetch
from .protocol import ClaimRequest, WorkerQueries
from .records import Recorders
from .slots import Slots

RESULT_SHAPE_CHANGED = "does not match function result type"

log = logging.getLogger("supaworker.worker")

# A claim that found at least this many jobs, but fewer than it wanted, shows a flow of them: the worker looks
# again this soon by itself, and nobody notifies a worker that does not wait.
FLOW_JOBS = 2
ACTIVE_POLL_SECONDS = 0.002
# How long a worker's "I wait" holds, in poll intervals (renewed at each), plus a margin for a slow round trip.
WAITING_FOR_POLLS = 2
WAITING_MARGIN_SECONDS = 1.0
# An idle worker with rate-limited types looks again a window after its last look (nothing tells it a window
# opened), this much later for the database's clock, and never more often than every RATE_LOOK_MIN_SECONDS.
RATE_LOOK_MARGIN_SECONDS = 0.005
RATE_LOOK_MIN_SECONDS = 0.01
# ... for this many windows after it last claimed jobs of such a type (then at its poll interval again).
RATE_LOOK_WINDOWS = 2


class Claimer:
    def __init__(
        self,
        store: WorkerQueries,
        worker_id: str,
        types: list[str],
        options: WorkerOptions,
        *,
        slots: Slots,
        prefetch: Prefetch,
        records: Recorders,
        leases: LeaseKeeper,
        stopping: asyncio.Event,
        wakeup: asyncio.Event,
        slot_freed: asyncio.Event,
        release: Callable[[list[Job]], Awaitable[None]],
        on_trouble: Callable[[], None],
        listen: bool,
        on_first_claim: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.types = types
        self.rate_windows: dict[str, float] = {}  # type -> seconds of its rate window (job_controls)
        self._metered_until = 0.0  # monotonic time until which a claim may have met a spent rate window
        self.options = options
        self.slots = slots
        self.prefetch = prefetch
        self.completer = records.completions  # completions and starts go beside each claim
        self.starter = records.starts
        self.leases = leases
        self._stopping = stopping
        self._wakeup = wakeup  # set by NOTIFY, a rescue, or a recovery: there may be work
        self._slot_freed = slot_freed  # set when capacity came free
        self._release = release
        self._on_trouble = on_trouble
        self.listen = listen  # NOTIFY reaches this worker (else it polls)
        self._on_first_claim = on_first_claim  # called once the first claim is answered or has failed
        self.waiting = False  # said it waits for a NOTIFY (see _ran_short)
        self._renew_waiting_at = 0.0
        self.claim_seq = 0  # places in this worker's claim sequence given out so far
        self.came_back_short = False  # the last claim found fewer jobs than it asked for (see _claim)
        self.to_release: list[Job] = []  # claimed, never started, dropped while fenced: handed back after

    async def run(self) -> None:
        """Claims until the worker stops."""
        backoff = Backoff()
        while not self._stopping.is_set():
            if self.leases.fenced:
                await self._wait_unfenced()
                continue
            if self.to_release:
                released, self.to_release = self.to_release, []
                await self._release(released)
            self._slot_freed.clear()
            if self.options.queue_concurrency:
                targets = self._queue_targets(self._held())
            else:
                want = self.want()
                targets = [(self.options.queues, want)] if want else []
            if not targets:
                await self._slot_freed.wait()
                continue
            self._wakeup.clear()
            try:
                short, claimed = await self._claim_targets(targets)
                self.came_back_short = short
                backoff.reset()
                if short:
                    await self._ran_short(claimed)
                elif self.waiting:
                    await self.stop_waiting()  # it has all it can take: no enqueue needs to notify it
            except TRANSIENT_ERRORS as exc:
                self._on_trouble()
                delay = backoff.next()
                log.warning("claiming failed, retrying", extra={"error": str(exc).strip(), "retry_in": delay})
                await self._sleep_unless_stopping(delay)
            except psycopg.errors.DatatypeMismatch as exc:
                # A claim that began while a migration added columns to `jobs` fails when the migration
                # commits: its SETOF jobs result took the table's shape at the call. Nothing was claimed (the
                # completions sent with it go back to the completer); the next claim has the new shape.
                if RESULT_SHAPE_CHANGED not in str(exc):
                    raise
                delay = backoff.next()  # paced like any retry, should it ever come back every time
                log.warning("the jobs table changed under a claim (a migration ran): claiming again",
                            extra={"retry_in": delay})  # fmt: skip
                await self._sleep_unless_stopping(delay)

    async def _claim_targets(self, targets: list[tuple[Sequence[str] | None, int]]) -> tuple[bool, int]:
        """Claims for each (queues, how many) and hands the jobs to the slots: whether any came back short, and
        how many jobs in all. The first call, answered or failed, calls `on_first_claim`."""
        short, claimed = False, 0
        try:
            for queues, want in targets:
                jobs = await self._claim(want, queues)
                if jobs:
                    self.slots.add(jobs)
                short, claimed = short or len(jobs) < want, claimed + len(jobs)
        finally:
            if self._on_first_claim is not None:
                # After the jobs went to their slots: they start before whatever this starts.
                first, self._on_first_claim = self._on_first_claim, None
                first()
        return short, claimed

    async def _ran_short(self, claimed: int) -> None:
        """The queue had less than this worker wanted: how to wait for more.

        Enqueues NOTIFY only workers that said they wait (see `wait_for_jobs` in sql/schema.sql). A claim that
        found several jobs shows a flow of them: the worker takes back its word and looks again soon by itself,
        so that busy producers skip the NOTIFY (and the commit-time lock it takes). One that found none or one
        says it waits, claims once more (a job inserted just before that was said drew no NOTIFY) and then
        sleeps until a NOTIFY or the poll interval, renewing what it said once per interval."""
        poll = self._poll_interval()
        renew_every = self.options.poll_interval_seconds
        if not self.listen:
            await self._wait_for_work(poll)  # behind a transaction pooler polling is all there is
        elif claimed >= FLOW_JOBS:
            if self.waiting:
                await self.stop_waiting()
            await self._wait_for_work(min(poll, ACTIVE_POLL_SECONDS))
        elif time.monotonic() >= self._renew_waiting_at:
            await self.store.wait_for_jobs(self.worker_id, WAITING_FOR_POLLS * renew_every + WAITING_MARGIN_SECONDS)
            self.waiting, self._renew_waiting_at = True, time.monotonic() + renew_every
        else:
            await self._wait_for_work(poll)

    def follow_rate_windows(self, windows: dict[str, float]) -> None:
        """The rate windows of every type (from job_controls). Until a window or two has passed, looks again at
        that pace: jobs claimed before they were known (at start) may already have met one."""
        self.rate_windows = windows
        mine = [windows[t] for t in self.types if t in windows]
        if mine:
            self._metered_until = max(self._metered_until, time.monotonic() + RATE_LOOK_WINDOWS * max(mine))

    def _poll_interval(self) -> float:
        """The poll interval, or a rate window of this worker's types if shorter: a claim that met a spent window
        found nothing, and a window shorter than the poll drained at the poll's pace (half the rate at 0.5 s)."""
        poll = self.options.poll_interval_seconds
        if time.monotonic() >= self._metered_until:
            return poll  # no job of a rate-limited type claimed of late: an idle worker must not spin
        windows = [self.rate_windows[t] for t in self.types if t in self.rate_windows]
        if not windows:
            return poll
        return min(poll, max(RATE_LOOK_MIN_SECONDS, min(windows) + RATE_LOOK_MARGIN_SECONDS))

    async def stop_waiting(self) -> None:
        await self.store.stop_waiting_for_jobs(self.worker_id)
        self.waiting, self._renew_waiting_at = False, 0.0

    def slot_done(self) -> None:
        """A slot came free: wake the claim loop if that makes a claim worth its round trip."""
        if self.options.queue_concurrency:
            # A freed slot belongs to one queue, which may have work waiting while the others are idle.
            self._slot_freed.set()
            self._wakeup.set()
        elif self.want():
            self._slot_freed.set()  # only then: waking the claim loop to find nothing to do costs more than the job
            if self._idle():
                # Idle: a claim that came back short may have met a limit that this worker's own jobs filled
                # (max_running counts them), not an empty queue. One look now, not after the poll interval.
                self._wakeup.set()

    def completions_written_alone(self) -> None:
        """The completer wrote a batch beside the claim loop. An idle worker looks again: its last claim may
        have come back short because a limit still counted those jobs as running."""
        if not self.options.queue_concurrency and self._idle() and self.want():
            self._wakeup.set()

    def _idle(self) -> bool:
        return not self.slots.running and not self.slots.queued

    def want(self) -> int:
        """How many jobs to claim now: the free capacity, but nothing while the local queue still has work
        and less than a useful batch is free (rather than claiming one job at a time)."""
        queued = len(self.slots.queued)
        ahead = self.prefetch.value
        want = self.options.concurrency + ahead - len(self.slots.running) - queued - self._held()
        return 0 if want <= 0 or (want < max(1, ahead // 2) and queued) else want

    async def _claim(self, want: int, queues: Sequence[str] | None) -> list[Job]:
        """Claims up to `want` jobs, carrying the buffered completions in the same round trip while they are few
        (see the module's docstring). The jobs that go straight to free slots are marked started by the claim;
        the rest are started by the starter."""
        slots = self.slots
        start = min(want, max(0, self.options.concurrency - len(slots.running) - len(slots.queued)))
        if self.options.queue_concurrency:
            start = want  # no prefetch: every job claimed has a slot of its queue free
        # After a short claim, all of them: a limit (max_running) counts this worker's finished jobs as running
        # until their completions commit, and in the claim's transaction they do so before it looks.
        carry = self.completer.backlog <= self.options.concurrency or self.came_back_short
        batch = self.completer.take() if carry else []
        starts = self.starter.take()
        claim = ClaimRequest(want, self.options.lease_seconds, self.types, queues, start, self.claim_seq)
        sent = time.monotonic()
        if not batch and starts is None:
            jobs = await self.store.claim_jobs(self.worker_id, claim)
        else:
            try:
                done, jobs = await self.store.write_and_claim_jobs(
                    self.worker_id, self.completer.as_columns(batch), starts, claim
                )
            except BaseException:
                self.completer.give_back(batch)
                self.starter.give_back(starts)
                raise
            if batch:
                self.completer.settle(batch, done)
            self.starter.settle(starts)
        if jobs:
            self.claim_seq = max(self.claim_seq, jobs[-1]._claim_seq)
            self.leases.claimed(sent)
            if self.rate_windows:
                metered = [self.rate_windows[job.type] for job in jobs if job.type in self.rate_windows]
                if metered:  # the next claims may meet a spent window: look again as each one passes
                    self._metered_until = time.monotonic() + RATE_LOOK_WINDOWS * max(metered)
        return jobs

    def _held(self) -> int:
        """Completions not yet written beyond a prefetch's worth (or a slot's, the larger) hold slots: claims go on
        beside one batch being written, and what a crash can make run twice stays within concurrency plus twice
        the prefetch (every claimed job finished, none of it written)."""
        return max(0, self.completer.backlog - max(self.options.concurrency, self.prefetch.value))

    def _queue_targets(self, held: int) -> list[tuple[Sequence[str] | None, int]]:
        """Named queues on their own slots: (that queue, its free slots) for each queue with any free."""
        assert self.options.queue_concurrency
        in_hand = Counter(r.job.queue for r in self.slots.running.values()) + Counter(
            j.queue for j in self.slots.queued
        )
        targets: list[tuple[Sequence[str] | None, int]] = []
        for queue, slots in self.options.queue_concurrency.items():
            want = slots - in_hand[queue] - held
            if want > 0:
                targets.append(([queue], want))
        return targets

    async def _wait_unfenced(self) -> None:
        wait = asyncio.create_task(self.leases.recovered.wait())
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
        wait.cancel()
        stop.cancel()

    async def _wait_for_work(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
