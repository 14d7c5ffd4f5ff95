"""Commands that steer the workers from outside: pause, resume, limit, the controls in force, fair-share weights."""

from __future__ import annotations

import json

import click

from .app import EXIT_BAD_INPUT, EXIT_NOT_FOUND, CommandContext, fail, handle_errors, main, pass_ctx
from .output import print_table


def _one_target(job_type: str | None, queue: str | None) -> None:
    if (job_type is None) == (queue is None):
        fail("give exactly one of --type or --queue", EXIT_BAD_INPUT)


@main.command()
@click.option("--type", "job_type", help="Job type to pause.")
@click.option("--queue", help="Queue to pause.")
@pass_ctx
@handle_errors
def pause(ctx: CommandContext, job_type: str | None, queue: str | None) -> None:
    """Stop every worker from starting jobs of a type or queue (running jobs finish)."""
    from .. import controls

    _one_target(job_type, queue)
    controls.pause(type=job_type, queue=queue, store=ctx.store())
    click.echo(f"paused {'type ' + job_type if job_type else 'queue ' + str(queue)}")


@main.command()
@click.option("--type", "job_type", help="Job type to resume.")
@click.option("--queue", help="Queue to resume.")
@pass_ctx
@handle_errors
def resume(ctx: CommandContext, job_type: str | None, queue: str | None) -> None:
    """Let workers start jobs of a paused type or queue again."""
    from .. import controls

    _one_target(job_type, queue)
    controls.resume(type=job_type, queue=queue, store=ctx.store())
    click.echo(f"resumed {'type ' + job_type if job_type else 'queue ' + str(queue)}")


@main.command()
@click.argument("type")
@click.option("--max-running", type=click.IntRange(min=1), help="At most N jobs of TYPE at once, across all workers.")
@click.option("--rate", type=click.IntRange(min=1), help="At most N jobs of TYPE start per --per seconds.")
@click.option("--per", "per_seconds", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--clear", is_flag=True, help="Remove TYPE's limits.")
@pass_ctx
@handle_errors
def limit(
    ctx: CommandContext, type: str, max_running: int | None, rate: int | None, per_seconds: float, clear: bool
) -> None:
    """Set TYPE's global concurrency and rate limits (replacing its previous ones)."""
    from .. import controls

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
def list_controls_command(ctx: CommandContext, as_json: bool) -> None:
    """Pauses and limits in force, with the running count of each limited type."""
    from .. import controls

    rows = [c.to_dict() for c in controls.list_controls(store=ctx.store())]
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    elif not rows:
        click.echo("nothing paused or limited")
    else:
        print_table(rows, ["scope", "name", "paused", "max_running", "running", "rate_limit", "rate_period_seconds"])


@main.group()
def fairness() -> None:
    """Fair shares across tenants: the weights by which claims share the workers between fairness keys."""


@fairness.command("set")
@click.argument("key")
@click.option("--weight", type=int, required=True, help="Shares of the workers (1 to 10000; a tenant not set has 1).")
@pass_ctx
@handle_errors
def fairness_set(ctx: CommandContext, key: str, weight: int) -> None:
    """Give tenant KEY a weight: while tenants wait, claims share the workers in proportion to weights."""
    from ..fairness import set_fairness_weight

    row = set_fairness_weight(key, weight, store=ctx.store())
    click.echo(f"tenant {row['key']!r}: weight {row['weight']}")


@fairness.command("remove")
@click.argument("key")
@pass_ctx
@handle_errors
def fairness_remove(ctx: CommandContext, key: str) -> None:
    """Give tenant KEY the default weight of 1 again."""
    from ..fairness import remove_fairness_weight

    if not remove_fairness_weight(key, store=ctx.store()):
        fail(f"tenant {key!r} has no weight of its own", EXIT_NOT_FOUND)
    click.echo(f"tenant {key!r}: weight 1 (default)")


@fairness.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def fairness_list(ctx: CommandContext, as_json: bool) -> None:
    """The tenants with a weight of their own."""
    from ..fairness import list_fairness_weights

    rows = list_fairness_weights(store=ctx.store())
    if as_json:
        click.echo(json.dumps(rows, default=str))
    else:
        print_table(rows, ["key", "weight", "updated_at"])
