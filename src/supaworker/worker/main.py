"""Process-level wiring of one worker: signals, the health endpoint, and the exit code."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from psycopg_pool import ConnectionPool

from ..config import Settings
from ..db import ConnectionProfile
from ..registry import Registry
from ..store import Store
from .options import WorkerOptions
from .protocol import WorkerQueries
from .runner import Worker, WorkerService, new_worker_id

log = logging.getLogger("supaworker.worker")

EXIT_FORCED = 130
# What a supervisor (`--processes N`) sends to stop a worker gracefully, and to make it exit at once. Neither
# counts as one of the worker's own signals: under systemd's control-group kill a worker gets the supervisor's
# stop and its own SIGTERM, in either order, and that is one stop.
STOP_SIGNAL = signal.SIGUSR2
FORCE_SIGNAL = signal.SIGUSR1
SUPERVISOR_CHECK_SECONDS = 1.0
# A task of the worker died (see worker/monitor.py): a supervisor should start it again.
EXIT_FAILED = 1


async def _watch_supervisor(worker: Worker, supervisor_pid: int) -> None:
    """A supervised worker runs in a process group of its own, so a terminal's hang-up does not reach it: it
    stops by itself, gracefully, when its supervisor is gone. The pid comes from the supervisor: one that died
    while this process was starting would otherwise leave it watching its new parent."""
    while os.getppid() == supervisor_pid:  # noqa: ASYNC110 (nothing tells a process its parent died: look)
        await asyncio.sleep(SUPERVISOR_CHECK_SECONDS)
    log.warning("supervisor gone: finishing running jobs", extra={"supervisor_pid": supervisor_pid})
    worker.request_stop()


async def _run(worker: Worker, settings: Settings, supervisor_pid: int | None) -> None:
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

    for signum in (signal.SIGINT, signal.SIGTERM, STOP_SIGNAL, FORCE_SIGNAL):
        loop.add_signal_handler(signum, on_signal, signum)

    health_task = None
    if settings.enable_health_check:
        from . import health  # starlette and uvicorn: only when the endpoint is served

        async def active_jobs() -> int:
            return worker.active_jobs

        source = health.HealthSource(lambda: worker.worker_id, active_jobs, lambda: worker.uptime_seconds, worker.ping)
        health_task = asyncio.create_task(
            health.serve(source, settings.health_check_host, settings.health_check_port), name="health"
        )
    try:
        await worker.run()
    finally:
        for task in (health_task, watch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


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
    maintenance_pool = None
    if settings.maintenance_enabled and isinstance(connection, ConnectionProfile):
        from ..maintenance import MaintenanceConfig, MaintenanceService, PrunerConfig, history_config

        # A small pool of its own: maintenance runs in threads and must not take the claim loop's connections.
        maintenance_pool = ConnectionPool(
            connection.conninfo, min_size=1, max_size=2, kwargs=connection.connect_kwargs, open=True, name="maintenance"
        )
        pruner = PrunerConfig(
            completed_retention_seconds=settings.prune_completed_after_seconds,
            failed_retention_seconds=settings.prune_failed_after_seconds,
            cancelled_retention_seconds=settings.prune_cancelled_after_seconds,
        )
        maintenance_store = Store(maintenance_pool, settings.schema_name)
        config = MaintenanceConfig(pruner=pruner, history=history_config(settings))
        services.append(MaintenanceService(maintenance_store, worker_id, config))
    worker = Worker(connection, settings.schema_name, registry, options, worker_id=worker_id, services=services)
    try:
        asyncio.run(_run(worker, settings, supervisor_pid))
    finally:
        if maintenance_pool is not None:
            maintenance_pool.close()
    if worker.failure:
        log.error("worker stopped after a failure of its own", extra={"reason": worker.failure})
        return EXIT_FAILED
    if worker.executor.busy_threads():
        # A sync handler still running past the grace period cannot be interrupted; its job was released.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0
