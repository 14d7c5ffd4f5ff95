"""A job to enqueue, checked once: the one value every way in builds and every way out writes.

The Python API (`create_job`, `create_jobs`), the REST API, the CLI, periodic schedules and briefs all turn
their input into a `NewJob` with `NewJob.build(...)`, which applies the rules of `supaworker.rules` (the
SQL function `check_job` applies the same ones) and raises InvalidJob naming the bad field. The payload is
encoded to JSON there, once: the single insert, the COPY of a batch and the SQL API over PostgREST all send
that text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypedDict, Unpack
from uuid import UUID

from . import validation
from .dependencies import check_depends_on
from .errors import InvalidJob
from .rules import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_ATTEMPTS_MESSAGE,
    MAX_DELAY_SECONDS,
    MAX_FAIRNESS_KEY_LENGTH,
    MAX_HOLD_SECONDS,
    MAX_INT32,
    MAX_TIMEOUT_SECONDS,
    MAX_TYPE_LENGTH,
    MAX_UNIQUE_KEY_LENGTH,
    MIN_INT32,
    PRIORITY_MESSAGE,
    UNIQUE_KEY_MESSAGE,
)


class JobOptions(TypedDict, total=False):
    """The keyword arguments of `create_job` (and of each item of `create_jobs`) besides type and payload."""

    priority: int  # lower runs first (default 0)
    run_at: datetime | None  # not before this time; or
    delay: float | None  # seconds from now
    max_attempts: int  # default 3
    timeout: float | None  # seconds per attempt (default: the worker's)
    brief_id: UUID | str | None  # an existing brief the job belongs to
    queue: str  # default "default"
    unique_key: str | None  # one live job per key
    unique_for: float | None  # seconds the key is held
    depends_on: Iterable[int] | None  # ids of existing jobs that must complete first
    fairness_key: str | None  # the tenant whose share of the workers it uses ('' or None: the default tenant)


JOB_OPTIONS = frozenset(JobOptions.__annotations__)


@dataclass(frozen=True, slots=True)
class NewJob:
    type: str
    payload: Any
    payload_json: str  # the payload, encoded once
    queue: str = "default"
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    run_at: datetime | None = None
    delay: float = 0.0
    timeout_seconds: float | None = None
    brief_id: UUID | None = None
    unique_key: str | None = None
    unique_for: float | None = None
    depends_on: tuple[int, ...] = ()
    fairness_key: str = ""
    status: str = "pending"  # "waiting" once it has unfinished parents (see dependencies.check_parents)

    @classmethod
    def build(cls, type: str, payload: Any = None, **options: Unpack[JobOptions]) -> NewJob:
        """Checks every field; raises InvalidJob naming the bad one (TypeError for an unknown keyword)."""
        unknown = sorted(set(options) - JOB_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        validation.check_text("type", type, max_length=MAX_TYPE_LENGTH)
        queue = options.get("queue", "default")
        validation.check_text("queue", queue, max_length=MAX_TYPE_LENGTH)
        payload = {} if payload is None else payload
        payload_json = validation.check_json("payload", payload)
        priority = options.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_INT32 <= priority <= MAX_INT32:
            raise InvalidJob(PRIORITY_MESSAGE, field="priority")
        max_attempts = options.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= MAX_INT32:
            raise InvalidJob(MAX_ATTEMPTS_MESSAGE, field="max_attempts")
        timeout = options.get("timeout")
        if timeout is not None:
            timeout = validation.check_seconds("timeout", timeout, maximum=MAX_TIMEOUT_SECONDS, positive=True)
        run_at, delay = options.get("run_at"), options.get("delay")
        if run_at is not None and delay is not None:
            raise InvalidJob("give run_at or delay, not both", field="delay")
        if run_at is not None:
            validation.check_run_at(run_at)
        if delay is not None:
            delay = validation.check_seconds("delay", delay, maximum=MAX_DELAY_SECONDS, positive=False)
        unique_key, unique_for = options.get("unique_key"), options.get("unique_for")
        if unique_key is not None:
            validation.check_text("unique_key", unique_key, max_length=MAX_UNIQUE_KEY_LENGTH, allow_blank=True)
            if not unique_key:
                raise InvalidJob(UNIQUE_KEY_MESSAGE, field="unique_key")
        if unique_for is not None:
            if unique_key is None:
                raise InvalidJob("unique_for needs a unique_key", field="unique_for")
            unique_for = validation.check_seconds("unique_for", unique_for, maximum=MAX_HOLD_SECONDS, positive=True)
        brief_id = options.get("brief_id")
        if brief_id is not None and not isinstance(brief_id, UUID):
            try:
                brief_id = UUID(str(brief_id))
            except ValueError:
                raise InvalidJob(f"brief_id must be a UUID, not {brief_id!r}", field="brief_id") from None
        fairness_key = options.get("fairness_key")
        if fairness_key is not None:
            validation.check_text("fairness_key", fairness_key, max_length=MAX_FAIRNESS_KEY_LENGTH, allow_blank=True)
        parents = tuple(int(p) for p in check_depends_on(options.get("depends_on")))
        return cls(
            type=type,
            payload=payload,
            payload_json=payload_json,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            run_at=run_at,
            delay=float(delay or 0),
            timeout_seconds=float(timeout) if timeout is not None else None,
            brief_id=brief_id,
            unique_key=unique_key,
            unique_for=float(unique_for) if unique_for is not None else None,
            depends_on=parents,
            fairness_key=fairness_key or "",
            status="waiting" if parents else "pending",
        )

    def with_status(self, status: str) -> NewJob:
        return replace(self, status=status)

    def with_brief(self, brief_id: UUID) -> NewJob:
        return replace(self, brief_id=brief_id)

    def params(self) -> dict[str, Any]:
        """The named parameters of the insert queries (insert_job.sql, insert_unique_job.sql)."""
        return {
            "type": self.type,
            "queue": self.queue,
            "status": self.status,
            "priority": self.priority,
            "payload": self.payload_json,
            "max_attempts": self.max_attempts,
            "run_at": self.run_at,
            "delay": self.delay,
            "timeout_seconds": self.timeout_seconds,
            "brief_id": self.brief_id,
            "unique_key": self.unique_key,
            "unique_for": self.unique_for,
            "fairness_key": self.fairness_key,
        }

    def rpc_arguments(self) -> dict[str, Any]:
        """The arguments of the SQL function create_job, as PostgREST takes them (JSON names and values)."""
        args: dict[str, Any] = {
            "type": self.type,
            "payload": self.payload,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "queue": self.queue,
        }
        if self.run_at is not None:
            args["run_at"] = self.run_at.isoformat()
        if self.delay:
            args["delay"] = self.delay
        optional = {"timeout": self.timeout_seconds, "unique_key": self.unique_key, "unique_for": self.unique_for}
        args.update({name: value for name, value in optional.items() if value is not None})
        if self.brief_id is not None:
            args["brief_id"] = str(self.brief_id)
        if self.depends_on:
            args["depends_on"] = list(self.depends_on)
        if self.fairness_key:
            args["fairness_key"] = self.fairness_key
        return args
