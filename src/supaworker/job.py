"""The Job a handler receives, and the full row that the client API returns."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from .states import JobStatus

MAX_PROGRESS_MESSAGE_CHARS = 1000


@dataclass(slots=True)
class Job:
    """One claimed attempt of a job, as handed to its handler.

    `attempt` is 1 on the first run; `attempts`, JobRecord's name for it, is the same number. `upstream`
    holds the results of the completed jobs this one depends on, directly or through others (the previous
    steps of a pipeline), by job type; when two share a type the nearer one wins, and `upstream_by_id` has
    every one of them by job id.

    A handler may report `job.progress(percent, message)`, and a long sync handler should check
    `job.cancelled` now and then: async handlers are cancelled outright, a thread can only be asked.
    """

    id: int
    type: str
    queue: str
    priority: int
    payload: Any
    attempt: int
    max_attempts: int
    timeout_seconds: float | None
    brief_id: UUID | None
    run_at: datetime
    created_at: datetime
    started_at: datetime
    worker_id: str = ""
    has_parents: bool = False
    upstream: dict[str, Any] = field(default_factory=dict)
    upstream_by_id: dict[int, Any] = field(default_factory=dict)
    # Set by the worker that runs the job; a plain flag (one attribute write is atomic) that sync handlers in
    # threads read, cheaper per job than an Event.
    _cancel_requested: bool = field(default=False, repr=False, compare=False)
    _progress_sink: Callable[[Job, float, str | None], None] | None = field(default=None, repr=False, compare=False)
    # Whether the database knows this attempt's handler may begin, by its place in the worker's claim
    # sequence: a job claimed ahead of a free slot is not charged an attempt if its worker dies before running
    # it (see migration 0007). A job handed back that way once waits for the record before it runs again.
    _start_recorded: bool = field(default=True, repr=False, compare=False)
    _claim_seq: int = field(default=0, repr=False, compare=False)
    _record_start_first: bool = field(default=False, repr=False, compare=False)

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled (or lost) while running: stop and return; the result is dropped."""
        return self._cancel_requested

    @property
    def attempts(self) -> int:
        """`attempt` by the name JobRecord and the jobs table use (attempts started, this one included): the
        same number, so code written against either reads the same."""
        return self.attempt

    def request_cancel(self) -> None:
        self._cancel_requested = True

    def progress(self, percent: float, message: str | None = None) -> None:
        """Reports how far the job is (0-100) with an optional message; written shortly after, never blocks."""
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
            raise ValueError(f"progress percent must be a number from 0 to 100, not {percent!r}")
        if not 0 <= percent <= 100:
            raise ValueError(f"progress percent must be from 0 to 100, not {percent}")
        if message is not None and not isinstance(message, str):
            raise ValueError(f"progress message must be a string, not {type(message).__name__}")
        if self._progress_sink is not None:
            self._progress_sink(self, float(percent), message[:MAX_PROGRESS_MESSAGE_CHARS] if message else message)

    @classmethod
    def from_claim(cls, row: tuple[Any, ...], worker_id: str) -> Job:
        # sql/queries/claim_jobs.sql selects the fields from `id` to `started_at` in declaration order, then
        # has_parents, handler_started, claim_seq and record_start_first.
        *fields, has_parents, started, seq, first = row
        # Twelve columns, then the two below: mypy cannot count what a starred row holds.
        job = cls(*fields, worker_id, bool(has_parents))  # type: ignore[call-arg]
        job._start_recorded, job._claim_seq, job._record_start_first = bool(started), seq or 0, bool(first)
        return job


@dataclass(slots=True)
class JobRecord:
    """A row of the jobs table, as the client API and the CLI return it."""

    id: int
    type: str
    queue: str
    status: JobStatus
    priority: int
    payload: Any
    result: Any
    attempts: int
    max_attempts: int
    run_at: datetime
    timeout_seconds: float | None
    last_error: str | None
    errors: list[dict[str, Any]]
    worker_id: str | None
    lease_expires_at: datetime | None
    brief_id: UUID | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        known = {name: row[name] for name in cls.__slots__ if name in row and name != "extra"}
        known["status"] = JobStatus(known["status"])
        extra = {k: v for k, v in row.items() if k not in known}
        return cls(**known, extra=extra)

    @property
    def duplicate(self) -> bool:
        """True when create_job found a live job with the same unique_key and returned it instead."""
        return bool(self.extra.get("duplicate"))

    @property
    def progress(self) -> float | None:
        return self.extra.get("progress")

    @property
    def progress_message(self) -> str | None:
        return self.extra.get("progress_message")

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__ if name != "extra"}
        data["status"] = str(self.status)
        data.update(self.extra)
        return data
