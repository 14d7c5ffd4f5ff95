"""`supaworker worker --processes N`: runs N worker processes, restarts any that crash, forwards
SIGINT/SIGTERM to them, and serves one health endpoint for the group.

The first N are forked from the supervisor before its event loop starts, when it has imported the handler
modules, connected and checked the schema, and has no other thread: a fresh interpreter would spend about
0.25 s doing all that again before its first job. A child that replaces one that died is a fresh interpreter,
`supaworker worker-process --supervisor-pid PID --options-json SPEC` (the WorkerSpec its parent resolved, as
data), whatever the parent's state by then. Either way a child runs in a process group of its own and stops
gracefully once its supervisor is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import psycopg

from ..config import Settings
from ..db import ConnectionProfile
from ..registry import default_registry
from ..store import WorkerStore
from .main import EXIT_FORCED
from .options import WorkerSpec
from .stopping import FORCE_SIGNAL, STOP_SIGNAL, exit_on_stop_while_starting, hold_stops

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


class Child(Protocol):
    """What the supervisor uses of a worker process, forked or started fresh (asyncio.subprocess.Process)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def send_signal(self, signum: int, /) -> None: ...

    async def wait(self) -> int: ...


class ForkedChild:
    """A worker forked from the supervisor, waited for through a pidfd on the supervisor's event loop."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def send_signal(self, signum: int, /) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def wait(self) -> int:
        if self.returncode is None:
            loop = asyncio.get_running_loop()
            exited: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not exited.done():
                    exited.set_result(None)

            fd = os.pidfd_open(self.pid)
            try:
                loop.add_reader(fd, readable)
                await exited
            finally:
                loop.remove_reader(fd)
                os.close(fd)
            self.returncode = _reap(self.pid)
        return self.returncode


def _reap(pid: int) -> int:
    """The exit code of a child that has exited (its pidfd said so: this does not wait)."""
    _, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status)


def child_environment(conninfo: str) -> dict[str, str]:
    """What a worker's environment says beyond its supervisor's: the database the supervisor resolved, and no
    health endpoint of its own (the supervisor serves one for the group)."""
    return {"DATABASE_URL": conninfo, "ENABLE_HEALTH_CHECK": "false"}


def can_fork() -> bool:
    """A fork is safe, and its child can be waited for, only from a process with one thread (a lock another
    thread held would stay held in the child) and no open socket (a connection a handler module opened at
    import would be shared by every child), on a system with pidfds (Linux 5.3)."""
    if not hasattr(os, "pidfd_open") or threading.active_count() != 1 or _holds_sockets():
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def _holds_sockets() -> bool:
    """Whether this process has a socket open beyond its standard streams (which may be one, under systemd)."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return True  # cannot tell
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    return True
    return False


def fork_worker(spec: WorkerSpec, profile: ConnectionProfile, settings: Settings) -> ForkedChild:
    """Forks a worker of `spec`; the child runs it and exits with its code, never returning here."""
    supervisor_pid = os.getpid()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that is gone (`| tee`, stopped) must not stop a restart
            stream.flush()  # what is buffered would be written twice
    pid = os.fork()
    if pid:
        return ForkedChild(pid)
    code = 1
    try:
        os.setsid()
        exit_on_stop_while_starting()
        # What a fresh child gets in its environment, for the handlers' own use (create_job() and the like).
        os.environ.update(child_environment(profile.conninfo))
        from .main import run_worker

        logging.getLogger("supaworker.worker").info("worker process options", extra=spec.log_fields())
        child_settings = settings.model_copy(update={"enable_health_check": False, "database_url": profile.conninfo})
        code = run_worker(profile, child_settings, default_registry, spec.options, supervisor_pid=supervisor_pid)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker process failed")
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


class Supervisor:
    def __init__(
        self,
        spec: WorkerSpec,
        processes: int,
        conninfo: str,
        settings: Settings,
        forked: Sequence[ForkedChild] = (),
    ) -> None:
        self.spec = spec
        self.processes = processes
        self.conninfo = conninfo
        self.settings = settings
        self.worker_id = f"supervisor-{os.getpid()}-{int(time.time() * 1000)}"
        self.started = time.monotonic()
        self._children: dict[int, Child] = {}
        self._forked = list(forked)  # the first children, forked before the event loop started
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self.exit_code = 0

    async def _spawn(self, slot: int) -> Child:
        if self._forked:
            child = self._forked.pop(0)
            log.info("worker process started", extra={"slot": slot, "pid": child.pid, "forked": True})
            return child
        env = {**os.environ, **child_environment(self.conninfo)}
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
            if self._stopping:
                # The stop came while the process was being started, before it was among the children the stop
                # reached: it gets it now.
                proc.send_signal(STOP_SIGNAL)
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
            # A stop meanwhile ends the wait: there is no worker left to stop in this slot.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            delay = min(delay * 2, RESTART_DELAY_MAX_SECONDS)

    def _forward(self, signum: int) -> None:
        """The first signal asks the workers to stop gracefully (STOP_SIGNAL, which a worker never takes for a
        second signal: under systemd's control-group kill it also gets the SIGTERM itself); a second one makes
        them exit at once (FORCE_SIGNAL)."""
        first = not self._stopping
        self._stopping = True
        self._stop_requested.set()
        sent = STOP_SIGNAL if first else FORCE_SIGNAL
        log.info(
            "forwarding signal to workers",
            extra={"signal": signal.Signals(signum).name, "sent": signal.Signals(sent).name, "first": first},
        )
        for proc in self._children.values():
            if proc.returncode is None:
                proc.send_signal(sent)
                if not first and not self.exit_code:
                    self.exit_code = EXIT_FORCED  # what a single worker exits with on a second signal

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
        # Loaded after the fork (the children do not need starlette and uvicorn, and start 30 ms sooner), in a
        # thread: signals and the children's exits are handled meanwhile.
        from psycopg_pool import AsyncConnectionPool

        from .main import import_in_background

        health = await import_in_background("supaworker.worker.health")

        async with AsyncConnectionPool(
            self.conninfo, min_size=0, max_size=1, open=False, kwargs={"autocommit": True, "prepare_threshold": None}
        ) as pool:
            store = WorkerStore(pool, self.settings.schema_name)

            async def active_jobs() -> int:
                patterns = [f"worker-{p.pid}-%" for p in self._children.values() if p.returncode is None]
                return await store.count_active_jobs(patterns) if patterns else 0

            def children() -> list[int]:
                return sorted(p.pid for p in self._children.values() if p.returncode is None)

            def problem() -> str | None:
                # A worker that keeps dying (restarted with a growing delay) shows here, not only in the log.
                live = len(children())
                if self._stopping or live >= self.processes:
                    return None
                return f"worker processes running: {live} of {self.processes} (the others are being restarted)"

            source = health.HealthSource(
                lambda: self.worker_id,
                active_jobs,
                lambda: time.monotonic() - self.started,
                store.ping,
                children,
                problem,
            )
            await health.serve(source, self.settings.health_check_host, self.settings.health_check_port)


def run_supervisor(spec: WorkerSpec, processes: int, profile: ConnectionProfile, settings: Settings) -> int:
    """Runs `processes` workers of `spec` on `profile`'s database until SIGINT/SIGTERM; returns the exit
    code."""
    held = hold_stops(SUPERVISOR_SIGNALS)
    forked = [fork_worker(spec, profile, settings) for _ in range(processes)] if not held and can_fork() else []
    try:
        return asyncio.run(Supervisor(spec, processes, profile.conninfo, settings, forked).run(held))
    except psycopg.Error as exc:
        log.error("supervisor failed", extra={"error": str(exc)})
        return 1
