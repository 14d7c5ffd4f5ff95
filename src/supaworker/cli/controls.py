"""Commands that steer the workers from outside: pause, resume, limit, the controls in force, fair-share weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import controls
from ..fairness import list_fairness_weights, remove_fairness_weight, set_fairness_weight
from .app import EXIT_BAD_INPUT, EXIT_NOT_FOUND, CommandContext, command, fail, json_option, main
from .output import print_rows


def _target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--queue", help="The queue.")(func)
    return click.option("--type", "job_type", help="The job type.")(func)


def _set_paused(ctx: CommandContext, job_type: str | None, queue: str | None, paused: bool) -> None:

    if (job_type is None) == (queue is None):
        fail("give exactly one of --type or --queue", EXIT_BAD_INPUT)
    controls.set_paused(paused, type=job_type, queue=queue, store=ctx.store())
    target = f"type {job_type}" if job_type is not None else f"queue {queue}"
    click.echo(f"{'paused' if paused else 'resumed'} {target}")


@command(main)
@_target_options
def pause(ctx: CommandContext, job_type: str | None, queue: str | None) -> None:
    """Stop every worker from starting jobs of a type or queue (running jobs finish)."""
    _set_paused(ctx, job_type, queue, True)


@command(main)
@_target_options
def resume(ctx: CommandContext, job_type: str | None, queue: str | None) -> None:
    """Let workers start jobs of a paused type or queue again."""
    _set_paused(ctx, job_type, queue, False)


@command(main)
@click.argument("type")
@click.option("--max-running", type=click.IntRange(min=1), help="At most N jobs of TYPE at once, across all workers.")
@click.option("--rate", type=click.IntRange(min=1), help="At most N jobs of TYPE start per --per seconds.")
@click.option("--per", "per_seconds", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--clear", is_flag=True, help="Remove TYPE's limits.")
def limit(
    ctx: CommandContext, type: str, max_running: int | None, rate: int | None, per_seconds: float, clear: bool
) -> None:
    """Set TYPE's global concurrency and rate limits (replacing its previous ones)."""

    if clear == (max_running is not None or rate is not None):
        fail("give --max-running and/or --rate, or --clear", EXIT_BAD_INPUT)
    controls.set_limits(type, max_running=max_running, rate_limit=rate, rate_period=per_seconds, store=ctx.store())
    if clear:
        click.echo(f"limits of {type} removed")
    else:
        parts = [f"max {max_running} running" if max_running else "", f"{rate} per {per_seconds:g}s" if rate else ""]
        click.echo(f"limits of {type}: {', '.join(p for p in parts if p)}")


@command(main, "controls")
@json_option
def list_controls_command(ctx: CommandContext, as_json: bool) -> None:
    """Pauses and limits in force, with the running count of each limited type."""

    rows = [c.to_dict() for c in controls.list_controls(store=ctx.store())]
    columns = ["scope", "name", "paused", "max_running", "running", "rate_limit", "rate_period_seconds"]
    print_rows(rows, columns, as_json, empty="nothing paused or limited")


@main.group()
def fairness() -> None:
    """Fair shares across tenants: the weights by which claims share the workers between fairness keys."""


@command(fairness, "set")
@click.argument("key")
@click.option("--weight", type=int, required=True, help="Shares of the workers (1 to 10000; a tenant not set has 1).")
def fairness_set(ctx: CommandContext, key: str, weight: int) -> None:
    """Give tenant KEY a weight: while tenants wait, claims share the workers in proportion to weights."""
    row = set_fairness_weight(key, weight, store=ctx.store())
    click.echo(f"tenant {row['key']!r}: weight {row['weight']}")


@command(fairness, "list")
@json_option
def fairness_list(ctx: CommandContext, as_json: bool) -> None:
    """The tenants with a weight of their own."""

    rows = list_fairness_weights(store=ctx.store())
    print_rows(rows, ["key", "weight", "updated_at"], as_json)


@command(fairness, "remove")
@click.argument("key")
def fairness_remove(ctx: CommandContext, key: str) -> None:
    """Give tenant KEY the default weight of 1 again.

    Exits 5 when KEY had no weight of its own."""
    if not remove_fairness_weight(key, store=ctx.store()):
        fail(f"tenant {key!r} has no weight of its own", EXIT_NOT_FOUND)
    click.echo(f"tenant {key!r}: weight 1 (default)")
