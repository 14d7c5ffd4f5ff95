"""Briefs: a unit of user work ("make a video about AI") run as one job or as a pipeline of jobs.

`create_brief_with_job` writes the brief and all its step jobs in one transaction. The steps come from
`supaworker.pipelines`; each depends on the one before it, so a step becomes runnable in the transaction
that completes the previous one, and a step that fails for good cancels the rest. A brief's status is
derived from its jobs by the view `briefs_with_status`, so it always agrees with them.

Like the job API, each function takes an optional `conn` (run inside the caller's transaction) or `store`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from . import pipelines
from .client import _store_for, insert_dependencies
from .config import get_settings
from .errors import BriefNotFound, InvalidBrief, InvalidJob, InvalidTransition
from .job import JobRecord
from .new_job import NewJob
from .rules import (
    DEFAULT_MAX_ATTEMPTS,
    LIST_LIMIT_MESSAGE,
    MAX_LIST_LIMIT,
    MAX_REASON_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TITLE_LENGTH,
    MAX_USER_ID_LENGTH,
)
from .store import Store
from .validation import check_json, check_text


class BriefStatus(StrEnum):
    """Derived from the brief's jobs (view briefs_with_status), in this order of precedence."""

    FAILED = "failed"  # a step failed for good; retry it (or the brief) to resume from there
    CANCELLED = "cancelled"  # cancel_brief(); retry_brief() resumes
    COMPLETED = "completed"  # every step completed
    PROCESSING = "processing"  # a step has started or completed, more to run
    PENDING = "pending"  # nothing started yet


@dataclass(slots=True)
class Brief:
    """A brief with its derived status and, from `get_brief`, its steps (jobs in order)."""

    id: UUID
    user_id: str
    title: str
    description: str
    query: str
    media_type: str
    use_pipeline: bool
    pipeline: list[str]  # the job types it was created with, in order
    status: BriefStatus
    result: Any  # the last step's result, once completed
    failed_step: str | None  # the type of the first step that failed
    failed_job_id: int | None
    error: str | None  # that step's error, or the reason the brief was cancelled
    steps_total: int
    steps_completed: int
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    completed_at: datetime | None
    steps: list[JobRecord] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], steps: list[JobRecord] | None = None) -> Brief:
        fields = {name: row[name] for name in cls.__slots__ if name != "steps"}
        fields["status"] = BriefStatus(fields["status"])
        fields["pipeline"] = list(fields["pipeline"])
        return cls(**fields, steps=steps or [])

    @property
    def job(self) -> JobRecord | None:
        """The first step."""
        return self.steps[0] if self.steps else None

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__ if name != "steps"}
        data["status"] = str(self.status)
        data["steps"] = [step.to_dict() for step in self.steps]
        return data


class BriefWithJob(NamedTuple):
    """What `create_brief_with_job` returns: the brief (with all its steps) and its first job."""

    brief: Brief
    job: JobRecord


def validate_brief(*, steps: Sequence[str] | None = None, **fields: Any) -> dict[str, Any]:
    """Checks a brief's fields as a caller gave them (`user_id`, `query`, `media_type`, and optionally `title`,
    `description`, `use_pipeline`) and returns the row to insert; raises InvalidBrief naming the bad field."""
    user_id, query, media_type = fields.get("user_id"), fields.get("query"), fields.get("media_type")
    title, description = fields.get("title", ""), fields.get("description", "")
    use_pipeline = fields.get("use_pipeline", False)
    if isinstance(user_id, UUID):
        user_id = str(user_id)
    check_text("user_id", user_id, max_length=MAX_USER_ID_LENGTH, error=InvalidBrief)
    check_text("title", title, max_length=MAX_TITLE_LENGTH, allow_blank=True, error=InvalidBrief)
    check_text("description", description, max_length=MAX_TEXT_LENGTH, allow_blank=True, error=InvalidBrief)
    check_text("query", query, max_length=MAX_TEXT_LENGTH, error=InvalidBrief)
    if not isinstance(media_type, str) or media_type not in pipelines.MEDIA_TYPES:
        raise InvalidBrief(
            f"media_type must be one of {', '.join(pipelines.MEDIA_TYPES)}, not {media_type!r}", field="media_type"
        )
    if not isinstance(use_pipeline, bool):
        raise InvalidBrief(f"use_pipeline must be true or false, not {use_pipeline!r}", field="use_pipeline")
    if steps is None:
        plan = pipelines.steps_for(media_type, use_pipeline)
    else:
        try:
            plan = pipelines.check_steps(steps)
        except ValueError as exc:
            raise InvalidBrief(str(exc), field="steps") from None
    return {
        "user_id": user_id,
        "title": title,
        "description": description,
        "query": query,
        "media_type": media_type,
        "use_pipeline": use_pipeline or steps is not None,
        "pipeline": list(plan),
    }


def step_payload(brief_id: UUID, brief: Mapping[str, Any], options: Mapping[str, Any] | None) -> dict[str, Any]:
    """What every step of a brief receives: the application's options, then the brief's own fields."""
    return {
        **(options or {}),
        "brief_id": str(brief_id),
        "title": brief["title"],
        "description": brief["description"],
        "query": brief["query"],
        "media_type": brief["media_type"],
    }


def create_brief_with_job(
    *,
    user_id: str | UUID,
    title: str = "",
    description: str = "",
    query: str,
    media_type: str,
    use_pipeline: bool = False,
    steps: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    priority: int = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    queue: str = "default",
    fairness_key: str | None = None,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
) -> BriefWithJob:
    """Creates a brief and its jobs in one transaction and returns both. Its steps share the workers as the
    tenant `fairness_key`, by default the brief's `user_id` (see Fair shares in the README).

    Without `use_pipeline` the brief runs one `analysis` job; with it, the steps of
    `pipelines.PIPELINES[media_type]`, each depending on the one before. `steps` runs an application's own
    sequence instead (e.g. with `storyboard`). `options` are extra payload fields every step receives.
    Bad fields raise InvalidBrief (an InvalidJob) and nothing is written.
    """
    row = validate_brief(
        user_id=user_id,
        title=title,
        description=description,
        query=query,
        media_type=media_type,
        use_pipeline=use_pipeline,
        steps=steps,
    )
    if options is not None and not isinstance(options, Mapping):
        raise InvalidBrief("options must be a mapping of extra payload fields", field="options")
    if options is not None:
        try:
            check_json("options", options)
        except InvalidJob as exc:
            raise InvalidBrief(str(exc), field="options") from None
    try:
        # Checks the job fields (and that options are JSON) before anything is written.
        NewJob.build(row["pipeline"][0], step_payload(UUID(int=0), row, options), priority=priority,
                     max_attempts=max_attempts, queue=queue, fairness_key=fairness_key)  # fmt: skip
    except InvalidJob as exc:
        raise InvalidBrief(str(exc), field=exc.field) from None
    tenant = row["user_id"] if fairness_key is None else fairness_key
    if conn is None and store is None and get_settings().uses_http:
        return _create_over_rpc(row, steps, options, priority, max_attempts, queue, fairness_key)
    s = _store_for(conn, store)
    with s.transaction(conn) as c:
        brief_id = s.insert_brief(row, c)
        payload = step_payload(brief_id, row, options)
        jobs = [
            NewJob.build(
                step,
                payload,
                priority=priority,
                max_attempts=max_attempts,
                queue=queue,
                brief_id=brief_id,
                fairness_key=tenant,
            )
            for step in row["pipeline"]
        ]
        ids = s.insert_jobs([jobs[0], *(later.with_status("waiting") for later in jobs[1:])], c)
        insert_dependencies(s, list(zip(ids[1:], ids[:-1], strict=True)), c)
        brief = _load(s, brief_id, c)
    assert brief is not None and brief.job is not None
    return BriefWithJob(brief, brief.job)


def _create_over_rpc(
    row: Mapping[str, Any],
    steps: Sequence[str] | None,
    options: Mapping[str, Any] | None,
    priority: int,
    max_attempts: int,
    queue: str,
    fairness_key: str | None,
) -> BriefWithJob:
    """create_brief_with_job through PostgREST: the SQL function of the same name, in one transaction."""
    args: dict[str, Any] = {
        **{name: row[name] for name in ("user_id", "title", "description", "query", "media_type", "use_pipeline")},
        "priority": priority,
        "max_attempts": max_attempts,
        "queue": queue,
    }
    if steps is not None:
        args["steps"] = list(steps)
    if options is not None:
        args["options"] = dict(options)
    if fairness_key is not None:
        args["fairness_key"] = fairness_key
    from . import rpc  # HTTP only: httpx stays out of processes that never use it

    made = rpc.rpc_client_for(get_settings()).create_brief_with_job(args)
    jobs = [rpc.job_from_document(step) for step in made["brief"]["steps"]]
    return BriefWithJob(Brief.from_row(rpc.brief_row_from_document(made["brief"]), jobs), jobs[0])


def _load(s: Store, brief_id: UUID, conn: psycopg.Connection | None) -> Brief | None:
    with s.connection(conn) as c:
        row = s.get_brief(brief_id, c)
        return Brief.from_row(row, s.brief_jobs(brief_id, c)) if row else None


def _brief_id(brief_id: UUID | str) -> UUID:
    if isinstance(brief_id, UUID):
        return brief_id
    try:
        return UUID(str(brief_id))
    except ValueError:
        raise BriefNotFound(f"no brief with id {brief_id!r} (not a UUID)") from None


def get_brief(brief_id: UUID | str, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> Brief:
    """The brief with its derived status and its steps (jobs in order, each with `depends_on`)."""
    brief = _load(_store_for(conn, store), _brief_id(brief_id), conn)
    if brief is None:
        raise BriefNotFound(f"no brief with id {brief_id}")
    return brief


def list_briefs(
    *,
    user_id: str | None = None,
    status: str | None = None,
    before: datetime | None = None,
    limit: int = 50,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
) -> list[Brief]:
    """Briefs newest first (without their steps), optionally of one user and in one status; page with
    `before=<created_at of the last one seen>`."""
    if status is not None and status not in BriefStatus.__members__.values():
        raise InvalidBrief(
            f"status must be one of {', '.join(s.value for s in BriefStatus)}, not {status!r}", field="status"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidBrief(LIST_LIMIT_MESSAGE, field="limit")
    if user_id is not None:
        check_text("user_id", user_id, max_length=MAX_USER_ID_LENGTH, error=InvalidBrief)
    rows = _store_for(conn, store).list_briefs(user_id=user_id, status=status, before=before, limit=limit, conn=conn)
    return [Brief.from_row(row) for row in rows]


def cancel_brief(
    brief_id: UUID | str,
    reason: str = "brief cancelled by request",
    *,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
) -> Brief:
    """Cancels the brief's unfinished steps (a running one is dropped at its worker's next heartbeat)."""
    check_text("reason", reason, max_length=MAX_REASON_LENGTH, error=InvalidBrief)
    refused = "it has no unfinished step to cancel"
    return _change(brief_id, lambda s, bid, c: s.cancel_brief(bid, reason, c), refused, conn, store)


def retry_brief(brief_id: UUID | str, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> Brief:
    """Resumes a failed or cancelled brief from the step that stopped it (`supaworker retry JOB_ID` on that
    step does the same)."""
    refused = "only failed or cancelled briefs can be retried"
    return _change(brief_id, lambda s, bid, c: s.retry_brief(bid, c), refused, conn, store)


def _change(
    brief_id: UUID | str,
    change: Callable[[Store, UUID, psycopg.Connection], int],
    refused: str,
    conn: psycopg.Connection | None,
    store: Store | None,
) -> Brief:
    """Makes `change` (which returns how many steps it changed) and reads the brief back in one transaction;
    `refused` says why a brief in its status could not be changed."""
    s = _store_for(conn, store)
    bid = _brief_id(brief_id)
    with s.transaction(conn) as c:
        changed = change(s, bid, c)
        brief = _load(s, bid, c)
    if brief is None:
        raise BriefNotFound(f"no brief with id {brief_id}")
    if not changed:
        if s.moved_job_ids([step.id for step in brief.steps], conn):
            refused = "its jobs have moved to history, where they can no longer change"
        raise InvalidTransition(f"brief {brief_id} is {brief.status}; {refused}")
    return brief
