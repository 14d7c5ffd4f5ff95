"""`supaworker brief ...`: create, show, list, cancel and retry briefs."""

from __future__ import annotations

from typing import Any

import click

from .. import briefs, pipelines
from ..rules import MAX_LIST_LIMIT
from .app import EXIT_BAD_INPUT, CommandContext, command, fail, json_option, main, parse_payload
from .output import cell, dump_json, print_rows, print_table, printable


@main.group()
def brief() -> None:
    """Briefs: a unit of user work run as one job or a pipeline of jobs."""


def _print_brief(b: briefs.Brief, as_json: bool) -> None:
    if as_json:
        click.echo(dump_json(b.to_dict(), indent=2))
        return
    click.echo(f"brief {b.id}: {b.status} ({b.steps_completed}/{b.steps_total} steps completed)")
    click.echo(printable(f"  user {b.user_id}, {b.media_type}, pipeline {' -> '.join(b.pipeline)}"))
    if b.title:
        click.echo(f"  title: {printable(b.title)}")
    click.echo(f"  query: {cell(b.query)}")
    if b.failed_step:
        click.echo(f"  failed at step {b.failed_step} (job {b.failed_job_id}): {cell(b.error)}")
        click.echo(f"  resume with: supaworker retry {b.failed_job_id}")
    elif b.error:
        click.echo(f"  {cell(b.error)}")
    if b.steps:
        click.echo("")
        # A completed step keeps the error of an earlier attempt in its row; it is no longer what the step says.
        rows = [
            {**step.to_dict(), "error": None if step.status == "completed" else step.last_error} for step in b.steps
        ]
        print_table(rows, ["id", "type", "status", "attempts", "depends_on", "completed_at", "error"])


@command(brief, "create")
@click.option("--user-id", required=True, help="Who the brief is for.")
@click.option("--query", required=True, help="What to make.")
@click.option("--media-type", required=True, type=click.Choice(pipelines.MEDIA_TYPES))
@click.option("--title", default="", help="A title.")
@click.option("--description", default="", help="A longer description.")
@click.option("--pipeline/--single", "use_pipeline", default=False, show_default=True,
              help="Run the media type's whole pipeline, or the analysis step only.")  # fmt: skip
@click.option("--step", "steps", multiple=True, metavar="TYPE", help="Run these job types in order instead.")
@click.option("--options", "options", help="Extra payload fields for every step, as a JSON object.")
@click.option("--fairness-key", help="The tenant whose share of the workers its steps use (default: the user).")
@json_option
def brief_create(
    ctx: CommandContext,
    user_id: str,
    query: str,
    media_type: str,
    title: str,
    description: str,
    use_pipeline: bool,
    steps: tuple[str, ...],
    options: str | None,
    fairness_key: str | None,
    as_json: bool,
) -> None:
    """Create a brief and its jobs; print the brief id and its job ids."""
    extra = parse_payload(options, "--options") if options is not None else None
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
    created = briefs.create_brief_with_job(**fields, options=extra, fairness_key=fairness_key, store=ctx.store())
    if as_json:
        click.echo(dump_json(created.brief.to_dict(), indent=2))
    else:
        ids = " ".join(str(step.id) for step in created.brief.steps)
        click.echo(printable(f"brief {created.brief.id}: jobs {ids} ({' -> '.join(created.brief.pipeline)})"))


@command(brief, "show")
@click.argument("brief_id")
@json_option
def brief_show(ctx: CommandContext, brief_id: str, as_json: bool) -> None:
    """Show a brief's status, result or error, and its steps."""
    _print_brief(briefs.get_brief(brief_id, store=ctx.store()), as_json)


@command(brief, "list")
@click.option("--user-id", help="Only this user's briefs.")
@click.option("--status", type=click.Choice([s.value for s in briefs.BriefStatus]), help="Only in this status.")
@click.option("--limit", type=click.IntRange(1, MAX_LIST_LIMIT), default=50, show_default=True)
@json_option
def brief_list(ctx: CommandContext, user_id: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List briefs, newest first."""
    rows = [b.to_dict() for b in briefs.list_briefs(user_id=user_id, status=status, limit=limit, store=ctx.store())]
    columns = ["id", "user_id", "media_type", "status", "steps_completed", "steps_total", "created_at", "failed_step"]
    print_rows(rows, columns, as_json, empty="no briefs match")


@command(brief, "cancel")
@click.argument("brief_id")
@click.option("--reason", default="brief cancelled by request", show_default=True)
def brief_cancel(ctx: CommandContext, brief_id: str, reason: str) -> None:
    """Cancel a brief's unfinished steps."""
    b = briefs.cancel_brief(brief_id, reason, store=ctx.store())
    click.echo(f"brief {b.id}: {b.status}")


@command(brief, "retry")
@click.argument("brief_id")
def brief_retry(ctx: CommandContext, brief_id: str) -> None:
    """Resume a failed or cancelled brief from the step that stopped it."""
    b = briefs.retry_brief(brief_id, store=ctx.store())
    click.echo(f"brief {b.id}: {b.status}")
