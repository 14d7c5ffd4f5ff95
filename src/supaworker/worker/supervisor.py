"""`supaworker worker --processes N`: runs N worker processes, restarts any that crash, forwards
SIGINT/SIGTERM to them, and serves one health endpoint for the group.

Each child is `supaworker worker-process --supervisor-pid PID --options-json SPEC`: the WorkerSpec its parent
resolved, as data, in a process group of its own (it watches PID and stops gracefully once that is gone).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

import psycopg

from ..config import Settings
from ..store import WorkerStore
from . import health
from .options import WorkerSpec
from .stopping import FORCE_SIGNAL, STOP_SIGNAL, hold_stops

log = logging.getLogger("supaworker.supervisor")

# A child that exits with one of these will fail the same way again (bad options, schema not migrated): stop
# instead of restarting. 3 (database unreachable) is not among them: children get the database URL the
# supervisor already resolved, so for them it means a database blip, which a restart with backoff rides out.
FATAL_EXIT_CODES = frozenset({2, 4})
RESTART_DELAY_SECONDS = 1.0
RESTART_DELAY_MAX_SECONDS = 30.0
STABLE_AFTER_SECONDS = 30.0
# The hidden command that runs one supervised worker (see cli/running.py); the spec's JSON follows it.
CHILD_COMMAND = ("-m", "supaworker", "worker-process")
# The signals a supervisor's event loop handles: each passed on to the workers (see _forward).
SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Supervisor:
    def __init__(self, spec: WorkerSpec, processes: int, conninfo: str, settings: Settings) -> None:
        self.spec = spec
        self.processes = processes
        self.conninfo = conninfo
        self.settings = settings
        self.worker_id = f"supervisor-{os.getpid()}-{int(time.time() * 1000)}"
        self.started = time.monotonic()
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self.exit_code = 0

    async def _spawn(self, slot: int) -> asyncio.subprocess.Process:
        env = {**os.environ, "DATABASE_URL": self.conninfo, "ENABLE_HEALTH_CHECK": "false"}
        # A process group of its own: a terminal's Ctrl-C or `kill -- -PGID` reaches the supervisor only, which
        # passes it on (see _forward).
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *CHILD_COMMAND,
            "--supervisor-pid",
            str(os.getpid()),
            "--options-json",
            self.spec.to_json(),
            env=env,
            start_new_session=True,
        )
        log.info("worker process started", extra={"slot": slot, "pid": proc.pid})
        return proc

    async def _keep_alive(self, slot: int) -> None:
        delay = RESTART_DELAY_SECONDS
        while not self._stopping:
            proc = await self._spawn(slot)
            self._children[slot] = proc
            began = time.monotonic()
            code = await proc.wait()
            if self._stopping:
                log.info("worker process exited", extra={"slot": slot, "pid": proc.pid, "code": code})
                return
            if code in FATAL_EXIT_CODES:
                log.error("worker process cannot start, stopping all", extra={"slot": slot, "code": code})
                self.exit_code = code
                self._forward(signal.SIGTERM)
                return
            if time.monotonic() - began > STABLE_AFTER_SECONDS:
                delay = RESTART_DELAY_SECONDS
            log.error(
                "worker process died, restarting",
                extra={"slot": slot, "pid": proc.pid, "code": code, "restart_in": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_MAX_SECONDS)

    def _forward(self, signum: int) -> None:
        """The first signal asks the workers to stop gracefully (STOP_SIGNAL, which a worker never takes for a
        second signal: under systemd's control-group kill it also gets the SIGTERM itself); a second one makes
        them exit at once (FORCE_SIGNAL)."""
        first = not self._stopping
        self._stopping = True
        sent = STOP_SIGNAL if first else FORCE_SIGNAL
        log.info(
            "forwarding signal to workers",
            extra={"signal": signal.Signals(signum).name, "sent": signal.Signals(sent).name, "first": first},
        )
        for proc in self._children.values():
            if proc.returncode is None:
                proc.send_signal(sent)

    async def run(self, held: Sequence[int] = ()) -> int:
        """Keeps the workers running until stopped; `held`: the signals received before its handlers were in
        place, acted on as soon as they are (no worker is started after a stop)."""
        loop = asyncio.get_running_loop()
        for signum in SUPERVISOR_SIGNALS:
            loop.add_signal_handler(signum, self._forward, signum)
        for held_signal in held:
            self._forward(held_signal)
        health_task = None
        if self.settings.enable_health_check:
            health_task = asyncio.create_task(self._serve_health())
        try:
            await asyncio.gather(*(self._keep_alive(slot) for slot in range(self.processes)))
        finally:
            if health_task is not None:
                health_task.cancel()
                await asyncio.gather(health_task, return_exceptions=True)
        return self.exit_code

    async def _serve_health(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        async with AsyncConnectionPool(
            self.conninfo, min_size=0, max_size=1, open=False, kwargs={"autocommit": True, "prepare_threshold": None}
        ) as pool:
            store = WorkerStore(pool, self.settings.schema_name)

            async def active_jobs() -> int:
                patterns = [f"worker-{p.pid}-%" for p in self._children.values() if p.returncode is None]
                return await store.count_active_jobs(patterns) if patterns else 0

            def children() -> list[int]:
                return sorted(p.pid for p in self._children.values() if p.returncode is None)

            source = health.HealthSource(
                lambda: self.worker_id, active_jobs, lambda: time.monotonic() - self.started, store.ping, children
            )
            await health.serve(source, self.settings.health_check_host, self.settings.health_check_port)


def run_supervisor(spec: WorkerSpec, processes: int, conninfo: str, settings: Settings) -> int:
    """Runs `processes` workers of `spec` on `conninfo` until SIGINT/SIGTERM; returns the exit code."""
    held = hold_stops(SUPERVISOR_SIGNALS)
    try:
        return asyncio.run(Supervisor(spec, processes, conninfo, settings).run(held))
    except psycopg.Error as exc:
        log.error("supervisor failed", extra={"error": str(exc)})
        return 1
