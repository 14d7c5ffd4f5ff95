"""`supaworker periodic ...`: the cron schedules that enqueue jobs (list, add, remove, enable, disable)."""

from __future__ import annotations

import click

from ..rules import MAX_TYPE_LENGTH
from ..validation import check_text
from .app import EXIT_NOT_FOUND, CommandContext, command, fail, json_option, main, parse_payload
from .output import print_rows, printable


@main.group()
def periodic() -> None:
    """Periodic (cron) jobs: list, add, remove, enable, disable. Cron is in UTC; 5 fields, or 6 with seconds last."""


@command(periodic, "list")
@json_option
def periodic_list(ctx: CommandContext, as_json: bool) -> None:
    """Every schedule, whether it is enabled, and its last and next tick (none while disabled)."""
    from ..periodic import list_periodic_jobs

    rows = list_periodic_jobs(store=ctx.store())
    columns = ["name", "cron", "type", "queue", "enabled", "catch_up", "source", "last_tick_at", "next_tick_at"]
    print_rows(rows, columns, as_json, empty="no periodic jobs")


@command(periodic, "add")
@click.argument("name")
@click.argument("cron")
@click.option("--type", "job_type", required=True, help="Job type to enqueue at each tick.")
@click.option("--payload", help="Job payload as JSON.")
@click.option("--queue", default="default", show_default=True)
@click.option("--priority", type=int, default=0, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--catch-up/--no-catch-up",
    default=True,
    show_default=True,
    help="After downtime, enqueue one job for the ticks missed.",
)
def periodic_add(
    ctx: CommandContext,
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
    from ..periodic import validate_periodic

    # Checked before the database is touched.
    schedule = validate_periodic(
        cron,
        type=job_type,
        payload=parse_payload(payload),
        name=name,
        queue=queue,
        priority=priority,
        max_attempts=max_attempts,
        catch_up=catch_up,
    )
    row = ctx.store().upsert_periodic_job(schedule.row("api"))
    click.echo(printable(f"periodic job {row['name']}: {row['cron']} -> {row['type']}"))


@command(periodic, "remove")
@click.argument("name")
def periodic_remove(ctx: CommandContext, name: str) -> None:
    """Delete the schedule NAME (one declared in code returns when a worker with that code starts)."""
    from ..periodic import remove_periodic_job

    check_text("name", name, max_length=MAX_TYPE_LENGTH)  # as enable and disable check it
    if not remove_periodic_job(name, store=ctx.store()):
        fail(f"no periodic job named {name!r}", EXIT_NOT_FOUND)
    click.echo(f"periodic job {name} removed")


@command(periodic, "enable")
@click.argument("name")
def periodic_enable(ctx: CommandContext, name: str) -> None:
    """Switch the schedule NAME on again (it counts ticks from now: what fell due meanwhile is not caught up)."""
    _switch(ctx, name, True)


@command(periodic, "disable")
@click.argument("name")
def periodic_disable(ctx: CommandContext, name: str) -> None:
    """Switch the schedule NAME off: it enqueues nothing until enabled (a worker starting with it in its code
    leaves it off)."""
    _switch(ctx, name, False)


def _switch(ctx: CommandContext, name: str, enabled: bool) -> None:
    from ..periodic import set_periodic_enabled

    if set_periodic_enabled(name, enabled, store=ctx.store()) is None:
        fail(f"no periodic job named {name!r}", EXIT_NOT_FOUND)
    click.echo(f"periodic job {name} {'enabled' if enabled else 'disabled'}")
