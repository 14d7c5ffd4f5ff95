"""The `supaworker` command.

Exit codes (stable, for scripts):
    0  success
    1  unexpected error
    2  bad input: invalid option, JSON, status or job field (nothing was written)
    3  configuration: no database configured, or the database cannot be reached
    4  schema: not migrated (run `supaworker migrate`), or migrated by a newer supaworker
    5  not found: no job or brief with that id
    6  conflict: the job's state does not allow the action (e.g. retrying a completed job)
    7  doctor: at least one check failed
  130  stopped by a second SIGINT/SIGTERM before running jobs finished
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import psycopg
from pydantic import ValidationError

from . import briefs, client, pipelines
from . import migrate as migrations
from .config import Settings, get_settings
from .db import ConnectionProfile, probe, resolve_conninfo
from .errors import (
    BriefNotFound,
    ConfigError,
    DatabaseUnavailable,
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    MigrationError,
)
from .log import configure_logging
from .registry import default_registry
from .states import JobStatus

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_CONFIG = 3
EXIT_SCHEMA = 4
EXIT_NOT_FOUND = 5
EXIT_CONFLICT = 6
EXIT_DOCTOR_FAILED = 7

F = TypeVar("F", bound=Callable[..., Any])

_ERROR_EXITS: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidJob, EXIT_BAD_INPUT),
    (ConfigError, EXIT_CONFIG),
    (DatabaseUnavailable, EXIT_CONFIG),
    (MigrationError, EXIT_SCHEMA),
    (JobNotFound, EXIT_NOT_FOUND),
    (BriefNotFound, EXIT_NOT_FOUND),
    (InvalidTransition, EXIT_CONFLICT),
)


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turns the errors supaworker raises on purpose into one line and a documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            problems = "; ".join(f"{e['msg']}" for e in exc.errors())
            fail(f"invalid configuration: {problems}", EXIT_CONFIG)
        except psycopg.errors.UndefinedTable as exc:
            fail(
                f"supaworker schema not found ({str(exc).splitlines()[0]}); run `supaworker migrate`",
                EXIT_SCHEMA,
            )
        except psycopg.OperationalError as exc:
            fail(f"cannot reach the database: {str(exc).strip()}", EXIT_CONFIG)
        except Exception as exc:
            for kind, code in _ERROR_EXITS:
                if isinstance(exc, kind):
                    fail(str(exc), code)
            raise

    return wrapper  # type: ignore[return-value]


class _Context:
    """Settings and the database connection, resolved once and only when a command needs them."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._profile: ConnectionProfile | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
            configure_logging(self._settings.log_level, self._settings.log_format)
        return self._settings

    @property
    def profile(self) -> ConnectionProfile:
        if self._profile is None:
            self._profile = probe(resolve_conninfo(self.settings), self.settings.pooler_mode)
        return self._profile

    def store(self) -> Any:
        s = self.settings
        self.profile  # noqa: B018 - resolve (and maybe start) the database before the pool opens
        return client.get_store(s)


pass_ctx = click.make_pass_decorator(_Context, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="supaworker")
def main() -> None:
    """supaworker: a PostgreSQL job queue and worker (Redis/Bull without Redis)."""


@main.command()
@click.option("--status", "show_status", is_flag=True, help="Show applied and pending migrations; change nothing.")
@pass_ctx
@handle_errors
def migrate(ctx: _Context, show_status: bool) -> None:
    """Install or upgrade the supaworker schema (safe to run from many processes at once)."""
    schema = ctx.settings.schema_name
    if show_status:
        with psycopg.connect(ctx.profile.conninfo, prepare_threshold=None) as conn:
            state = migrations.status(conn, schema)
        click.echo(
            f"schema {schema}: at {state.current}, latest {state.latest_known}, pending {state.pending or 'none'}"
        )
        return
    applied = migrations.migrate(ctx.profile.conninfo, schema)
    if applied:
        click.echo(f"schema {schema}: applied migrations {', '.join(f'{v:04d}' for v in applied)}")
    else:
        click.echo(f"schema {schema}: up to date")


def _import_modules(modules: Sequence[str]) -> None:
    if "" not in sys.path:
        sys.path.insert(0, "")
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            fail(f"cannot import handler module {name!r}: {exc}", EXIT_BAD_INPUT)


@main.command()
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
@click.option("--queue", "queues", multiple=True, help="Only these queues (default: all).")
@click.option("--poll-interval-ms", type=click.IntRange(min=10), help="Fallback poll interval.")
@click.option("--job-timeout-ms", type=click.IntRange(min=1), help="Default per-attempt timeout.")
@click.option("--lease-seconds", type=click.FloatRange(min=0.1), help="Lease length; heartbeat every third of it.")
@click.option("--shutdown-grace", type=click.FloatRange(min=0), help="Seconds running jobs get on shutdown.")
@click.option("--prefetch", type=click.IntRange(min=0), help="Jobs claimed ahead of free slots (default: concurrency).")
@click.option(
    "--no-builtins",
    "no_builtins",
    is_flag=True,
    help="Do not run the built-in job types (analysis, render, ...) that the --import modules leave unhandled.",
)
@pass_ctx
@handle_errors
def worker(
    ctx: _Context,
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
    from .worker.main import run_worker
    from .worker.runner import WorkerOptions

    settings = ctx.settings
    _import_modules(imports)
    if not no_builtins:
        # After the imports, and only for the types they left unregistered: the application's handlers win.
        from .builtins import register_builtins

        register_builtins(default_registry, settings.artifacts_dir)
    unknown = [t for t in types if t not in default_registry]
    if unknown:
        fail(f"no handler registered for type(s) {', '.join(unknown)}; add --import MODULE", EXIT_BAD_INPUT)
    if not len(default_registry):
        fail(
            "no handlers registered; pass --import MODULE with @supaworker.handler functions (or drop --no-builtins)",
            EXIT_BAD_INPUT,
        )
    options = WorkerOptions.from_settings(
        settings,
        concurrency=concurrency,
        poll_interval_seconds=poll_interval_ms / 1000 if poll_interval_ms else None,
        job_timeout_seconds=job_timeout_ms / 1000 if job_timeout_ms else None,
        lease_seconds=lease_seconds,
        shutdown_grace_seconds=shutdown_grace,
        prefetch=prefetch,
        types=list(types) or None,
        queues=list(queues) or None,
    )
    if settings.uses_http:
        # No DATABASE_URL but a Supabase URL and service key: work through PostgREST (see postgrest.py).
        if processes > 1:
            fail("--processes needs DATABASE_URL; over HTTP run several `supaworker worker` instead", EXIT_BAD_INPUT)
        from .postgrest import worker_store_from_settings

        sys.exit(run_worker(None, settings, default_registry, options, store=worker_store_from_settings(settings)))
    profile = ctx.profile
    with psycopg.connect(profile.conninfo, prepare_threshold=None) as conn:
        migrations.check_current(conn, settings.schema_name)
    if processes > 1:
        from .worker.supervisor import run_supervisor

        child: list[str] = ["worker"]
        for name in imports:
            child += ["--import", name]
        if no_builtins:
            child.append("--no-builtins")
        for flag, value in (
            ("--concurrency", concurrency),
            ("--poll-interval-ms", poll_interval_ms),
            ("--job-timeout-ms", job_timeout_ms),
            ("--lease-seconds", lease_seconds),
            ("--shutdown-grace", shutdown_grace),
            ("--prefetch", prefetch),
        ):
            if value is not None:
                child += [flag, str(value)]
        for t in types:
            child += ["--type", t]
        for q in queues:
            child += ["--queue", q]
        sys.exit(run_supervisor(child, processes, profile.conninfo, settings))
    sys.exit(run_worker(profile, settings, default_registry, options))


def _parse_payload(payload: str | None) -> Any:
    if payload is None:
        return {}
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        fail(f"--payload is not valid JSON: {exc}", EXIT_BAD_INPUT)


@main.command()
@click.argument("type")
@click.option("--payload", help="Job payload as JSON.")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="How many identical jobs.")
@click.option("--priority", type=int, default=0, show_default=True, help="Lower runs first.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before the job may run.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Per-attempt timeout in seconds.")
@click.option("--queue", default="default", show_default=True)
@click.option(
    "--depends-on",
    "depends_on",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="JOB_ID",
    help="Run only after this job completed (repeatable: after all of them).",
)
@pass_ctx
@handle_errors
def enqueue(
    ctx: _Context,
    type: str,
    payload: str | None,
    count: int,
    priority: int,
    delay: float | None,
    max_attempts: int,
    timeout: float | None,
    queue: str,
    depends_on: tuple[int, ...],
) -> None:
    """Add COUNT jobs of TYPE to the queue and print their ids."""
    data = _parse_payload(payload)
    fields: dict[str, Any] = {
        "payload": data,
        "priority": priority,
        "max_attempts": max_attempts,
        "timeout": timeout,
        "queue": queue,
    }
    if depends_on:
        fields["depends_on"] = list(depends_on)
    client.validate_job(type, delay=delay, **fields)  # reject bad input before touching the database
    store = ctx.store()
    if count == 1 or delay:
        ids = [client.create_job(type, delay=delay, store=store, **fields).id for _ in range(count)]
    else:
        ids = client.create_jobs([{"type": type, **fields}] * count, store=store)
    if count <= 20:
        click.echo(" ".join(str(i) for i in ids))
    else:
        click.echo(f"enqueued {count} jobs of type {type}: ids {ids[0]}..{ids[-1]}")


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, dict | list)
        else str(value)
    )
    text = text.splitlines()[0] if text else text
    return text if len(text) <= 60 else text[:57] + "..."


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
@handle_errors
def stats(ctx: _Context, as_json: bool) -> None:
    """Jobs per type and status, with durations (the job_stats view)."""
    rows = ctx.store().job_stats()
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    elif not rows:
        click.echo("no jobs yet")
    else:
        _print_table(
            rows, ["type", "status", "count", "avg_duration_seconds", "p50_duration_seconds", "p95_duration_seconds"]
        )


@main.command()
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), help="Only jobs in this status.")
@click.option("--type", "job_type", help="Only jobs of this type.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
@handle_errors
def jobs(ctx: _Context, status: str | None, job_type: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    records = ctx.store().list_jobs(status=status, type=job_type, limit=limit)
    rows = [r.to_dict() for r in records]
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    elif not rows:
        click.echo("no jobs match")
    else:
        _print_table(rows, ["id", "type", "status", "attempts", "max_attempts", "priority", "created_at", "last_error"])


@main.command()
@click.argument("job_id", type=click.IntRange(min=1))
@pass_ctx
@handle_errors
def retry(ctx: _Context, job_id: int) -> None:
    """Put a failed or cancelled job back in the queue; the jobs its failure cancelled (the rest of a brief's
    pipeline) wait for it again."""
    store = ctx.store()
    status = client.retry_job(job_id, store=store)
    job = client.get_job(job_id, store=store)
    if job.brief_id is not None:
        brief = briefs.get_brief(job.brief_id, store=store)
        click.echo(f"job {job_id}: {status} (brief {brief.id}: {brief.status})")
    else:
        click.echo(f"job {job_id}: {status}")


@main.command()
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--reason", default="cancelled by request", show_default=True)
@pass_ctx
@handle_errors
def cancel(ctx: _Context, job_id: int, reason: str) -> None:
    """Cancel a job that has not finished (and the jobs waiting on it)."""
    status = client.cancel_job(job_id, reason, store=ctx.store())
    click.echo(f"job {job_id}: {status}")


@main.group()
def brief() -> None:
    """Briefs: a unit of user work run as one job or a pipeline of jobs."""


def _print_brief(b: briefs.Brief, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(b.to_dict(), default=str, indent=2))
        return
    click.echo(f"brief {b.id}: {b.status} ({b.steps_completed}/{b.steps_total} steps completed)")
    click.echo(f"  user {b.user_id}, {b.media_type}, pipeline {' -> '.join(b.pipeline)}")
    if b.title:
        click.echo(f"  title: {b.title}")
    click.echo(f"  query: {_cell(b.query)}")
    if b.failed_step:
        click.echo(f"  failed at step {b.failed_step} (job {b.failed_job_id}): {_cell(b.error)}")
        click.echo(f"  resume with: supaworker retry {b.failed_job_id}")
    elif b.error:
        click.echo(f"  {_cell(b.error)}")
    if b.steps:
        click.echo("")
        rows = [{**step.to_dict(), "error": step.last_error} for step in b.steps]
        _print_table(rows, ["id", "type", "status", "attempts", "depends_on", "completed_at", "error"])


@brief.command("create")
@click.option("--user-id", required=True, help="Who the brief is for.")
@click.option("--query", required=True, help="What to make.")
@click.option("--media-type", required=True, type=click.Choice(pipelines.MEDIA_TYPES))
@click.option("--title", default="", help="A title.")
@click.option("--description", default="", help="A longer description.")
@click.option("--pipeline/--single", "use_pipeline", default=False, show_default=True,
              help="Run the media type's whole pipeline, or the analysis step only.")  # fmt: skip
@click.option("--step", "steps", multiple=True, metavar="TYPE", help="Run these job types in order instead.")
@click.option("--options", "options", help="Extra payload fields for every step, as a JSON object.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def brief_create(
    ctx: _Context,
    user_id: str,
    query: str,
    media_type: str,
    title: str,
    description: str,
    use_pipeline: bool,
    steps: tuple[str, ...],
    options: str | None,
    as_json: bool,
) -> None:
    """Create a brief and its jobs; print the brief id and its job ids."""
    extra = _parse_payload(options) if options is not None else None
    if extra is not None and not isinstance(extra, dict):
        fail("--options must be a JSON object", EXIT_BAD_INPUT)
    fields: dict[str, Any] = {
        "user_id": user_id,
        "title": title,
        "description": description,
        "query": query,
        "media_type": media_type,
        "use_pipeline": use_pipeline,
        "steps": list(steps) or None,
    }
    briefs.validate_brief(**fields)  # reject bad input before touching the database
    created = briefs.create_brief_with_job(**fields, options=extra, store=ctx.store())
    if as_json:
        click.echo(json.dumps(created.brief.to_dict(), default=str, indent=2))
    else:
        ids = " ".join(str(step.id) for step in created.brief.steps)
        click.echo(f"brief {created.brief.id}: jobs {ids} ({' -> '.join(created.brief.pipeline)})")


@brief.command("show")
@click.argument("brief_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def brief_show(ctx: _Context, brief_id: str, as_json: bool) -> None:
    """Show a brief's status, result or error, and its steps."""
    _print_brief(briefs.get_brief(brief_id, store=ctx.store()), as_json)


@brief.command("list")
@click.option("--user-id", help="Only this user's briefs.")
@click.option("--status", type=click.Choice([s.value for s in briefs.BriefStatus]), help="Only in this status.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def brief_list(ctx: _Context, user_id: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List briefs, newest first."""
    rows = [b.to_dict() for b in briefs.list_briefs(user_id=user_id, status=status, limit=limit, store=ctx.store())]
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    elif not rows:
        click.echo("no briefs match")
    else:
        _print_table(rows, ["id", "user_id", "media_type", "status", "steps_completed", "steps_total", "created_at",
                            "failed_step"])  # fmt: skip


@brief.command("cancel")
@click.argument("brief_id")
@click.option("--reason", default="brief cancelled by request", show_default=True)
@pass_ctx
@handle_errors
def brief_cancel(ctx: _Context, brief_id: str, reason: str) -> None:
    """Cancel a brief's unfinished steps."""
    b = briefs.cancel_brief(brief_id, reason, store=ctx.store())
    click.echo(f"brief {b.id}: {b.status}")


@brief.command("retry")
@click.argument("brief_id")
@pass_ctx
@handle_errors
def brief_retry(ctx: _Context, brief_id: str) -> None:
    """Resume a failed or cancelled brief from the step that stopped it."""
    b = briefs.retry_brief(brief_id, store=ctx.store())
    click.echo(f"brief {b.id}: {b.status}")


# -- supaworker doctor ------------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@pass_ctx
@handle_errors
def doctor(ctx: _Context, as_json: bool) -> None:
    """Check the connection type, LISTEN, migrations, RLS, clock and table bloat; explain each fix."""
    from . import doctor as checks

    findings = checks.run_checks(ctx.profile, ctx.settings.schema_name)
    if as_json:
        click.echo(json.dumps(checks.as_dicts(findings), indent=2))
    else:
        for f in findings:
            click.echo(f"{f.status.upper():4}  {f.check:<10}  {f.detail}")
            if f.fix:
                click.echo(f"{'':4}  {'':<10}  fix: {f.fix}")
    if any(f.status == checks.FAIL for f in findings):
        sys.exit(EXIT_DOCTOR_FAILED)


@main.command()
@click.option("--host", default=None, help="Address for the API, dashboard and health endpoint [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="API and dashboard port [default: 3000].")
@click.option("--health-port", type=click.IntRange(0, 65535), default=None, help="Health port [default: 3001].")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Max concurrent jobs per worker process.")
@click.option("--import", "imports", multiple=True, metavar="MODULE", help="Module with your handlers (repeatable).")
@click.option("--demo", is_flag=True, help="Create a few briefs of each media type to watch them run.")
@pass_ctx
@handle_errors
def up(
    ctx: _Context,
    host: str | None,
    port: int | None,
    health_port: int | None,
    processes: int,
    concurrency: int | None,
    imports: tuple[str, ...],
    demo: bool,
) -> None:
    """Run everything: migrate, API and dashboard (:3000), workers, health (:3001). Ctrl-C stops it all."""
    from .api.settings import get_api_settings
    from .up import UpOptions, run_up

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
