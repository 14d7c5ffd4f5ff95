"""Process-level wiring of one worker: signals, the health endpoint, and the exit code."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from ..config import Settings
from ..db import ConnectionProfile
from ..registry import Registry
from . import health
from .protocol import WorkerQueries
from .runner import Worker, WorkerOptions

log = logging.getLogger("supaworker.worker")

EXIT_FORCED = 130


async def _run(worker: Worker, settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info(
                "signal received, finishing running jobs (send it again to exit at once)",
                extra={"signal": signal.Signals(signum).name},
            )
            worker.request_stop()
        else:
            log.warning("second signal: exiting now; unfinished jobs return when their lease expires")
            logging.shutdown()
            os._exit(EXIT_FORCED)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)

    health_task = None
    if settings.enable_health_check:

        async def active_jobs() -> int:
            return worker.active_jobs

        source = health.HealthSource(lambda: worker.worker_id, active_jobs, lambda: worker.uptime_seconds, worker.ping)
        health_task = asyncio.create_task(
            health.serve(source, settings.health_check_host, settings.health_check_port), name="health"
        )
    try:
        await worker.run()
    finally:
        if health_task is not None:
            health_task.cancel()
            await asyncio.gather(health_task, return_exceptions=True)


def run_worker(
    profile: ConnectionProfile | None,
    settings: Settings,
    registry: Registry,
    options: WorkerOptions,
    store: WorkerQueries | None = None,
) -> int:
    """Runs one worker in this process until it is stopped; returns the exit code. `store` replaces the
    Postgres connection (the HTTP worker passes its PostgREST store)."""
    worker = Worker(profile, settings.schema_name, registry, options, store=store)
    asyncio.run(_run(worker, settings))
    if worker.executor.busy_threads():
        # A sync handler still running past the grace period cannot be interrupted; its job was released.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0
