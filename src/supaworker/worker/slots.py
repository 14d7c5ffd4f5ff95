"""The worker's local queue and its slots: claimed jobs wait here in claim order, and `concurrency` long-lived
tasks (slots) run them one after another. A task per job cost more than a no-op job itself.

A job is stopped by cancelling its slot, which takes the cancellation back and goes on with the next job.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ..job import Job

log = logging.getLogger("supaworker.worker")

# A slot runs queued jobs back to back while their handlers return without waiting; it lets the loop run
# other tasks (heartbeat, listener, completer) after this many in a row.
SLOT_JOBS_PER_TURN = 32
# A cancel can arrive between a claim's commit and the worker registering the job: remembered this long.
EARLY_CANCEL_TTL_SECONDS = 5.0


@dataclass(slots=True)
class RunningJob:
    job: Job
    slot: asyncio.Task[None]  # the slot task running the job: cancelling it stops the job
    deadline: float = math.inf  # loop time; armed when the handler starts
    started: bool = False  # its handler runs (or ran); the start is recorded with the next round trip
    timed_out: bool = False
    fenced: bool = False  # stopped because the worker lost the database for most of a lease
    cancels: int = 0  # cancellations sent to the slot for this job, taken back when the job ends

    def stop(self) -> None:
        self.cancels += 1
        self.slot.cancel()


class Slots:
    """Runs queued jobs through `run_job`, at most `concurrency` at once; calls `on_done` as each slot frees.
    `interruptible(job)` says whether the job's handler can be stopped outright (async or inline) rather
    than only told through `job.cancelled` (a sync handler in its thread)."""

    def __init__(
        self,
        concurrency: int,
        run_job: Callable[[Job, RunningJob], Awaitable[None]],
        on_done: Callable[[], None],
        interruptible: Callable[[Job], bool],
        hand_back: Callable[[list[Job]], None] = lambda jobs: None,
    ) -> None:
        self.concurrency = concurrency
        self.queued: deque[Job] = deque()  # claimed, waiting for a slot, in claim order
        self.running: dict[int, RunningJob] = {}
        self._run_job = run_job
        self._on_done = on_done
        self._interruptible = interruptible
        self._hand_back = hand_back  # jobs taken out unstarted, to release uncharged
        self._job_queued = asyncio.Event()
        self._stopping = False
        self._early_cancels: dict[int, float] = {}

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._loop(), name=f"slot-{i}") for i in range(self.concurrency)]

    def add(self, jobs: Iterable[Job]) -> None:
        self.queued.extend(jobs)
        self._job_queued.set()

    def stop(self) -> None:
        """Slots take no new job; each ends once its current one has."""
        self._stopping = True
        self._job_queued.set()

    def held(self) -> list[tuple[int, int]]:
        """(job id, attempt) of every job running or queued here."""
        return [(r.job.id, r.job.attempt) for r in self.running.values()] + [(j.id, j.attempt) for j in self.queued]

    def take_queued(self) -> list[Job]:
        """Empties the local queue: jobs claimed and never started, to hand back."""
        jobs, self.queued = list(self.queued), deque()
        return jobs

    def take_queued_of(self, scope: str, name: str) -> list[Job]:
        """Takes the queued jobs of a type (`scope` "type") or a queue ("queue") out of the local queue."""
        return self.take_queued_of_ids(
            {job.id for job in self.queued if (job.type if scope == "type" else job.queue) == name}
        )

    def take_queued_of_ids(self, ids: set[int]) -> list[Job]:
        """Takes the queued jobs with these ids out of the local queue."""
        taken = [job for job in self.queued if job.id in ids]
        self.drop(ids)
        return taken

    def drop(self, ids: set[int]) -> None:
        if self.queued:
            self.queued = deque(job for job in self.queued if job.id not in ids)

    def drop_attempts(self, attempts: set[tuple[int, int]]) -> None:
        """Drops queued jobs by (job id, attempt): a later attempt of the same job stays."""
        if self.queued:
            self.queued = deque(job for job in self.queued if (job.id, job.attempt) not in attempts)

    def cancel(self, job_id: int, why: str) -> None:
        """Stops a job that was cancelled or lost: an async handler is cancelled outright; a sync one runs in
        a thread that cannot be interrupted, so it is told through `job.cancelled` and keeps its slot until
        it returns (or times out). Either way its outcome is fenced out in the database. A job still in
        the local queue is dropped; one not here yet (its claim in flight) is remembered for a moment."""
        running = self.running.get(job_id)
        if running is None:
            if any(job.id == job_id for job in self.queued):
                # Released, not only dropped: a cancel NOTIFY names no attempt, and a retry may have made the
                # queued one a new attempt, which the release (fenced by attempt) then hands back to be run.
                self._hand_back(self.take_queued_of_ids({job_id}))
                log.warning(why, extra={"job_id": job_id})
                return
            now = time.monotonic()
            self._early_cancels = {i: t for i, t in self._early_cancels.items() if now - t < EARLY_CANCEL_TTL_SECONDS}
            self._early_cancels[job_id] = now
            return
        job = running.job
        if job.cancelled:
            return
        log.warning(why, extra={"job_id": job_id, "type": job.type, "attempt": job.attempt})
        self.interrupt(running)

    def interrupt(self, running: RunningJob) -> None:
        """Tells a running job to stop, and stops it outright where it can be (an async or inline handler)."""
        running.job.request_cancel()
        if self._interruptible(running.job):
            running.stop()

    async def _loop(self) -> None:
        slot = asyncio.current_task()
        assert slot is not None
        in_a_row = 0
        while True:
            while not self.queued or self._stopping:
                if self._stopping:
                    return
                self._job_queued.clear()
                in_a_row = 0
                await self._job_queued.wait()
            job = self.queued.popleft()
            if self._cancelled_early(job):
                self._hand_back([job])  # cancelled: the release finds nothing; cancelled and retried: it runs again
                self._on_done()
                continue
            running = self.running[job.id] = RunningJob(job, slot)
            try:
                await self._run_job(job, running)
            except asyncio.CancelledError:
                if not running.cancels:
                    raise  # the slot itself is being stopped
            except Exception:
                # Not the handler's error (the runner records those): the slot must survive it. The job
                # stays processing and comes back when its lease runs out.
                log.exception("running a job failed unexpectedly", extra={"job_id": job.id, "type": job.type})
            finally:
                for _ in range(running.cancels):
                    slot.uncancel()
                # A sync handler deaf to a cancel runs on, and a retry can meanwhile bring its job back to this
                # worker as a new attempt, which took the entry: only the attempt that ends leaves.
                if self.running.get(job.id) is running:
                    del self.running[job.id]
                self._on_done()
            in_a_row += 1
            if in_a_row >= SLOT_JOBS_PER_TURN:
                in_a_row = 0
                await asyncio.sleep(0)

    def _cancelled_early(self, job: Job) -> bool:
        if not self._early_cancels:
            return False
        cancelled_at = self._early_cancels.pop(job.id, None)
        if cancelled_at is None or time.monotonic() - cancelled_at >= EARLY_CANCEL_TTL_SECONDS:
            return False
        # Already cancelled in the database: there is nothing to run or to record.
        log.warning("job cancelled as it was being claimed", extra={"job_id": job.id, "type": job.type})
        return True
