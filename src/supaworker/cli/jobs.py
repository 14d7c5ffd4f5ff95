"""Commands on jobs: enqueue, list and show them, wait for one, retry or cancel one, and the stats."""

from __future__ import annotations

from typing import Any

import click

from .. import briefs, client
from ..new_job import NewJob
from ..states import JobStatus
from ..validation import check_text
from .app import (
    EXIT_BAD_INPUT,
    EXIT_JOB_FAILED,
    EXIT_WAIT_TIMEOUT,
    CommandContext,
    command,
    fail,
    json_option,
    main,
    parse_payload,
)
from .output import cell, dump_json, print_rows, printable


@command(main)
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
@click.option("--fairness-key", help="The tenant whose share of the workers the jobs use (see `fairness`).")
def enqueue(
    ctx: CommandContext,
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
    fairness_key: str | None,
) -> None:
    """Add COUNT jobs of TYPE to the queue and print their ids."""
    unique = unique_key is not None or unique_for is not None
    if unique and (count != 1 or depends_on):
        fail("--unique-key enqueues one job on its own; drop --count and --depends-on", EXIT_BAD_INPUT)
    # Checked before the database is touched; one value, written `count` times.
    new = NewJob.build(
        type,
        parse_payload(payload),
        priority=priority,
        max_attempts=max_attempts,
        timeout=timeout,
        delay=delay,
        queue=queue,
        unique_key=unique_key,
        unique_for=unique_for,
        depends_on=list(depends_on) or None,
        fairness_key=fairness_key,
    )
    store = ctx.store()
    if unique:
        job = client.enqueue(new, store=store)
        click.echo(job.id)
        if job.duplicate:
            click.echo(f"duplicate: job {job.id} ({job.status}) already holds key {unique_key!r}", err=True)
        return
    if count == 1 or delay or depends_on:
        ids = [client.enqueue(new, store=store).id for _ in range(count)]
    else:
        ids = store.insert_jobs([new] * count)
    if count <= 20:
        click.echo(" ".join(str(i) for i in ids))
    else:
        click.echo(f"enqueued {count} jobs of type {type}: ids {ids[0]}..{ids[-1]}")


@command(main)
@json_option
def stats(ctx: CommandContext, as_json: bool) -> None:
    """Jobs per type and status, with durations (the job_stats view)."""
    rows = ctx.store().job_stats()
    columns = ["type", "status", "count", "avg_duration_seconds", "p50_duration_seconds", "p95_duration_seconds"]
    print_rows(rows, columns, as_json, empty="no jobs yet")
    if not as_json:
        _print_table_health_summary(ctx.store().table_health())


def _print_table_health_summary(tables: list[dict[str, Any]]) -> None:
    """One line per table on bloat, and a warning for invalid indexes (`supaworker tables` has the rest)."""
    jobs = next((t for t in tables if t["table_name"] == "jobs"), None)
    if jobs is not None:
        click.echo(
            f"\njobs table: {jobs['live_tuples']} live, {jobs['dead_tuples']} dead tuples"
            f" ({jobs['dead_pct'] if jobs['dead_pct'] is not None else 0}% dead),"
            f" last autovacuum {cell(jobs['last_autovacuum'])}"
        )
    invalid = [f"{t['table_name']}.{i}" for t in tables for i in t["invalid_indexes"]]
    if invalid:
        click.echo(f"invalid indexes (drop or REINDEX them): {printable(', '.join(invalid))}")


@command(main)
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), help="Only jobs in this status.")
@click.option("--type", "job_type", help="Only jobs of this type.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
def jobs(ctx: CommandContext, status: str | None, job_type: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    if job_type is not None:
        # What the shell passed as bytes that are not UTF-8 cannot be sent to PostgreSQL.
        check_text("type", job_type, allow_blank=True)
    records = ctx.store().list_jobs(status=status, type=job_type, limit=limit)
    rows = [r.to_dict() for r in records]
    columns = ["id", "type", "status", "attempts", "max_attempts", "priority", "created_at", "last_error"]
    print_rows(rows, columns, as_json, empty="no jobs match")


@command(main)
@click.argument("job_id", type=click.IntRange(min=1))
def show(ctx: CommandContext, job_id: int) -> None:
    """Print one job as JSON, with its progress, result and errors."""
    job = client.get_job(job_id, store=ctx.store())
    click.echo(dump_json(job.to_dict(), indent=2))


@command(main)
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds (default: never).")
def wait(ctx: CommandContext, job_id: int, timeout: float | None) -> None:
    """Wait for a job to finish and print its result as JSON (exit 7 if it failed, 8 on timeout)."""
    from ..errors import JobFailed, WaitTimeout
    from ..results import wait_for

    try:
        result = wait_for(job_id, timeout, store=ctx.store())
    except JobFailed as exc:
        fail(str(exc).splitlines()[0], EXIT_JOB_FAILED)
    except WaitTimeout as exc:
        fail(str(exc), EXIT_WAIT_TIMEOUT)
    click.echo(dump_json(result))


@command(main)
@click.argument("job_id", type=click.IntRange(min=1))
def retry(ctx: CommandContext, job_id: int) -> None:
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


@command(main)
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--reason", default="cancelled by request", show_default=True)
def cancel(ctx: CommandContext, job_id: int, reason: str) -> None:
    """Cancel a job that has not finished (and the jobs waiting on it)."""
    status = client.cancel_job(job_id, reason, store=ctx.store())
    click.echo(f"job {job_id}: {status}")
