"""Runs one attempt of one job: picks the handler and turns what happened into an Outcome. It never touches
the database; the runner records the outcome and its watchdog enforces the timeout."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from ..errors import InvalidJob, UnrecoverableError
from ..job import Job
from ..loaders import UnreadableJson
from ..registry import Registry
from ..validation import check_json, storable_text
from .threads import HandlerThreads

MAX_ERROR_CHARS = 8000


@dataclass(slots=True)
class Outcome:
    ok: bool
    duration_seconds: float
    result: Any = None
    error: str | None = None
    retryable: bool = True


def describe_error(exc: BaseException) -> str:
    """`Type: message` on the first line (what dashboards show), the traceback after it."""
    head = f"{type(exc).__name__}: {exc}".rstrip(": ")
    tail = "".join(traceback.format_exception(exc)) if exc.__traceback__ else ""
    return storable_text((head + ("\n" + tail if tail else ""))[:MAX_ERROR_CHARS])


def _small_int(value: Any) -> bool:
    """An int any JSON writer takes as it is (no check needed): one of more than 4,300 digits makes json.dumps
    fail, in the completer, for every job of its batch."""
    return isinstance(value, int) and -(2**64) < value < 2**64


def _unreadable(job: Job) -> str | None:
    """Why the job's payload, or an upstream step's result, cannot be given to its handler (see loaders.py)."""
    if isinstance(job.payload, UnreadableJson):
        return f"InvalidJob: the payload cannot be read: {job.payload.reason}"
    for parent_id, result in job.upstream_by_id.items():
        if isinstance(result, UnreadableJson):
            return f"InvalidJob: the result of upstream job {parent_id} cannot be read: {result.reason}"
    return None


class Executor:
    def __init__(self, registry: Registry, default_timeout_seconds: float, threads: int) -> None:
        self.registry = registry
        self.default_timeout_seconds = default_timeout_seconds
        self.threads = HandlerThreads(threads)

    def timeout_for(self, job: Job) -> float:
        handler = self.registry.get(job.type)
        return job.timeout_seconds or (handler and handler.timeout_seconds) or self.default_timeout_seconds

    async def execute(self, job: Job) -> Outcome:
        handler = self.registry.get(job.type)
        started = perf_counter()
        if handler is None:
            return Outcome(False, 0.0, error=f"no handler registered for job type {job.type!r}")
        unreadable = _unreadable(job)
        if unreadable:
            # jsonb holds it and Python cannot read it: no attempt could, so none is retried.
            return Outcome(False, 0.0, error=unreadable, retryable=False)
        try:
            if handler.is_async:
                result = await handler.func(job)
            elif handler.inline:
                result = handler.func(job)
            else:
                result, ran = await self.threads.run(handler.func, job)
                started = perf_counter() - ran  # its own time, not its wait for a thread
        except UnrecoverableError as exc:
            return Outcome(False, perf_counter() - started, error=describe_error(exc), retryable=False)
        except Exception as exc:
            return Outcome(False, perf_counter() - started, error=describe_error(exc))
        duration = perf_counter() - started
        if result is not None and not isinstance(result, bool) and not _small_int(result):
            # What jsonb would refuse (NUL, lone surrogates, NaN, over-deep nesting) fails this attempt here,
            # with the reason, instead of the batch of completions it would be written with.
            try:
                check_json("handler result", result)
            except InvalidJob as exc:
                return Outcome(False, duration, error=f"TypeError: handler result cannot be stored: {exc}")
        return Outcome(True, duration, result=result)

    def busy_threads(self) -> int:
        return self.threads.busy()

    def shutdown(self) -> None:
        self.threads.shutdown()
