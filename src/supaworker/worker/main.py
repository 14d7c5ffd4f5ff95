"""Process-level wiring of one worker: signals, the health endpoint, and the exit code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

from ..config import Settings
from ..db import ConnectionProfile
from ..registry import Registry
from .options import WorkerOptions
from .protocol import WorkerQueries
from .runner import Worker, WorkerService, new_worker_id
from .stopping import FORCE_SIGNAL, STOP_SIGNAL, hold_stops

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from ..maintenance import MaintenanceService

log = logging.getLogger("supaworker.worker")

EXIT_FORCED = 130
# The signals a worker's event loop handles (see _run).
WORKER_SIGNALS = (signal.SIGINT, signal.SIGTERM, STOP_SIGNAL, FORCE_SIGNAL)
SUPERVISOR_CHECK_SECONDS = 1.0
# A first claim is answered within milliseconds: one that is not by then makes the jobs wait anyway.
HEALTH_WAITS_FOR_FIRST_CLAIM_SECONDS = 1.0
# A task of the worker died (see worker/monitor.py): a supervisor should start it again.
EXIT_FAILED = 1
# A stop not finished this long after it began, by a worker that holds no job, waits for nothing of its own
# (see _StopDeadline).
IDLE_STOP_SECONDS = 5.0

# One module tree at a time: two threads importing modules that import each other could see them half-done.
_background_imports = threading.Lock()


async def import_in_background(name: str) -> ModuleType:
    """Imports a module in a thread, so the event loop (and the jobs on it) keeps running meanwhile."""

    def load() -> ModuleType:
        with _background_imports:
            return import_module(name)

    return await asyncio.to_thread(load)


async def _watch_supervisor(worker: Worker, supervisor_pid: int) -> None:
    """A supervised worker runs in a process group of its own, so a terminal's hang-up does not reach it: it
    stops by itself, gracefully, when its supervisor is gone. The pid comes from the supervisor: one that died
    while this process was starting would otherwise leave it watching its new parent."""
    while os.getppid() == supervisor_pid:  # noqa: ASYNC110 (nothing tells a process its parent died: look)
        await asyncio.sleep(SUPERVISOR_CHECK_SECONDS)
    log.warning("supervisor gone: finishing running jobs", extra={"supervisor_pid": supervisor_pid})
    worker.request_stop()


async def _run(
    worker: Worker,
    settings: Settings,
    supervisor_pid: int | None,
    held: Sequence[int] = (),
    deadline: _StopDeadline | None = None,
) -> None:
    """Runs the worker with its signal handlers, its health endpoint and its supervisor's watch; `held`: the
    signals received before those handlers were in place, acted on as soon as they are; `deadline`: started
    once the worker is told to stop (see _StopDeadline)."""
    loop = asyncio.get_running_loop()
    watch = asyncio.create_task(_watch_supervisor(worker, supervisor_pid)) if supervisor_pid else None
    own_signals = 0
    stopping = False

    def on_signal(signum: int) -> None:
        nonlocal own_signals, stopping
        if signum != STOP_SIGNAL and signum != FORCE_SIGNAL:
            own_signals += 1
        if signum == FORCE_SIGNAL or own_signals > 1:
            reason = "told to exit at once" if signum == FORCE_SIGNAL else "second signal"
            log.warning("%s: exiting now; unfinished jobs return when their lease expires", reason)
            logging.shutdown()
            os._exit(EXIT_FORCED)
        if stopping:
            return  # the same stop again: the supervisor's and this worker's own (systemd's cgroup kill)
        stopping = True
        log.info(
            "signal received, finishing running jobs (send it again to exit at once)",
            extra={"signal": signal.Signals(signum).name},
        )
        worker.request_stop()

    for signum in WORKER_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    for held_signal in held:
        on_signal(held_signal)

    arm = asyncio.create_task(_start_when_stopping(worker, deadline), name="deadline") if deadline else None
    health_task = None
    if settings.enable_health_check:
        health_task = asyncio.create_task(_serve_health(worker, settings), name="health")
    try:
        await worker.run()
    finally:
        for task in (health_task, watch, arm):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


class _StopDeadline:
    """Ends a stop that the database holds up. Started once the worker is told to stop (see _run), in a thread,
    as the event loop may be what waits: for a statement a database stopped answering in the middle of (a hung
    proxy or pooler keeps the socket open, so nothing times out), in the worker or in a maintenance thread the
    closing event loop waits for.

    A worker that holds no job IDLE_STOP_SECONDS after the stop began has nothing left to finish, record or
    hand back: it exits then, with 0 (a claim still in flight may have taken jobs for it; they come back
    when their lease expires, as a killed worker's do). One that holds jobs gets the grace period and a
    lease: its jobs are past their leases by then, and it exits as on a second signal."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.seconds = worker.options.shutdown_grace_seconds + worker.options.lease_seconds
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._cancelled = False

    def start(self) -> None:
        self._after(min(IDLE_STOP_SECONDS, self.seconds), self._exit_if_idle)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._timer is not None:
                self._timer.cancel()

    def _after(self, seconds: float, action: Callable[[], None]) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._timer = threading.Timer(seconds, action)
            self._timer.daemon = True
            self._timer.start()

    def _exit_if_idle(self) -> None:
        if not self.worker.holds_nothing():
            self._after(max(0.0, self.seconds - IDLE_STOP_SECONDS), self._exit_forced)
            return
        log.warning(
            "stop not finished after %s s and no job held (the database stopped answering?): exiting now",
            IDLE_STOP_SECONDS,
            extra={"worker_id": self.worker.worker_id},
        )
        logging.shutdown()
        os._exit(0)

    def _exit_forced(self) -> None:
        log.error(
            "could not finish stopping within the grace period and a lease (the database stopped answering?): "
            "exiting now; unfinished jobs return when their lease expires",
            extra={"worker_id": self.worker.worker_id, "seconds": self.seconds},
        )
        logging.shutdown()
        os._exit(EXIT_FORCED)


async def _start_when_stopping(worker: Worker, deadline: _StopDeadline) -> None:
    await worker.stop_requested()
    deadline.start()


async def _serve_health(worker: Worker, settings: Settings) -> None:
    """Serves the health endpoint from the worker's first claim on, so that the first jobs do not wait for
    starlette and uvicorn to load; or after HEALTH_WAITS_FOR_FIRST_CLAIM_SECONDS without an answer to that
    claim (its connections waiting for a database gone since the probe, a lock it waits for), to say so."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(HEALTH_WAITS_FOR_FIRST_CLAIM_SECONDS):
            await worker.claimed_once.wait()
    health = await import_in_background("supaworker.worker.health")

    async def active_jobs() -> int:
        return worker.active_jobs

    source = health.HealthSource(lambda: worker.worker_id, active_jobs, lambda: worker.uptime_seconds, worker.ping)
    await health.serve(source, settings.health_check_host, settings.health_check_port)


class _Maintenance:
    """The worker's MaintenanceService, built when the worker starts it (after its first claim): the first jobs
    do not wait for its modules (cron parsing, the full Store) or its connection pool."""

    name = "maintenance"

    def __init__(self, profile: ConnectionProfile, settings: Settings, worker_id: str) -> None:
        self.profile = profile
        self.settings = settings
        self.worker_id = worker_id
        self.pool: ConnectionPool | None = None

    async def run(self) -> None:
        await import_in_background("supaworker.maintenance.service")
        await self._build().run()

    def _build(self) -> MaintenanceService:
        from psycopg_pool import ConnectionPool

        from ..maintenance import MaintenanceConfig, MaintenanceService, PrunerConfig, history_config
        from ..store import Store

        settings = self.settings
        # A small pool of its own: maintenance runs in threads and must not take the claim loop's connections.
        self.pool = ConnectionPool(
            self.profile.conninfo,
            min_size=1,
            max_size=2,
            kwargs=self.profile.connect_kwargs,
            open=True,
            name="maintenance",
        )
        pruner = PrunerConfig(
            completed_retention_seconds=settings.prune_completed_after_seconds,
            failed_retention_seconds=settings.prune_failed_after_seconds,
            cancelled_retention_seconds=settings.prune_cancelled_after_seconds,
        )
        config = MaintenanceConfig(pruner=pruner, history=history_config(settings))
        return MaintenanceService(Store(self.pool, settings.schema_name), self.worker_id, config)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def run_worker(
    connection: ConnectionProfile | WorkerQueries,
    settings: Settings,
    registry: Registry,
    options: WorkerOptions,
    *,
    supervisor_pid: int | None = None,
) -> int:
    """Runs one worker in this process until it is stopped; returns the exit code. `connection`: the Postgres
    connection's profile, or a store that works through another transport (the HTTP worker passes its
    PostgREST store, and then runs no maintenance); `supervisor_pid`: of a child of `worker --processes N`,
    which also stops when its supervisor is gone."""
    worker_id = new_worker_id()
    services: list[WorkerService] = []
    maintenance = None
    if settings.maintenance_enabled and isinstance(connection, ConnectionProfile):
        maintenance = _Maintenance(connection, settings, worker_id)
        services.append(maintenance)
    worker = Worker(connection, settings.schema_name, registry, options, worker_id=worker_id, services=services)
    held = hold_stops(WORKER_SIGNALS)
    deadline = _StopDeadline(worker)
    try:
        asyncio.run(_run(worker, settings, supervisor_pid, held, deadline))
    finally:
        if maintenance is not None:
            maintenance.close()
        deadline.cancel()
    if worker.failure:
        log.error("worker stopped after a failure of its own", extra={"reason": worker.failure})
        return EXIT_FAILED
    if worker.executor.busy_threads():
        # A sync handler still running past the grace period cannot be interrupted; its job was released.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0
