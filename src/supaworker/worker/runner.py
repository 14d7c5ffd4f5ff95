"""The worker: claims jobs in batches for its free slots, runs them, records outcomes, and shuts down
gracefully. The rest lives in rooms of its own, which this module wires together:

- `slots`: the local queue and the long-lived tasks that run jobs from it;
- `claimer`: the claim loop, with `prefetch` (how far ahead) and the buffered `completer` and `starter` writes
  riding along with each claim; `progress`: job.progress() reports, written on a timer of their own;
- `attempt`: one attempt of one job; `executor` and `threads`: the handler itself (plain `def` in threads);
- `lease`: the heartbeat that keeps the leases alive, and the fence when it cannot;
- `watchdog`: per-job timeouts; `maintenance.rescuer`: jobs of dead workers;
- `listener`: NOTIFY wake-ups and cancels (polling is the fallback; behind a transaction pooler, the only way);
- `monitor`: stops the worker when any of those tasks dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from ..db import ConnectionProfile, liveness_kwargs, server_liveness_statement
from ..job import Job
from ..listener import Listener
from ..loaders import utf8_json_loads
from ..maintenance.rescuer import Rescuer, RescuerConfig
from ..registry import Registry
from ..retry import TRANSIENT_ERRORS
from ..sql import channel_name
from ..store import WorkerStore
from .attempt import AttemptRunner
from .claimer import Claimer
from .completer import Completer
from .executor import Executor
from .lease import Held, LeaseKeeper
from .monitor import TaskMonitor
from .options import WorkerOptions
from .prefetch import Prefetch
from .progress import ProgressWriter
from .protocol import WorkerQueries
from .records import Recorders
from .slots import Slots
from .starter import StartRecorder
from .watchdog import Watchdog

log = logging.getLogger("supaworker.worker")

# NOTIFY payload on the jobs channel that asks the worker running a job to stop it (see cancel_job()).
CANCEL_PREFIX = "cancel:"
# `paused:<scope>:<name>`: a type or queue was paused (migrations 0026, 0028).
PAUSED_PREFIX = "paused:"
# `limits:<scope>:<name>`: a rate limit was set, changed or removed (migration 0028).
LIMITS_PREFIX = "limits:"


def new_worker_id() -> str:
    """Unique across hosts: containers all run their worker as pid 1, and replicas started together can start in
    the same millisecond; two workers sharing an id would share their leases, start marks and rescues."""
    return f"worker-{os.getpid()}-{int(time.time() * 1000)}-{secrets.token_hex(3)}"


class WorkerService(Protocol):
    """A background loop the worker runs beside its own (e.g. maintenance), cancelled when it stops. Started
    once the first claim is answered: the first jobs do not wait for it."""

    name: str

    def run(self) -> Awaitable[None]: ...


class Worker:
    def __init__(
        self,
        connection: ConnectionProfile | WorkerQueries,
        schema: str,
        registry: Registry,
        options: WorkerOptions,
        worker_id: str | None = None,
        services: Sequence[WorkerService] = (),
    ) -> None:
        """`connection` is the Postgres connection's profile, or a store that works through another transport
        (PostgREST), which then also means polling."""
        self.profile = connection if isinstance(connection, ConnectionProfile) else None
        self.schema = schema
        self.registry = registry
        self.options = options
        self.worker_id = worker_id or new_worker_id()
        self.types = list(options.types) if options.types else registry.types()
        self.started_monotonic = time.monotonic()
        self.store: WorkerQueries
        if isinstance(connection, ConnectionProfile):
            connect_kwargs = {
                **connection.connect_kwargs,
                **liveness_kwargs(options.lease_seconds),
                # The application name lets the dashboard list live workers from pg_stat_activity.
                "application_name": f"supaworker:{self.worker_id}",
            }
            self.pool = AsyncConnectionPool(
                connection.conninfo,
                min_size=2,
                max_size=6,
                kwargs=connect_kwargs,
                configure=self._configure_connection,
                open=False,
                name=f"supaworker-{self.worker_id}",
            )
            self.store = WorkerStore(self.pool, schema, connection.conninfo, connect_kwargs)
        else:
            self.store = connection
        self.can_listen = self.profile is not None and self.profile.can_listen
        self.executor = Executor(registry, options.job_timeout_seconds, threads=options.concurrency + 2)
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self.completer = Completer(
            self.store,
            self.worker_id,
            on_written=self._slot_freed.set,
            on_written_alone=lambda: self.claimer.completions_written_alone(),
        )
        self.progress = ProgressWriter(self.store, self.worker_id)
        self.starter = StartRecorder(self.store, self.worker_id)
        self.records = Recorders(self.starter, self.progress, self.completer)
        self.watchdog = Watchdog(lambda: self.slots.running.values())
        self.prefetch = Prefetch(options.concurrency, options.prefetch)
        self.attempts = AttemptRunner(
            self.store,
            self.worker_id,
            options,
            self.executor,
            records=self.records,
            watchdog=self.watchdog,
            prefetch=self.prefetch,
            on_trouble=self.database_trouble,
        )
        self.slots = Slots(
            options.concurrency,
            self.attempts.run,
            self._slot_done,
            self._interruptible,
            hand_back=lambda jobs: self.claimer.to_release.extend(jobs),
        )
        self.leases = LeaseKeeper(self.store, self, options.lease_seconds)
        self.rescuer = Rescuer(
            self.store,
            self.worker_id,
            RescuerConfig(
                interval_seconds=options.rescue_interval_seconds,
                lease_seconds=options.lease_seconds,
                delays=options.retry_delays,
            ),
            held=lambda: [job_id for job_id, _ in self.held()],
        )
        self.services = list(services)
        # Set once the first claim is answered or has failed: what the first jobs do not need starts then
        # (the listener, the services, the health endpoint).
        self.claimed_once = asyncio.Event()
        self.monitor = TaskMonitor(self._task_died, stopping=self._stopping.is_set)
        self.failure: str | None = None  # why the worker stopped itself (a task died): it exits non-zero
        self._side_tasks: set[asyncio.Task[None]] = set()  # one-off tasks, held until they are done
        self._controls_reads = self._controls_applied = 0  # reads of job_controls asked for, and the last applied
        self._db_trouble_at = -math.inf  # monotonic time the database last failed a statement of ours
        self.claimer = Claimer(
            self.store,
            self.worker_id,
            self.types,
            options,
            slots=self.slots,
            prefetch=self.prefetch,
            records=self.records,
            leases=self.leases,
            stopping=self._stopping,
            wakeup=self._wakeup,
            slot_freed=self._slot_freed,
            release=self._release,
            on_trouble=self.database_trouble,
            listen=self.can_listen,
            on_first_claim=self._after_first_claim,
        )

    async def _configure_connection(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Payloads decoded as UTF-8 text (json.loads of bytes first guesses their encoding), and, unless behind a
        transaction pooler (where a SET lands on whichever server connection is lent out): the server side of a
        partition drops our connection within about a lease (see db.py), and times come in UTC, which psycopg
        reads three times as fast as a named zone such as Etc/UTC (the jobs' times are instants either way)."""
        set_json_loads(utf8_json_loads, conn)
        assert self.profile is not None  # the pool, and so this, exist only for a Postgres connection
        if not self.profile.transaction_pooler:
            await conn.execute(server_liveness_statement(self.options.lease_seconds) + "; SET TimeZone = 'UTC'")

    # -- public ---------------------------------------------------------------------------------------
    @property
    def active_jobs(self) -> int:
        return len(self.slots.running)

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic

    @property
    def failed(self) -> int:
        """Attempts this worker failed for good."""
        return self.attempts.failed

    @property
    def retried(self) -> int:
        """Attempts this worker failed that will be retried."""
        return self.attempts.retried

    def holds_nothing(self) -> bool:
        """No job running, claimed ahead, finished but not yet recorded, or to hand back, and no sync handler still
        in its thread. Read from another thread (a stop's deadline): lengths only, each read atomically."""
        return not (
            len(self.slots.running)
            or len(self.slots.queued)
            or self.completer.backlog
            or len(self.claimer.to_release)
            or self.executor.busy_threads()
        )

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info(
                "shutting down: no new jobs",
                extra={"worker_id": self.worker_id, "running": len(self.slots.running)},
            )
        self._stopping.set()
        self._wakeup.set()
        self._slot_freed.set()
        self.slots.stop()

    async def stop_requested(self) -> None:
        """Returns once request_stop() was called."""
        await self._stopping.wait()

    async def ping(self, timeout: float = 2.0) -> None:
        await self.store.ping(timeout)

    async def run(self) -> None:
        """Works until request_stop(), then finishes or releases what is running."""
        if not self.types:
            raise RuntimeError("no job types to work on: register handlers or pass types")
        if not await self._open_unless_stopped():
            return
        log.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "types": ",".join(self.types),
                "concurrency": self.options.concurrency,
                "listen": self.can_listen,
            },
        )
        start = self.monitor.start
        start(self.completer.run(), "completer")
        start(self.leases.run(), "leases")
        start(self.starter.run(), "starter")
        start(
            self.rescuer.run(
                paused=lambda: self.leases.fenced,
                last_trouble=lambda: self._db_trouble_at,
                on_trouble=self.database_trouble,
                on_rescued=self._wakeup.set,
            ),
            "rescuer",
        )
        start(self.progress.run(), "progress")
        start(self.watchdog.run(), "watchdog")
        for slot in self.slots.start():
            self.monitor.watch(slot)
        try:
            await self.claimer.run()
            await self._finish_running()
        finally:
            await self.monitor.close()
            self.executor.shutdown()
            await self.store.close()
            log.info("worker stopped", extra={"worker_id": self.worker_id})

    async def _open_unless_stopped(self) -> bool:
        """Opens the store's connections; False when the worker was told to stop first. A database that went
        away since the worker's probe makes the opening wait for it (up to OPEN_TIMEOUT_SECONDS, then the
        error): a stop must not wait with it. Nothing is claimed yet, so nothing is left to hand back."""
        opening = asyncio.ensure_future(self.store.open())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if opening.done():
            opening.result()
            return True
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
        await self.store.close()
        log.info("worker stopped before it had connected", extra={"worker_id": self.worker_id})
        return False

    def _after_first_claim(self) -> None:
        """Starts what the first claim does not need: the listener (its first connection makes the claim loop
        look again, for anything a NOTIFY announced meanwhile) and the services."""
        if self.can_listen:
            self.monitor.start(self._listener().run(), "listener")
        for service in self.services:
            self.monitor.start(_as_coroutine(service.run()), service.name)
        self.claimed_once.set()

    def _task_died(self, name: str, error: BaseException | None) -> None:
        self.failure = f"{name}: {type(error).__name__}: {error}" if error else f"{name} ended"
        self.request_stop()

    # -- running ----------------------------------------------------------------------------------------
    def _interruptible(self, job: Job) -> bool:
        handler = self.registry.get(job.type)
        return handler is None or handler.is_async or handler.inline

    def _slot_done(self) -> None:
        self.claimer.slot_done()

    # -- wake-ups and cancels -------------------------------------------------------------------------
    def _listener(self) -> Listener:
        assert self.profile is not None  # only started when can_listen
        return Listener(
            self.profile.conninfo,
            [channel_name(self.schema)],
            self._notified,
            on_connect=self._listening,
            connect_kwargs=liveness_kwargs(self.options.lease_seconds),
        )

    def _listening(self) -> None:
        self._wakeup.set()  # anything inserted while we were not listening
        self.leases.renew_now()  # and any job cancelled meanwhile: the heartbeat finds those
        self._read_controls()  # and any pause or rate limit: its NOTIFY came while we were not listening

    def _read_controls(self) -> None:
        if isinstance(self.store, WorkerStore):
            self._controls_reads += 1
            task = asyncio.ensure_future(self._follow_controls(self.store, self._controls_reads))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _follow_controls(self, store: WorkerStore, read: int) -> None:
        try:
            controls = await store.followed_controls()
        except TRANSIENT_ERRORS:
            return  # the listener's next connection looks again
        if read < self._controls_applied:
            return  # a later read answered first
        self._controls_applied = read
        self.claimer.follow_rate_windows(
            {name: w for scope, name, _, w in controls if scope == "type" and w is not None}
        )
        for scope, name, paused, _ in controls:
            if paused:
                self._paused(scope, name)
        self._wakeup.set()  # a limit lifted or a window changed: look now, at the new pace

    def _notified(self, channel: str, payload: str) -> None:
        if payload.startswith(CANCEL_PREFIX):
            with contextlib.suppress(ValueError):
                self.slots.cancel(int(payload.removeprefix(CANCEL_PREFIX)), "job cancelled while running")
        elif payload.startswith(PAUSED_PREFIX):
            self._paused(*payload.removeprefix(PAUSED_PREFIX).partition(":")[::2])
        elif payload.startswith(LIMITS_PREFIX):
            self._read_controls()
        else:
            self._wakeup.set()

    def _paused(self, scope: str, name: str) -> None:
        """A pause stops claims; the jobs of that type or queue this worker claimed ahead and has not started go
        back too (uncharged), or it would still start them. A worker that polls (no NOTIFY behind a transaction
        pooler) starts those it holds: at most its prefetch."""
        held = self.slots.take_queued_of(scope, name)
        if held:
            log.info("paused: handing back jobs claimed ahead", extra={scope: name, "jobs": len(held)})
            self.claimer.to_release += held
            self._slot_freed.set()  # the claim loop hands them back at its next turn
            self._wakeup.set()

    # -- leases (LeaseHolder) -------------------------------------------------------------------------
    def held(self) -> list[Held]:
        """Every attempt this worker holds a lease on: running, claimed ahead, finished but not yet recorded."""
        return self.slots.held() + self.completer.held()

    def leases_lost(self, lost: set[Held]) -> None:
        """Attempts the heartbeat no longer owns (rescued or cancelled): their outcome would be rejected. Only
        those attempts: the same job claimed again meanwhile (a retry) is a new lease, and runs."""
        self.slots.drop_attempts(lost)
        for job_id, attempt in lost:
            running = self.slots.running.get(job_id)
            if running is not None and running.job.attempt == attempt:
                self.slots.cancel(job_id, "job lost: no longer owned by this worker")

    def database_trouble(self) -> None:
        self._db_trouble_at = time.monotonic()

    def fence(self, silent_seconds: float) -> None:
        """No lease renewed for most of a lease: another worker may soon be given these jobs, so stop them.
        Started jobs fail this attempt (recorded once the database answers); the others are handed back."""
        never_started = self.slots.take_queued()
        stopped = 0
        for running in list(self.slots.running.values()):
            if not running.started:
                never_started.append(running.job)
                running.stop()
                continue
            running.fenced = True
            self.slots.interrupt(running)
            stopped += 1
        self.claimer.to_release += never_started
        log.error(
            "lost the database: no lease renewed for most of a lease; running jobs stopped, claiming paused",
            extra={
                "worker_id": self.worker_id,
                "silent_seconds": round(silent_seconds, 1),
                "stopped": stopped,
                "handed_back": len(never_started),
            },
        )

    def recover(self, fenced_seconds: float) -> None:
        log.warning(
            "database reachable again: claiming resumed",
            extra={"worker_id": self.worker_id, "fenced_seconds": round(fenced_seconds, 1)},
        )
        self._wakeup.set()

    # -- shutdown -------------------------------------------------------------------------------------
    async def _finish_running(self) -> None:
        """Hands back jobs that never started at once, lets running jobs finish within the grace period, then
        hands back what is still running."""
        # Jobs never started: the local queue's, and those a pause or a fence took out of it not yet handed back.
        never_started, self.claimer.to_release = self.slots.take_queued() + self.claimer.to_release, []
        await self._release(never_started)
        running = self.slots.running
        if running:
            log.info(
                "waiting for running jobs",
                extra={"running": len(running), "grace_seconds": self.options.shutdown_grace_seconds},
            )
            # A slot ends once its job has (it takes no new one while stopping).
            await asyncio.wait([r.slot for r in running.values()], timeout=self.options.shutdown_grace_seconds)
        leftover = list(running.values())
        for r in leftover:
            r.stop()
        await self._release([r.job for r in leftover])
        await asyncio.gather(*(r.slot for r in leftover), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.completer.drain()
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.store.forget_job_starts(self.worker_id)
            if self.claimer.waiting:
                await self.claimer.stop_waiting()

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
