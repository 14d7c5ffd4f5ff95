"""Commands that run the system: `worker` (one process, or N supervised ones) and `up` (everything).

A supervised worker is the hidden `worker-process` command, given the WorkerSpec its parent resolved as JSON.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import psycopg

from .. import migrate as migrations
from .. import sql
from ..config import Settings
from ..db import ConnectionProfile
from ..registry import default_registry
from ..worker.stopping import exit_on_stop_while_starting
from .app import EXIT_BAD_INPUT, CommandContext, command, fail, main

log = logging.getLogger("supaworker.worker")

T = TypeVar("T")


def _import_modules(modules: Sequence[str]) -> None:
    if "" not in sys.path:
        sys.path.insert(0, "")
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            fail(f"cannot import handler module {name!r}: {exc}", EXIT_BAD_INPUT)


def _register_handlers(imports: Sequence[str], builtins: bool, types: Sequence[str], settings: Settings) -> None:
    """Imports the handler modules, then the built-in types they leave unhandled; exits 2 when a type in
    `types` has no handler, or no handler is registered at all."""
    _import_modules(imports)
    if builtins:
        # After the imports, and only for the types they left unregistered: the application's handlers win.
        from ..builtins import register_builtins

        register_builtins(default_registry, settings.artifacts_dir)
    unknown = [t for t in types if t not in default_registry]
    if unknown:
        fail(f"no handler registered for type(s) {', '.join(unknown)}; add --import MODULE", EXIT_BAD_INPUT)
    if not len(default_registry):
        fail(
            "no handlers registered; pass --import MODULE with @supaworker.handler functions (or drop --no-builtins)",
            EXIT_BAD_INPUT,
        )


# The interpreter's thread switch interval while the start-up thread runs (Python's default is 5 ms): that
# thread mostly waits on the network, and each time it wakes it waits up to an interval for the imports of
# the main thread to let go of the interpreter lock.
START_SWITCH_INTERVAL_SECONDS = 0.0005


def _in_background(func: Callable[[], T]) -> Callable[[], T]:
    """Starts `func` in a thread; the function returned waits for it, then returns its value or raises its error.
    A daemon thread: a process that exits meanwhile (a handler module that does not import) does not wait for
    it. Until it is waited for, the interpreter switches threads every START_SWITCH_INTERVAL_SECONDS."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, func()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="supaworker-start", daemon=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(START_SWITCH_INTERVAL_SECONDS)
    thread.start()

    def result() -> T:
        thread.join()
        sys.setswitchinterval(interval)
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    return result


def _reach_database(ctx: CommandContext, settings: Settings) -> Callable[[], ConnectionProfile]:
    """Connecting and checking that the schema is at a version this code runs on (on the same connection), to
    be waited for with the function returned: it returns the profile or raises what they raised (exit 3, or 4
    with MigrationError). With DATABASE_URL set they run meanwhile, in a thread, while the handler modules and
    the worker import; their errors are still reported after the handlers' own. Without it they run when
    waited for (starting the embedded PostgreSQL prints a note)."""

    def check_migrated(conn: psycopg.Connection[Any]) -> None:
        migrations.check_current(conn, settings.schema_name)

    def reach() -> ConnectionProfile:
        return ctx.connect(then=check_migrated)

    if not settings.database_url:
        return reach
    # The check compares the ledger with the migrations this code ships, read here first: in the thread, each
    # file read would wait for the interpreter lock while this thread imports (10 ms later at the first job).
    sql.migrations()
    return _in_background(reach)


@command(main)
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="Module that registers handlers (repeatable).",
)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Max concurrent jobs per process.")
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to run and supervise.",
)
@click.option("--type", "types", multiple=True, help="Only these job types (default: every registered type).")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME[=N]",
    help="Only these queues (default: all); NAME=N gives the queue N slots of its own.",
)
@click.option("--poll-interval-ms", type=click.IntRange(min=10), help="Fallback poll interval.")
@click.option("--job-timeout-ms", type=click.IntRange(min=1), help="Default per-attempt timeout.")
@click.option("--lease-seconds", type=click.FloatRange(min=0.1), help="Lease length; heartbeat every third of it.")
@click.option("--shutdown-grace", type=click.FloatRange(min=0), help="Seconds running jobs get on shutdown.")
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    help="Jobs claimed ahead of free slots (default: about 0.1 s of work, up to 500).",
)
@click.option(
    "--no-builtins",
    "no_builtins",
    is_flag=True,
    help="Do not run the built-in job types (analysis, render, ...) that the --import modules leave unhandled.",
)
def worker(
    ctx: CommandContext,
    imports: tuple[str, ...],
    concurrency: int | None,
    processes: int,
    types: tuple[str, ...],
    queues: tuple[str, ...],
    poll_interval_ms: int | None,
    job_timeout_ms: int | None,
    lease_seconds: float | None,
    shutdown_grace: float | None,
    prefetch: int | None,
    no_builtins: bool,
) -> None:
    """Run a worker: claim jobs, run their handlers, retry failures (Ctrl-C to stop gracefully)."""
    exit_on_stop_while_starting(supervisor=processes > 1)
    settings = ctx.settings
    queue_names, queue_concurrency = _parse_queues(queues, concurrency or settings.max_concurrent_jobs)
    database = None if settings.uses_http else _reach_database(ctx, settings)
    _register_handlers(imports, not no_builtins, types, settings)
    from ..worker.main import run_worker
    from ..worker.options import WorkerOptions, WorkerSpec

    options = WorkerOptions.from_settings(
        settings,
        queue_concurrency=queue_concurrency,
        concurrency=concurrency,
        poll_interval_seconds=poll_interval_ms / 1000 if poll_interval_ms else None,
        job_timeout_seconds=job_timeout_ms / 1000 if job_timeout_ms else None,
        lease_seconds=lease_seconds,
        shutdown_grace_seconds=shutdown_grace,
        prefetch=prefetch,
        types=list(types) or None,
        queues=queue_names or None,
    )
    if database is None:
        # No DATABASE_URL but a Supabase URL and service key: work through PostgREST (see postgrest.py).
        if processes > 1:
            fail("--processes needs DATABASE_URL; over HTTP run several `supaworker worker` instead", EXIT_BAD_INPUT)
        from ..postgrest import worker_store_from_settings

        sys.exit(run_worker(worker_store_from_settings(settings), settings, default_registry, options))
    profile = database()
    if processes > 1:
        from ..worker.supervisor import run_supervisor

        spec = WorkerSpec(options, imports=imports, builtins=not no_builtins)
        sys.exit(run_supervisor(spec, processes, profile, settings))
    sys.exit(run_worker(profile, settings, default_registry, options))


@command(main, "worker-process", hidden=True)
@click.option("--options-json", required=True, help="The WorkerSpec the supervisor resolved, as JSON.")
@click.option("--supervisor-pid", type=int, default=None, help="Stop gracefully once this process is gone.")
def worker_process(ctx: CommandContext, options_json: str, supervisor_pid: int | None) -> None:
    """Run one worker of `worker --processes N` with the options its supervisor resolved."""
    exit_on_stop_while_starting()
    from ..worker.options import WorkerSpec

    settings = ctx.settings
    try:
        spec = WorkerSpec.from_json(options_json)
    except ValueError as exc:
        fail(f"--options-json: {exc}", EXIT_BAD_INPUT)
    database = _reach_database(ctx, settings)
    _register_handlers(spec.imports, spec.builtins, spec.options.types or (), settings)
    from ..worker.main import run_worker

    profile = database()
    # The supervisor logs only pids; this line says what each child really runs with.
    log.info("worker process options", extra=spec.log_fields())
    sys.exit(run_worker(profile, settings, default_registry, spec.options, supervisor_pid=supervisor_pid))


def _parse_queues(specs: Sequence[str], default_slots: int) -> tuple[list[str], dict[str, int] | None]:
    """`--queue a --queue b=2`: the queue names, and each queue's own slots when any N was given."""
    names: list[str] = []
    slots: dict[str, int] = {}
    for spec in specs:
        name, sep, count = spec.partition("=")
        name = name.strip()
        if not name:
            fail(f"--queue {spec!r}: the queue needs a name", EXIT_BAD_INPUT)
        if sep:
            if not count.strip().isdigit() or int(count) < 1:
                fail(f"--queue {spec!r}: N must be a whole number >= 1", EXIT_BAD_INPUT)
            slots[name] = int(count)
        if name not in names:
            names.append(name)
    if not slots:
        return names, None
    return names, {name: slots.get(name, default_slots) for name in names}


@command(main)
@click.option("--host", default=None, help="Address for the API, dashboard and health endpoint [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="API and dashboard port [default: 3000].")
@click.option("--health-port", type=click.IntRange(0, 65535), default=None, help="Health port [default: 3001].")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Max concurrent jobs per worker process.")
@click.option("--import", "imports", multiple=True, metavar="MODULE", help="Module with your handlers (repeatable).")
@click.option("--demo", is_flag=True, help="Create a few briefs of each media type to watch them run.")
def up(
    ctx: CommandContext,
    host: str | None,
    port: int | None,
    health_port: int | None,
    processes: int,
    concurrency: int | None,
    imports: tuple[str, ...],
    demo: bool,
) -> None:
    """Run everything: migrate, API and dashboard (:3000), workers, health (:3001). Ctrl-C stops it all."""
    from ..api.settings import get_api_settings
    from ..up import UpOptions, run_up

    settings = ctx.settings
    api_settings = get_api_settings()
    options = UpOptions(
        host=host or api_settings.host,
        port=api_settings.port if port is None else port,
        health_port=settings.health_check_port if health_port is None else health_port,
        processes=processes,
        concurrency=concurrency,
        imports=list(imports),
        demo=demo,
    )
    sys.exit(run_up(options, settings, api_settings, click.echo))
