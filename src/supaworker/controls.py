"""Pause and resume job types or queues, and set global concurrency and rate limits, for every worker.

The state lives in the `job_controls` table and is enforced by `claim_jobs()` in the database, so it
holds across all workers and hosts at once. Pausing stops new claims; running jobs finish (as BullMQ,
Oban and River pause). Limits count per job type:

- `max_running`: at most this many jobs of the type are processing at any moment, across all workers.
- `rate_limit` per `rate_period` seconds: at most that many jobs of the type start per window; a window
  opens with its first claim (BullMQ's fixed-window limiter), so a boundary can see up to twice the rate
  over one period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import psycopg
from typing_extensions import Unpack

from .client import _store_for
from .errors import InvalidJob
from .rules import MAX_TYPE_LENGTH
from .store import Store
from .validation import check_text

DEFAULT_RATE_PERIOD_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class JobControl:
    """One row of `job_controls`: what is paused or limited, and how many of a limited type run now."""

    scope: str  # "type" or "queue"
    name: str
    paused: bool
    max_running: int | None
    rate_limit: int | None
    rate_period_seconds: float | None
    window_started_at: datetime | None
    window_count: int
    running: int | None  # processing jobs of this type right now (types only)
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _target(type: str | None, queue: str | None) -> tuple[str, str]:
    if (type is None) == (queue is None):
        raise InvalidJob("name exactly one of type= or queue=")
    scope, name = ("type", type) if type is not None else ("queue", queue)
    return scope, check_text(scope, name, max_length=MAX_TYPE_LENGTH)


class Target(TypedDict, total=False):
    """What `pause` and `resume` act on: exactly one of `type` and `queue`, and where to write."""

    type: str | None
    queue: str | None
    conn: psycopg.Connection | None
    store: Store | None


def set_paused(paused: bool, **target: Unpack[Target]) -> None:
    """Pauses or resumes a type or queue for every worker."""
    scope, name = _target(target.get("type"), target.get("queue"))
    conn = target.get("conn")
    _store_for(conn, target.get("store")).set_job_paused(scope, name, paused, conn)


def pause(**target: Unpack[Target]) -> None:
    """Stops every worker from starting jobs of this type (or in this queue); running ones finish."""
    set_paused(True, **target)


def resume(**target: Unpack[Target]) -> None:
    """Lets workers start jobs of this type (or queue) again, and wakes idle ones."""
    set_paused(False, **target)


def _positive_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise InvalidJob(f"{what} must be a whole number >= 1 (or None for no limit), not {value!r}")
    return value


def set_limits(
    type: str,
    *,
    max_running: int | None = None,
    rate_limit: int | None = None,
    rate_period: float = DEFAULT_RATE_PERIOD_SECONDS,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
) -> None:
    """Sets a job type's global limits, replacing any it had; None means no limit of that kind.

    `set_limits("render", max_running=2)`: at most 2 render jobs at once.
    `set_limits("analysis", rate_limit=10, rate_period=1)`: at most 10 analysis jobs start per second.
    """
    _, name = _target(type, None)
    max_running = _positive_int(max_running, "max_running")
    rate_limit = _positive_int(rate_limit, "rate_limit")
    if isinstance(rate_period, bool) or not isinstance(rate_period, int | float) or not math.isfinite(rate_period):
        raise InvalidJob(f"rate_period must be a positive number of seconds, not {rate_period!r}")
    if rate_period <= 0:
        raise InvalidJob(f"rate_period must be a positive number of seconds, not {rate_period!r}")
    _store_for(conn, store).set_job_limits(
        name,
        max_running=max_running,
        rate_limit=rate_limit,
        rate_period_seconds=float(rate_period) if rate_limit is not None else None,
        conn=conn,
    )


def clear_limits(type: str, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> None:
    """Removes a job type's concurrency and rate limits (a pause stays)."""
    set_limits(type, conn=conn, store=store)


def list_controls(*, conn: psycopg.Connection | None = None, store: Store | None = None) -> list[JobControl]:
    """Every pause and limit in force, types first."""
    return [JobControl(**row) for row in _store_for(conn, store).list_job_controls(conn)]
