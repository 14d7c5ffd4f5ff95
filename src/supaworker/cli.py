"""The `supaworker` command.

Exit codes (stable, for scripts):
    0  success
    1  unexpected error
    2  bad input: invalid option, JSON, status or job field (nothing was written); a port `up` needs is taken;
       `migrate`/`up`: SUPAWORKER_SCHEMA is `public` or a schema holding other objects (nothing was changed)
    3  configuration: no database configured, or the database cannot be reached
    4  schema: not migrated (run `supaworker migrate`), or migrated by a newer supaworker
    5  not found: no job or brief with that id
    6  conflict: the job's state does not allow the action (e.g. retrying a completed job)
    7  `wait`: the job ended failed or cancelled
    8  `wait`: the job did not finish within --timeout
    9  doctor: at least one check failed
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

from . import briefs, client, embedded, pipelines
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
    SchemaInUse,
)
from .log import configure_logging
from .registry import default_registry
from .states import JobStatus
from .validation import MAX_PAYLOAD_DEPTH

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_CONFIG = 3
EXIT_SCHEMA = 4
EXIT_NOT_FOUND = 5
EXIT_CONFLICT = 6
EXIT_JOB_FAILED = 7
EXIT_WAIT_TIMEOUT = 8
EXIT_DOCTOR_FAILED = 9

F = TypeVar("F", bound=Callable[..., Any])

_ERROR_EXITS: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidJob, EXIT_BAD_INPUT),
    (SchemaInUse, EXIT_BAD_INPUT),
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
            # The location is the environment variable (or .env.local key) that holds the bad value.
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or exc.title}: {e['msg']}" for e in exc.errors())
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
            settings = self.settings
            conninfo = resolve_conninfo(settings, allow_embedded=True)
            if not settings.database_url:
                click.echo(
                    f"note: no DATABASE_URL, so this uses the embedded PostgreSQL in {embedded.data_dir(settings)}; "
                    "it keeps running after this command (`supaworker embedded stop` stops it)",
                    err=True,
                )
            self._profile = probe(conninfo, settings.pooler_mode)
        return self._profile

    def store(self) -> Any:
        # The database the profile found (the embedded one included), for the process-wide pool.
        settings = self.settings.model_copy(update={"database_url": self.profile.conninfo})
        return client.get_store(settings)


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
    from .worker.options import WorkerOptions

    settings = ctx.settings
    queue_names, queue_concurrency = _parse_queues(queues, concurrency or settings.max_concurrent_jobs)
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


def _parse_payload(payload: str | None, option: str = "--payload") -> Any:
    if payload is None:
        return {}
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not valid JSON: {exc}", EXIT_BAD_INPUT)
    except RecursionError:
        fail(f"{option} is nested too deeply (the limit is {MAX_PAYLOAD_DEPTH} levels)", EXIT_BAD_INPUT)


@main.command()
@click.argument("type")
@click.option("--payload", help="Job payload as JSON.")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="How many identical jobs.")
@click.option("--priority", type=int, default=0, show_default=True, help="Lower runs first.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before the job may run.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Per-attempt timeout in seconds.")
@click.option("--queue", default="default", show_default=True)
@click.option("--unique-key", help="Idempotency key: if a live job holds it, print that job's id instead.")
@click.option("--unique-for", type=click.FloatRange(min=0, min_open=True), help="Seconds the key is held.")
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
    unique_key: str | None,
    unique_for: float | None,
    depends_on: tuple[int, ...],
) -> None:
    """Add COUNT jobs of TYPE to the queue and print their ids."""
    data = _parse_payload(payload)
    if unique_key is not None or unique_for is not None:
        if count != 1 or depends_on:
            fail("--unique-key enqueues one job on its own; drop --count and --depends-on", EXIT_BAD_INPUT)
        fields = {"payload": data, "priority": priority, "max_attempts": max_attempts, "timeout": timeout}
        unique = {"unique_key": unique_key, "unique_for": unique_for}
        client.validate_job(type, delay=delay, queue=queue, **fields, **unique)
        job = client.create_job(type, delay=delay, queue=queue, store=ctx.store(), **fields, **unique)
        click.echo(job.id)
        if job.duplicate:
            click.echo(f"duplicate: job {job.id} ({job.status}) already holds key {unique_key!r}", err=True)
        return
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
    if not as_json:
        _print_table_health_summary(ctx.store().table_health())


def _print_table_health_summary(tables: list[dict[str, Any]]) -> None:
    """One line per table on bloat, and a warning for invalid indexes (`supaworker tables` has the rest)."""
    jobs = next((t for t in tables if t["table_name"] == "jobs"), None)
    if jobs is not None:
        click.echo(
            f"\njobs table: {jobs['live_tuples']} live, {jobs['dead_tuples']} dead tuples"
            f" ({jobs['dead_pct'] if jobs['dead_pct'] is not None else 0}% dead),"
            f" last autovacuum {_cell(jobs['last_autovacuum'])}"
        )
    invalid = [f"{t['table_name']}.{i}" for t in tables for i in t["invalid_indexes"]]
    if invalid:
        click.echo(f"invalid indexes (drop or REINDEX them): {', '.join(invalid)}")


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
    extra = _parse_payload(options, "--options") if options is not None else None
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


@main.group("embedded")
def embedded_group() -> None:
    """The embedded PostgreSQL, used when no DATABASE_URL is set (SUPAWORKER_EMBEDDED_DATA_DIR)."""


@embedded_group.command("status")
@pass_ctx
@handle_errors
def embedded_status(ctx: _Context) -> None:
    """Say whether the embedded PostgreSQL is running."""
    path = embedded.data_dir(ctx.settings)
    click.echo(f"embedded PostgreSQL in {path}: {'running' if embedded.is_running(path) else 'not running'}")


@embedded_group.command("stop")
@pass_ctx
@handle_errors
def embedded_stop(ctx: _Context) -> None:
    """Stop the embedded PostgreSQL (its data stays; the next command without DATABASE_URL starts it again)."""
    path = embedded.data_dir(ctx.settings)
    if embedded.stop(path):
        click.echo(f"stopped the embedded PostgreSQL in {path}")
    else:
        click.echo(f"the embedded PostgreSQL in {path} is not running")


# -- queue features (issue 5): pause/resume, limits, waiting for results, periodic jobs, pruning -----------
def _one_target(job_type: str | None, queue: str | None) -> dict[str, str | None]:
    if (job_type is None) == (queue is None):
        fail("give exactly one of --type or --queue", EXIT_BAD_INPUT)
    return {"type": job_type, "queue": queue}


@main.command()
@click.option("--type", "job_type", help="Job type to pause.")
@click.option("--queue", help="Queue to pause.")
@pass_ctx
@handle_errors
def pause(ctx: _Context, job_type: str | None, queue: str | None) -> None:
    """Stop every worker from starting jobs of a type or queue (running jobs finish)."""
    from . import controls

    target = _one_target(job_type, queue)
    controls.pause(**target, store=ctx.store())
    click.echo(f"paused {'type ' + job_type if job_type else 'queue ' + str(queue)}")


@main.command()
@click.option("--type", "job_type", help="Job type to resume.")
@click.option("--queue", help="Queue to resume.")
@pass_ctx
@handle_errors
def resume(ctx: _Context, job_type: str | None, queue: str | None) -> None:
    """Let workers start jobs of a paused type or queue again."""
    from . import controls

    target = _one_target(job_type, queue)
    controls.resume(**target, store=ctx.store())
    click.echo(f"resumed {'type ' + job_type if job_type else 'queue ' + str(queue)}")


@main.command()
@click.argument("type")
@click.option("--max-running", type=click.IntRange(min=1), help="At most N jobs of TYPE at once, across all workers.")
@click.option("--rate", type=click.IntRange(min=1), help="At most N jobs of TYPE start per --per seconds.")
@click.option("--per", "per_seconds", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--clear", is_flag=True, help="Remove TYPE's limits.")
@pass_ctx
@handle_errors
def limit(ctx: _Context, type: str, max_running: int | None, rate: int | None, per_seconds: float, clear: bool) -> None:
    """Set TYPE's global concurrency and rate limits (replacing its previous ones)."""
    from . import controls

    if clear == (max_running is not None or rate is not None):
        fail("give --max-running and/or --rate, or --clear", EXIT_BAD_INPUT)
    controls.set_limits(type, max_running=max_running, rate_limit=rate, rate_period=per_seconds, store=ctx.store())
    if clear:
        click.echo(f"limits of {type} removed")
    else:
        parts = [f"max {max_running} running" if max_running else "", f"{rate} per {per_seconds:g}s" if rate else ""]
        click.echo(f"limits of {type}: {', '.join(p for p in parts if p)}")


@main.command("controls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
@handle_errors
def list_controls_command(ctx: _Context, as_json: bool) -> None:
    """Pauses and limits in force, with the running count of each limited type."""
    from . import controls

    rows = [c.to_dict() for c in controls.list_controls(store=ctx.store())]
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    elif not rows:
        click.echo("nothing paused or limited")
    else:
        _print_table(rows, ["scope", "name", "paused", "max_running", "running", "rate_limit", "rate_period_seconds"])


@main.command()
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds (default: never).")
@pass_ctx
@handle_errors
def wait(ctx: _Context, job_id: int, timeout: float | None) -> None:
    """Wait for a job to finish and print its result as JSON (exit 7 if it failed, 8 on timeout)."""
    from .errors import JobFailed, WaitTimeout
    from .results import wait_for

    try:
        result = wait_for(job_id, timeout, store=ctx.store())
    except JobFailed as exc:
        fail(str(exc).splitlines()[0], EXIT_JOB_FAILED)
    except WaitTimeout as exc:
        fail(str(exc), EXIT_WAIT_TIMEOUT)
    click.echo(json.dumps(result, default=str))


@main.command()
@click.argument("job_id", type=click.IntRange(min=1))
@pass_ctx
@handle_errors
def show(ctx: _Context, job_id: int) -> None:
    """Print one job as JSON, with its progress, result and errors."""
    job = client.get_job(job_id, store=ctx.store())
    click.echo(json.dumps(job.to_dict(), default=str, indent=2))


@main.group()
def periodic() -> None:
    """Periodic (cron) jobs: list, add, remove. Cron is in UTC; 5 fields, or 6 with seconds last."""


@periodic.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
@handle_errors
def periodic_list(ctx: _Context, as_json: bool) -> None:
    """Every schedule with its last and next tick."""
    from .periodic import list_periodic_jobs

    rows = list_periodic_jobs(store=ctx.store())
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    elif not rows:
        click.echo("no periodic jobs")
    else:
        _print_table(rows, ["name", "cron", "type", "queue", "catch_up", "source", "last_tick_at", "next_tick_at"])


@periodic.command("add")
@click.argument("name")
@click.argument("cron")
@click.option("--type", "job_type", required=True, help="Job type to enqueue at each tick.")
@click.option("--payload", help="Job payload as JSON.")
@click.option("--queue", default="default", show_default=True)
@click.option("--priority", type=int, default=0, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--catch-up/--no-catch-up", default=True, show_default=True, help="After downtime, run missed once.")
@pass_ctx
@handle_errors
def periodic_add(
    ctx: _Context,
    name: str,
    cron: str,
    job_type: str,
    payload: str | None,
    queue: str,
    priority: int,
    max_attempts: int,
    catch_up: bool,
) -> None:
    """Create or replace the schedule NAME: enqueue a TYPE job at every tick of CRON."""
    from .periodic import add_periodic_job, validate_periodic

    fields = {
        "type": job_type,
        "payload": _parse_payload(payload),
        "name": name,
        "queue": queue,
        "priority": priority,
        "max_attempts": max_attempts,
        "catch_up": catch_up,
    }
    validate_periodic(cron, **fields)  # reject bad input before touching the database
    row = add_periodic_job(cron, store=ctx.store(), **fields)
    click.echo(f"periodic job {row['name']}: {row['cron']} -> {row['type']}")


@periodic.command("remove")
@click.argument("name")
@pass_ctx
@handle_errors
def periodic_remove(ctx: _Context, name: str) -> None:
    """Delete the schedule NAME (one declared in code returns when a worker with that code starts)."""
    from .periodic import remove_periodic_job

    if not remove_periodic_job(name, store=ctx.store()):
        fail(f"no periodic job named {name!r}", EXIT_NOT_FOUND)
    click.echo(f"periodic job {name} removed")


@main.command()
@click.option("--completed-after", type=click.FloatRange(min=0), help="Seconds to keep completed jobs.")
@click.option("--failed-after", type=click.FloatRange(min=0), help="Seconds to keep failed jobs.")
@click.option("--cancelled-after", type=click.FloatRange(min=0), help="Seconds to keep cancelled jobs.")
@pass_ctx
@handle_errors
def prune(
    ctx: _Context, completed_after: float | None, failed_after: float | None, cancelled_after: float | None
) -> None:
    """Delete finished jobs past their retention now (the workers' leader also does this every 30 s)."""
    from .maintenance import Pruner, PrunerConfig

    s = ctx.settings
    config = PrunerConfig(
        completed_retention_seconds=completed_after if completed_after is not None else s.prune_completed_after_seconds,
        failed_retention_seconds=failed_after if failed_after is not None else s.prune_failed_after_seconds,
        cancelled_retention_seconds=cancelled_after if cancelled_after is not None else s.prune_cancelled_after_seconds,
    )
    counts = Pruner(ctx.store(), config).run_once()
    click.echo("pruned " + ", ".join(f"{n} {status}" for status, n in counts.items()))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
@handle_errors
def tables(ctx: _Context, as_json: bool) -> None:
    """Health of supaworker's tables: dead tuples, vacuum times, sizes, invalid indexes."""
    rows = ctx.store().table_health()
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    _print_table(
        rows,
        ["table_name", "live_tuples", "dead_tuples", "dead_pct", "last_autovacuum", "total_bytes", "invalid_indexes"],
    )


@main.group()
def supabase() -> None:
    """Supabase-specific setup of the schema."""


@supabase.command("expose-briefs")
@click.option("--off", is_flag=True, help="Take end users' read access back (the default state).")
@pass_ctx
@handle_errors
def supabase_expose_briefs(ctx: _Context, off: bool) -> None:
    """Let signed-in users read their own briefs and their steps' status, progress and results.

    Grants the `authenticated` role SELECT under row-level security: a JWT whose `sub` is a brief's user_id
    sees that brief (views user_briefs and user_brief_steps; tables briefs and jobs without payloads), and
    nothing else. anon gets nothing; only the service role writes. Asks PostgREST to reload its schema.
    """
    from .sql import queries_for

    schema = ctx.settings.schema_name
    try:
        with psycopg.connect(ctx.profile.conninfo, autocommit=True, prepare_threshold=None) as conn:
            conn.execute(queries_for(schema).expose_briefs, {"enabled": not off})
            conn.execute("NOTIFY pgrst, 'reload schema'")
    except (psycopg.errors.UndefinedObject, psycopg.errors.FeatureNotSupported) as exc:
        fail(str(exc).splitlines()[0], EXIT_CONFIG)
    except psycopg.errors.UndefinedFunction:
        fail(f"schema {schema} has no expose_briefs(): run `supaworker migrate` first", EXIT_SCHEMA)
    if off:
        click.echo(f"schema {schema}: end users can no longer read briefs")
    else:
        click.echo(
            f"schema {schema}: signed-in users can read their own briefs ({schema}.user_briefs) and their steps "
            f"({schema}.user_brief_steps) with the anon key and their session; add {schema} to the exposed schemas"
        )
