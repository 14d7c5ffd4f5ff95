"""The worker: claims jobs in batches for its free slots, runs them, records outcomes, keeps its leases
alive, rescues jobs of dead workers, and shuts down gracefully.

Wake-up is LISTEN/NOTIFY as a hint with polling as the fallback; behind a transaction pooler it polls only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import AsyncConnectionPool

from ..db import ConnectionProfile, liveness_kwargs
from ..job import Job
from ..registry import Registry
from ..store import WorkerStore
from .completer import Completer
from .executor import Executor, Outcome
from .lease import LeaseKeeper
from .options import WorkerOptions
from .progress import ProgressWriter
from .protocol import TRANSIENT_ERRORS, WorkerQueries
from .starter import StartRecorder

log = logging.getLogger("supaworker.worker")

RESCUE_BATCH = 1000
# NOTIFY payload on the jobs channel that asks the worker running a job to stop it (see cancel_job()).
CANCEL_PREFIX = "cancel:"
# A cancel can arrive between a claim's commit and the worker registering the job: remembered this long.
EARLY_CANCEL_TTL_SECONDS = 5.0
RECONNECT_DELAY_SECONDS = 1.0
RECONNECT_DELAY_MAX_SECONDS = 15.0
# A slot runs queued jobs back to back while their handlers return without waiting; it lets the loop run
# other tasks (heartbeat, listener, completer) after this many in a row.
SLOT_JOBS_PER_TURN = 32


def new_worker_id() -> str:
    return f"worker-{os.getpid()}-{int(time.time() * 1000)}"


class WorkerService(Protocol):
    """A background loop the worker runs beside its own (e.g. maintenance), cancelled when it stops."""

    name: str

    def run(self) -> Awaitable[None]: ...


@dataclass(slots=True)
class _Running:
    job: Job
    slot: asyncio.Task[None]  # the slot task running the job: cancelling it stops the job
    deadline: float = math.inf  # loop time; armed when the handler starts
    started: bool = False  # its start is recorded and its handler runs (or ran)
    timed_out: bool = False
    fenced: bool = False  # stopped because the worker lost the database for most of a lease
    cancels: int = 0  # cancellations sent to the slot for this job, taken back when the job ends

    def stop(self) -> None:
        self.cancels += 1
        self.slot.cancel()


class Worker:
    def __init__(
        self,
        profile: ConnectionProfile | None,
        schema: str,
        registry: Registry,
        options: WorkerOptions,
        worker_id: str | None = None,
        store: WorkerQueries | None = None,
        services: Sequence[WorkerService] = (),
    ) -> None:
        """`profile` is the Postgres connection; pass `store` instead to work through another transport
        (PostgREST), which then also means polling."""
        self.profile = profile
        self.schema = schema
        self.registry = registry
        self.options = options
        self.worker_id = worker_id or new_worker_id()
        self.types = list(options.types) if options.types else registry.types()
        self.started_monotonic = time.monotonic()
        self.store: WorkerQueries
        if store is None:
            if profile is None:
                raise ValueError("a Worker needs a connection profile or a store")
            connect_kwargs = {
                **profile.connect_kwargs,
                **liveness_kwargs(options.lease_seconds),
                # The application name lets the dashboard list live workers from pg_stat_activity.
                "application_name": f"supaworker:{self.worker_id}",
            }
            self.pool = AsyncConnectionPool(
                profile.conninfo,
                min_size=2,
                max_size=6,
                kwargs=connect_kwargs,
                open=False,
                name=f"supaworker-{self.worker_id}",
            )
            self.store = WorkerStore(self.pool, schema, profile.conninfo, connect_kwargs)
        else:
            self.store = store
        self.can_listen = store is None and profile is not None and profile.can_listen
        self.executor = Executor(registry, options.job_timeout_seconds, threads=options.concurrency + 2)
        self._running: dict[int, _Running] = {}
        self._queued: deque[Job] = deque()  # claimed, waiting for a slot
        self._job_queued = asyncio.Event()
        self._slots: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self.completer = Completer(self.store, self.worker_id, on_written=self._slot_freed.set)
        self.progress = ProgressWriter(self.store, self.worker_id)
        self.starter = StartRecorder(self.store, self.worker_id)
        self._claim_seq = 0  # places in this worker's claim sequence given out so far
        self.leases = LeaseKeeper(
            self.store,
            self.worker_id,
            options.lease_seconds,
            held=self._held_ids,
            on_lost=self._lost,
            on_fence=self._fence,
            on_recover=self._recover,
            on_trouble=self._trouble,
        )
        self.services = list(services)
        self._early_cancels: dict[int, float] = {}
        self._db_trouble_at = -math.inf  # monotonic time the database last failed a statement of ours
        self._to_release: list[Job] = []  # claimed, never started, dropped while fenced: handed back after
        self._watch_due = math.inf  # when the watchdog next looks at the running jobs' deadlines
        self._watch_sooner = asyncio.Event()
        self._services: list[asyncio.Task[None]] = []
        self._batch_floor = max(1, (options.capacity - options.concurrency) // 2)
        self.failed = 0
        self.retried = 0

    # -- public ---------------------------------------------------------------------------------------
    @property
    def active_jobs(self) -> int:
        return len(self._running)

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info(
                "shutting down: no new jobs",
                extra={"worker_id": self.worker_id, "running": len(self._running)},
            )
        self._stopping.set()
        self._wakeup.set()
        self._slot_freed.set()
        self._job_queued.set()

    async def ping(self, timeout: float = 2.0) -> None:
        await self.store.ping(timeout)

    async def run(self) -> None:
        """Works until request_stop(), then finishes or releases what is running."""
        if not self.types:
            raise RuntimeError("no job types to work on: register handlers or pass types")
        await self.store.open()
        log.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "types": ",".join(self.types),
                "concurrency": self.options.concurrency,
                "listen": self.can_listen,
            },
        )
        self._services = [
            asyncio.create_task(self.completer.run(), name="completer"),
            asyncio.create_task(self.leases.run(), name="leases"),
            asyncio.create_task(self.starter.run(), name="starter"),
            asyncio.create_task(self._rescue_loop(), name="rescuer"),
            asyncio.create_task(self.progress.run(), name="progress"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
        ]
        self._services += [asyncio.create_task(_as_coroutine(s.run()), name=s.name) for s in self.services]
        if self.can_listen:
            self._services.append(asyncio.create_task(self._listen_loop(), name="listener"))
        self._slots = [
            asyncio.create_task(self._slot_loop(), name=f"slot-{i}") for i in range(self.options.concurrency)
        ]
        try:
            await self._claim_loop()
            await self._finish_running()
        finally:
            for task in self._services + self._slots:
                task.cancel()
            await asyncio.gather(*self._services, *self._slots, return_exceptions=True)
            self.executor.shutdown()
            await self.store.close()
            log.info("worker stopped", extra={"worker_id": self.worker_id})

    # -- claiming -------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        delay = RECONNECT_DELAY_SECONDS
        while not self._stopping.is_set():
            if self.leases.fenced:
                await self._wait_unfenced()
                continue
            if self._to_release:
                released, self._to_release = self._to_release, []
                await self._release(released)
            self._slot_freed.clear()
            if self.options.queue_concurrency:
                targets = self._queue_targets(self._held())
            else:
                want = self._want()
                targets = [(self.options.queues, want)] if want else []
            if not targets:
                await self._slot_freed.wait()
                continue
            self._wakeup.clear()
            short = False
            try:
                for queues, want in targets:
                    jobs = await self._claim(want, queues)
                    if jobs:
                        self._queued.extend(jobs)
                        self._job_queued.set()
                    short = short or len(jobs) < want
                delay = RECONNECT_DELAY_SECONDS
            except TRANSIENT_ERRORS as exc:
                self._trouble()
                log.warning("claiming failed, retrying", extra={"error": str(exc).strip(), "retry_in": delay})
                await self._sleep_unless_stopping(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX_SECONDS)
                continue
            if short:
                await self._wait_for_work()

    async def _claim(self, want: int, queues: Sequence[str] | None) -> list[Job]:
        """Claims up to `want` jobs, carrying the buffered completions in the same round trip. The jobs that
        go straight to free slots are marked started by the claim; the rest are started by the starter."""
        start = min(want, max(0, self.options.concurrency - len(self._running) - len(self._queued)))
        if self.options.queue_concurrency:
            start = want  # no prefetch: every job claimed has a slot of its queue free
        batch = self.completer.take()
        starts = self.starter.take()
        sent = time.monotonic()
        if not batch and starts is None:
            jobs = await self.store.claim_jobs(
                self.worker_id, self.types, want, self.options.lease_seconds, queues, start, self._claim_seq
            )
        else:
            try:
                done, jobs = await self.store.write_and_claim_jobs(
                    self.worker_id,
                    self.completer.as_columns(batch),
                    starts,
                    self.types,
                    want,
                    self.options.lease_seconds,
                    queues,
                    start,
                    self._claim_seq,
                )
            except BaseException:
                self.completer.give_back(batch)
                self.starter.give_back(starts)
                raise
            if batch:
                self.completer.settle(batch, done)
            self.starter.settle(starts)
        if jobs:
            self._claim_seq = max(self._claim_seq, jobs[-1]._claim_seq)
            self.leases.claimed(sent)
        return jobs

    async def _wait_unfenced(self) -> None:
        wait = asyncio.create_task(self.leases.recovered.wait())
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
        wait.cancel()
        stop.cancel()

    def _held(self) -> int:
        """Buffered completions beyond one slot's worth hold slots: bounds what a crash can make run twice."""
        return max(0, self.completer.backlog - self.options.concurrency)

    def _want(self) -> int:
        """How many jobs to claim now: the free capacity, but nothing while the local queue still has work
        and less than a useful batch is free (rather than claiming one job at a time)."""
        want = self.options.capacity - len(self._running) - len(self._queued) - self._held()
        return 0 if want <= 0 or (want < self._batch_floor and self._queued) else want

    def _queue_targets(self, held: int) -> list[tuple[Sequence[str] | None, int]]:
        """Named queues on their own slots: (that queue, its free slots) for each queue with any free."""
        assert self.options.queue_concurrency
        in_hand = Counter(r.job.queue for r in self._running.values()) + Counter(j.queue for j in self._queued)
        targets: list[tuple[Sequence[str] | None, int]] = []
        for queue, slots in self.options.queue_concurrency.items():
            want = slots - in_hand[queue] - held
            if want > 0:
                targets.append(([queue], want))
        return targets

    # -- running ----------------------------------------------------------------------------------------
    async def _slot_loop(self) -> None:
        """One of `concurrency` long-lived tasks, each running queued jobs one after another (a task per job
        cost more than a no-op job itself). A job is stopped by cancelling its slot, which then goes on."""
        slot = asyncio.current_task()
        assert slot is not None
        in_a_row = 0
        while True:
            while not self._queued or self._stopping.is_set():
                if self._stopping.is_set():
                    return
                self._job_queued.clear()
                in_a_row = 0
                await self._job_queued.wait()
            job = self._queued.popleft()
            if self._cancelled_early(job):
                self._slot_done()
                continue
            job._progress_sink = self.progress.report
            running = self._running[job.id] = _Running(job, slot)
            try:
                await self._run_job(job, running)
            except asyncio.CancelledError:
                if not running.cancels:
                    raise  # the slot itself is being stopped
            except Exception:
                # Not the handler's error (the executor records those): the slot must survive it. The job
                # stays processing and comes back when its lease runs out.
                log.exception("running a job failed unexpectedly", extra={"job_id": job.id, "type": job.type})
            finally:
                for _ in range(running.cancels):
                    slot.uncancel()
                del self._running[job.id]
                self._slot_done()
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

    def _slot_done(self) -> None:
        if self.options.queue_concurrency:
            # A freed slot belongs to one queue, which may have work waiting while the others are idle.
            self._slot_freed.set()
            self._wakeup.set()
        elif self._want():
            self._slot_freed.set()  # only then: waking the claim loop to find nothing to do costs more than the job

    def _cancel_running(self, job_id: int, why: str) -> None:
        """Stops a job that was cancelled or lost: an async handler is cancelled outright; a sync one runs in
        a thread that cannot be interrupted, so it is told through `job.cancelled` and keeps its slot until
        it returns (or times out). Either way its outcome is fenced out in the database. A job still in
        the local queue is dropped; one not here yet (its claim in flight) is remembered for a moment."""
        running = self._running.get(job_id)
        if running is None:
            if any(job.id == job_id for job in self._queued):
                self._queued = deque(job for job in self._queued if job.id != job_id)
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
        self._interrupt(running)

    def _interrupt(self, running: _Running) -> None:
        """Tells a running job to stop, and stops it outright where it can be (an async or inline handler)."""
        running.job.request_cancel()
        handler = self.registry.get(running.job.type)
        if handler is None or handler.is_async or handler.inline:
            running.stop()

    async def _run_job(self, job: Job, running: _Running) -> None:
        await self.starter.record(job)
        running.started = True
        log.debug("job started", extra={"job_id": job.id, "type": job.type, "attempt": job.attempt})
        if job.has_parents:
            await self._load_upstream(job)
        timeout = self.executor.timeout_for(job)
        began = asyncio.get_running_loop().time()
        running.deadline = began + timeout
        if running.deadline < self._watch_due:
            self._watch_sooner.set()
        try:
            outcome = await self.executor.execute(job)
        except asyncio.CancelledError:
            if not (running.timed_out or running.fenced):
                raise  # a stop, a cancel_job() or a lost lease
        if running.fenced:
            # Abandoned while the database was out of reach; recorded (and retried) once it answers again.
            outcome = Outcome(
                False,
                asyncio.get_running_loop().time() - began,
                error=f"worker {self.worker_id} lost the database for most of a lease and stopped the job",
            )
        elif running.timed_out:
            # The watchdog's own cancellation (even if the handler swallowed it): recorded as a failed attempt.
            outcome = Outcome(False, timeout, error=f"TimeoutError: job timed out after {timeout:g}s")
        if outcome.ok:
            self.completer.add(job, outcome.result, outcome.duration_seconds)
        else:
            await self._record_failure(
                job, outcome.error or "unknown error", outcome.retryable, outcome.duration_seconds
            )

    async def _load_upstream(self, job: Job) -> None:
        """Gives a dependent job the results of the steps before it (retrying while the database is away;
        the lease stays alive meanwhile, and a stop cancels this task and releases the job)."""
        delay = RECONNECT_DELAY_SECONDS
        while True:
            try:
                rows = await self.store.upstream_results(job.id)
                break
            except TRANSIENT_ERRORS as exc:
                self._trouble()
                log.warning("loading upstream results failed, retrying", extra={"job_id": job.id, "error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX_SECONDS)
        for parent_id, parent_type, result, _depth in rows:  # farthest first: the nearest of a type wins
            job.upstream[parent_type] = result
            job.upstream_by_id[parent_id] = result

    async def _record_failure(self, job: Job, error: str, retryable: bool, duration: float) -> None:
        fields = {
            "job_id": job.id,
            "type": job.type,
            "attempt": job.attempt,
            "duration_ms": round(duration * 1000, 1),
        }
        delay = RECONNECT_DELAY_SECONDS
        while True:
            try:
                status = await self.store.fail_job(
                    self.worker_id,
                    job.id,
                    job.attempt,
                    error,
                    retry_base_seconds=self.options.retry_base_seconds,
                    retry_cap_seconds=self.options.retry_cap_seconds,
                    retryable=retryable,
                )
                break
            except TRANSIENT_ERRORS as exc:
                self._trouble()
                log.warning("recording a failure failed, retrying", extra={**fields, "error": str(exc).strip()})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX_SECONDS)
        first_line = error.splitlines()[0] if error else ""
        if status == "pending":
            self.retried += 1
            log.warning("job failed, will retry", extra={**fields, "error": first_line})
        elif status == "failed":
            self.failed += 1
            log.error("job failed permanently", extra={**fields, "error": first_line})
        else:
            log.warning("job failure rejected: this worker no longer owns the attempt", extra=fields)

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.options.poll_interval_seconds):
                await self._wakeup.wait()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    # -- background services --------------------------------------------------------------------------
    async def _listen_loop(self) -> None:
        """Sets the wake-up flag on every NOTIFY; reconnects with backoff; gives up quietly to polling."""
        assert self.profile is not None  # only started when can_listen
        delay = RECONNECT_DELAY_SECONDS
        warned = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.profile.conninfo,
                    autocommit=True,
                    prepare_threshold=None,
                    **liveness_kwargs(self.options.lease_seconds),
                ) as conn:
                    await conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(f"{self.schema}_jobs")))
                    delay = RECONNECT_DELAY_SECONDS
                    self._wakeup.set()  # anything inserted while we were not listening
                    self.leases.renew_now()  # and any job cancelled meanwhile: the heartbeat finds those
                    async for notify in conn.notifies():
                        if notify.payload.startswith(CANCEL_PREFIX):
                            with contextlib.suppress(ValueError):
                                job_id = int(notify.payload.removeprefix(CANCEL_PREFIX))
                                self._cancel_running(job_id, "job cancelled while running")
                        else:
                            self._wakeup.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not warned:
                    log.warning("LISTEN unavailable, polling meanwhile", extra={"error": str(exc).strip()})
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX_SECONDS)

    async def _watchdog_loop(self) -> None:
        """Times out running jobs with one timer for all of them, due at the nearest deadline and moved
        earlier only when a job due sooner starts (a timer per job cost a fifth of the worker's time on
        short jobs). A sync handler's thread cannot be stopped: it is told through `job.cancelled`."""
        loop = asyncio.get_running_loop()
        while True:
            now, due = loop.time(), math.inf
            for running in list(self._running.values()):
                if running.deadline <= now:
                    running.deadline, running.timed_out = math.inf, True
                    running.job.request_cancel()
                    running.stop()
                else:
                    due = min(due, running.deadline)
            self._watch_due = due
            self._watch_sooner.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(None if due == math.inf else due):
                    await self._watch_sooner.wait()

    # -- leases ---------------------------------------------------------------------------------------
    def _held_ids(self) -> list[int]:
        """Every job this worker holds a lease on: running, claimed ahead, finished but not yet recorded."""
        return list(self._running) + [job.id for job in self._queued] + self.completer.job_ids()

    def _lost(self, lost: set[int]) -> None:
        """Jobs the heartbeat no longer owns (rescued or cancelled): their outcome would be rejected."""
        if self._queued:
            self._queued = deque(job for job in self._queued if job.id not in lost)
        for job_id in lost:
            if job_id in self._running:
                self._cancel_running(job_id, "job lost: no longer owned by this worker")

    def _trouble(self) -> None:
        self._db_trouble_at = time.monotonic()

    def _fence(self, silent_seconds: float) -> None:
        """No lease renewed for most of a lease: another worker may soon be given these jobs, so stop them.
        Started jobs fail this attempt (recorded once the database answers); the others are handed back."""
        never_started = list(self._queued)
        self._queued = deque()
        stopped = 0
        for running in list(self._running.values()):
            if not running.started:
                never_started.append(running.job)
                running.stop()
                continue
            running.fenced = True
            self._interrupt(running)
            stopped += 1
        self._to_release += never_started
        log.error(
            "lost the database: no lease renewed for most of a lease; running jobs stopped, claiming paused",
            extra={
                "worker_id": self.worker_id,
                "silent_seconds": round(silent_seconds, 1),
                "stopped": stopped,
                "handed_back": len(never_started),
            },
        )

    def _recover(self, fenced_seconds: float) -> None:
        log.warning(
            "database reachable again: claiming resumed",
            extra={"worker_id": self.worker_id, "fenced_seconds": round(fenced_seconds, 1)},
        )
        self._wakeup.set()

    async def _rescue_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.rescue_interval_seconds)
            # After trouble of its own a rescuer cannot tell a dead worker from one that was cut off as it
            # was: the owners get a full lease to renew before anything of theirs is taken.
            if self.leases.fenced or time.monotonic() - self._db_trouble_at < self.options.lease_seconds:
                continue
            try:
                rescued = await self.store.rescue_expired_jobs(
                    worker_id=self.worker_id,
                    limit=RESCUE_BATCH,
                    retry_base_seconds=self.options.retry_base_seconds,
                    retry_cap_seconds=self.options.retry_cap_seconds,
                    grace_seconds=self.options.lease_seconds,
                )
            except TRANSIENT_ERRORS as exc:
                self._trouble()
                log.warning("rescue failed", extra={"error": str(exc).strip()})
                continue
            handed_back: list[int] = []
            for job_id, job_type, attempts, status, dead_worker, started in rescued:
                if not started:
                    handed_back.append(job_id)
                    continue
                log.warning(
                    "job rescued from a dead worker",
                    extra={
                        "job_id": job_id,
                        "type": job_type,
                        "attempt": attempts,
                        "status": status,
                        "dead_worker": dead_worker,
                    },
                )
            if handed_back:
                log.warning(
                    "jobs a dead worker had claimed but not started handed back, uncharged",
                    extra={"jobs": len(handed_back), "ids": handed_back[:20]},
                )
            if rescued:
                self._wakeup.set()

    # -- shutdown -------------------------------------------------------------------------------------
    async def _finish_running(self) -> None:
        """Hands back jobs that never started at once, lets running jobs finish within the grace period, then
        hands back what is still running."""
        never_started, self._queued = list(self._queued), deque()
        await self._release(never_started)
        if self._running:
            log.info(
                "waiting for running jobs",
                extra={"running": len(self._running), "grace_seconds": self.options.shutdown_grace_seconds},
            )
            # A slot ends once its job has (it takes no new one while stopping).
            slots = [r.slot for r in self._running.values()]
            await asyncio.wait(slots, timeout=self.options.shutdown_grace_seconds)
        leftover = list(self._running.values())
        for r in leftover:
            r.stop()
        await self._release([r.job for r in leftover])
        await asyncio.gather(*(r.slot for r in leftover), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.completer.drain()
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.store.forget_job_starts(self.worker_id)

    async def _release(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        jobs = sorted(jobs, key=lambda job: job.id)  # every multi-row write of a worker locks in id order
        ids = [job.id for job in jobs]
        try:
            released = await self.store.release_jobs(self.worker_id, ids, [job.attempt for job in jobs])
            log.warning("released unfinished jobs", extra={"jobs": len(released), "ids": ids[:20]})
        except TRANSIENT_ERRORS as exc:
            log.error(
                "could not release jobs; they return when their lease expires",
                extra={"error": str(exc).strip(), "ids": ids[:20]},
            )


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable
