"""Commands that look after the database: migrate, doctor, prune, tables, the embedded PostgreSQL and the
Supabase set-up."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import psycopg

from .. import embedded
from .. import migrate as migrations
from .app import (
    EXIT_BAD_INPUT,
    EXIT_CONFIG,
    EXIT_DOCTOR_FAILED,
    EXIT_SCHEMA,
    CommandContext,
    command,
    fail,
    json_option,
    main,
)
from .output import dump_json, print_rows, printable


@command(main)
@click.option("--status", "show_status", is_flag=True, help="Show applied and pending migrations; change nothing.")
def migrate(ctx: CommandContext, show_status: bool) -> None:
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


@command(main)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(ctx: CommandContext, as_json: bool) -> None:
    """Check the connection type, LISTEN, migrations, RLS, clock and table bloat; explain each fix."""
    from .. import doctor as checks

    findings = checks.run_checks(ctx.profile, ctx.settings.schema_name)
    if as_json:
        click.echo(dump_json(checks.as_dicts(findings), indent=2))
    else:
        # Findings name objects and roles found in the database.
        for f in findings:
            click.echo(f"{f.status.upper():4}  {f.check:<10}  {printable(f.detail)}")
            if f.fix:
                click.echo(f"{'':4}  {'':<10}  fix: {printable(f.fix)}")
    if any(f.status == checks.FAIL for f in findings):
        sys.exit(EXIT_DOCTOR_FAILED)


@command(main)
@click.option("--completed-after", type=click.FloatRange(min=0), help="Seconds to keep completed jobs.")
@click.option("--failed-after", type=click.FloatRange(min=0), help="Seconds to keep failed jobs.")
@click.option("--cancelled-after", type=click.FloatRange(min=0), help="Seconds to keep cancelled jobs.")
def prune(
    ctx: CommandContext, completed_after: float | None, failed_after: float | None, cancelled_after: float | None
) -> None:
    """Delete finished jobs past their retention now (the workers' leader also does this every 30 s).

    With history on (SUPAWORKER_HISTORY_AFTER_SECONDS), move them to job_history instead and drop its
    partitions past SUPAWORKER_HISTORY_RETENTION_SECONDS (the --*-after options do not apply)."""
    from ..maintenance import HistoryKeeper, Pruner, PrunerConfig, history_config

    s = ctx.settings
    history = history_config(s)
    if history is not None:
        if (completed_after, failed_after, cancelled_after) != (None, None, None):
            fail("--completed-after, --failed-after and --cancelled-after are for pruning, and history is on "
                 "(SUPAWORKER_HISTORY_AFTER_SECONDS); its retention is SUPAWORKER_HISTORY_RETENTION_SECONDS",
                 EXIT_BAD_INPUT)  # fmt: skip
        kept = HistoryKeeper(ctx.store(), history).run_once()
        click.echo(f"moved {kept['moved']} finished jobs to history; dropped {kept['partitions_dropped']} partitions")
        return
    config = PrunerConfig(
        completed_retention_seconds=completed_after if completed_after is not None else s.prune_completed_after_seconds,
        failed_retention_seconds=failed_after if failed_after is not None else s.prune_failed_after_seconds,
        cancelled_retention_seconds=cancelled_after if cancelled_after is not None else s.prune_cancelled_after_seconds,
    )
    counts = Pruner(ctx.store(), config).run_once()
    click.echo("pruned " + ", ".join(f"{n} {status}" for status, n in counts.items()))


@command(main)
@json_option
def history(ctx: CommandContext, as_json: bool) -> None:
    """The partitions of job_history: the range of completion times each holds, its rows and size."""
    rows = ctx.store().history_partitions()
    print_rows(rows, ["name", "starts_at", "ends_at", "estimated_rows", "total_bytes"], as_json, empty="no history")


@command(main)
@json_option
def tables(ctx: CommandContext, as_json: bool) -> None:
    """Health of supaworker's tables: dead tuples, vacuum times, sizes, invalid indexes."""
    rows = ctx.store().table_health()
    columns = ["table_name", "live_tuples", "dead_tuples", "dead_pct", "last_autovacuum", "total_bytes"]
    print_rows(rows, [*columns, "invalid_indexes"], as_json)


@main.group("embedded")
def embedded_group() -> None:
    """The embedded PostgreSQL, used when no DATABASE_URL is set (SUPAWORKER_EMBEDDED_DATA_DIR)."""


@command(embedded_group, "status")
def embedded_status(ctx: CommandContext) -> None:
    """Say whether the embedded PostgreSQL is running."""
    path = embedded.data_dir(ctx.settings)
    click.echo(f"embedded PostgreSQL in {path}: {'running' if embedded.is_running(path) else 'not running'}")


@command(embedded_group, "stop")
def embedded_stop(ctx: CommandContext) -> None:
    """Stop the embedded PostgreSQL (its data stays; the next command without DATABASE_URL starts it again)."""
    path = embedded.data_dir(ctx.settings)
    if embedded.stop(path):
        click.echo(f"stopped the embedded PostgreSQL in {path}")
    else:
        click.echo(f"the embedded PostgreSQL in {path} is not running")


@main.group()
def supabase() -> None:
    """Supabase-specific setup of the schema."""


@command(supabase, "expose-briefs")
@click.option("--off", is_flag=True, help="Take end users' read access back (the default state).")
def supabase_expose_briefs(ctx: CommandContext, off: bool) -> None:
    """Let signed-in users read their own briefs and their steps' status, progress and results.

    Grants the `authenticated` role SELECT under row-level security: a JWT whose `sub` is a brief's user_id
    sees that brief (views user_briefs and user_brief_steps; tables briefs and jobs without payloads), and
    nothing else. anon gets nothing; only the service role writes. Asks PostgREST to reload its schema.
    """
    from ..store import Store

    schema = ctx.settings.schema_name
    try:
        with psycopg.connect(ctx.profile.conninfo, autocommit=True, prepare_threshold=None) as conn:
            Store(None, schema).expose_briefs(not off, conn)
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


@main.group()
def schema() -> None:
    """The readable current schema, src/supaworker/sql/schema.sql."""


@command(schema, "dump")
@click.option("--check", is_flag=True, help="Change nothing; print a diff and exit 9 if the file is stale.")
@click.option("--create-roles", is_flag=True, help="Create Supabase's anon, authenticated, service_role if absent.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead.")
def schema_dump(ctx: CommandContext, check: bool, create_roles: bool, output: Path | None) -> None:
    """Regenerate schema.sql from the migrations, on a scratch database of DATABASE_URL's server."""
    from ..sql import schema_file

    conninfo = ctx.profile.conninfo
    if create_roles:
        for role in schema_file.create_roles(conninfo):
            click.echo(f"created role {role} (NOLOGIN)", err=True)
    path = output or schema_file.SCHEMA_FILE
    diff = schema_file.regenerate(conninfo, path, check=check)
    if not diff:
        click.echo(f"{path}: up to date")
    elif check:
        click.echo(diff, nl=False)
        fail(f"{path} is out of date: regenerate it with `supaworker schema dump`", EXIT_DOCTOR_FAILED)
    else:
        click.echo(f"{path}: rewritten ({diff.count(chr(10))} diff lines); review it with git diff")
