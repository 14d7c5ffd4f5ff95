"""Periodic (cron) jobs: declared in code with `@supaworker.periodic(...)`, or added from the CLI or API.

Schedules live in the `periodic_jobs` table. The elected leader's scheduler (maintenance/scheduler.py)
enqueues one job per tick, judged by the database clock; advancing a schedule's last tick is a
compare-and-set in the same statement as the insert, so however many schedulers run, a tick is enqueued
once. Cron expressions are evaluated in UTC: five fields, or six with seconds last. croniter's R (a random
value) is refused: drawn anew at each read, it would fire at another time on every scheduler run.

After downtime: when the oldest tick a scheduler finds due is older than `MISSED_TICK_GRACE_SECONDS`, no
scheduler ran for longer than a change of leader takes, so every worker was down: all the ticks due then
were missed. With `catch_up` (the default) they make one job, for the latest of them, as a BullMQ job
scheduler does (its one next job is waiting when the workers come back); without it they are skipped, as
Oban's and River's cron do. Either way the schedule then runs each tick again. Ticks due for less than the
grace (a scheduler's lag, a change of leader) are each enqueued: a shorter downtime looks the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

import psycopg
from croniter import CroniterBadDateError, CroniterError, croniter

from .client import _store_for
from .errors import InvalidJob
from .loaders import OutOfRangeTime
from .maintenance.leader import LEADER_RENEW_SECONDS, LEADER_TTL_SECONDS
from .new_job import NewJob
from .registry import HandlerFunc, Registry, default_registry
from .rules import DEFAULT_MAX_ATTEMPTS, MAX_TYPE_LENGTH
from .store import Store
from .validation import check_text

# A scheduler that finds a tick due for longer than this finds a downtime (every worker was down), not a late
# run. Longer than a change of leader: a crashed leader's lease, a follower's next renewal, its first run.
MISSED_TICK_GRACE_SECONDS = LEADER_TTL_SECONDS + LEADER_RENEW_SECONDS + 10.0
SCHEDULES_LIMIT = 500  # schedules the console and the API list at most
# What computing the ticks of a schedule stored by plain SQL can raise: a cron croniter refuses, that never
# fires or that is random (RandomCron, a ValueError), a last tick at the end of Python's datetime range.
SCHEDULE_ERRORS = (ValueError, KeyError, OverflowError, TypeError, CroniterError)
# A field croniter reads as R, a random value drawn anew each time it reads the cron: the scheduler reads it every
# run, so 'R * * * *' would fire at a new random minute each time (hundreds of jobs an hour, not one). croniter
# reads the fields as runs of non-blank ASCII, in lower case. (H, a hash, needs a hash_id and is refused already.)
_CRON_FIELD = re.compile(r"\S+", re.ASCII)
_RANDOM_FIELD = re.compile(r"r(\(\d+-\d+\))?(/\d+)?", re.ASCII | re.IGNORECASE)


class ScheduleOptions(TypedDict, total=False):
    """A schedule's settings besides its cron and job type (the keyword arguments of `periodic`)."""

    payload: Any  # the payload of every job it enqueues
    name: str | None  # default: the job type
    queue: str
    priority: int
    max_attempts: int
    catch_up: bool  # after downtime, enqueue the missed ticks once (default True)


SCHEDULE_OPTIONS = frozenset(ScheduleOptions.__annotations__)


@dataclass(frozen=True)
class PeriodicJob:
    """A schedule: enqueue `job` at every tick of `cron` (UTC)."""

    name: str
    cron: str
    job: NewJob
    catch_up: bool = True

    def row(self, source: str) -> dict[str, Any]:
        job = self.job
        return {
            "name": self.name,
            "cron": self.cron,
            "type": job.type,
            "payload": job.payload_json,
            "queue": job.queue,
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "catch_up": self.catch_up,
            "source": source,
        }


def validate_periodic(cron: str, *, type: str, **options: Unpack[ScheduleOptions]) -> PeriodicJob:
    """Checks a schedule's fields; raises InvalidJob naming the bad one (TypeError for an unknown keyword)."""
    unknown = sorted(set(options) - SCHEDULE_OPTIONS)
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    _check_cron(cron)
    job = NewJob.build(
        type,
        options.get("payload"),
        queue=options.get("queue", "default"),
        priority=options.get("priority", 0),
        max_attempts=options.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
    )
    name = options.get("name")
    name = type if name is None else name
    check_text("name", name, max_length=MAX_TYPE_LENGTH)
    catch_up = options.get("catch_up", True)
    if not isinstance(catch_up, bool):
        raise InvalidJob("catch_up must be True or False")
    return PeriodicJob(name, cron, job, catch_up)


def _check_cron(cron: str) -> None:
    """Raises InvalidJob unless `cron` is a cron expression that fires."""
    if not isinstance(cron, str) or not croniter.is_valid(cron) or len(cron.split()) not in (5, 6):
        raise InvalidJob(f"cron must be a cron expression of 5 fields (or 6, seconds last), not {cron!r}", field="cron")
    try:
        # Valid syntax can name a date that does not exist ('0 0 30 2 *'): croniter finds no next tick.
        _cron_ticks(cron, datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidJob(f"cron {cron!r} never fires: no date matches it", field="cron") from None
    except RandomCron as exc:
        raise InvalidJob(str(exc), field="cron") from None


class RandomCron(ValueError):
    """A cron with a random field (R), whose ticks change each time it is read (one of SCHEDULE_ERRORS)."""


def _cron_ticks(cron: str, start: datetime) -> croniter:
    """croniter's ticks of `cron` after `start`; raises RandomCron for a random field, whose ticks cannot be planned."""
    if any(_RANDOM_FIELD.fullmatch(field) for field in _CRON_FIELD.findall(cron)):
        raise RandomCron(
            f"cron {cron!r} has a random field (R): it would fire at a new random time at every scheduler run;"
            " write the minute or hour you want"
        )
    return croniter(cron, start)


@dataclass(frozen=True)
class TickPlan:
    """What a scheduler does for one schedule now: enqueue these ticks, then record `advance_to` as handled."""

    enqueue: list[datetime]
    advance_to: datetime | None
    missed: int  # 1 when the due ticks were missed (a downtime), else 0: they are not counted, as there may be many


def plan_ticks(
    cron: str, last_tick: datetime, now: datetime, *, catch_up: bool, grace_seconds: float = MISSED_TICK_GRACE_SECONDS
) -> TickPlan:
    """The ticks of `cron` in (last_tick, now]: each one is enqueued when the oldest fell due within the grace
    (the scheduler is late, or a new leader took over); otherwise every worker was down and they were missed,
    one job for the latest of them stands for them all (with `catch_up`), or none."""
    last_tick, now = last_tick.astimezone(UTC), now.astimezone(UTC)
    ticks = _cron_ticks(cron, last_tick)
    tick = ticks.get_next(datetime)
    if tick > now:
        return TickPlan([], None, 0)
    if tick >= now - timedelta(seconds=grace_seconds):
        due = [tick]  # at most a grace's worth, however long ago the last tick was
        while (tick := ticks.get_next(datetime)) <= now:
            due.append(tick)
        return TickPlan(due, due[-1], 0)
    latest = _cron_ticks(cron, now + timedelta(microseconds=1)).get_prev(datetime)
    return TickPlan([latest] if catch_up else [], latest, 1)


class PeriodicRegistry:
    """The schedules declared in code; workers write them to the database when they start."""

    def __init__(self) -> None:
        self._schedules: dict[str, PeriodicJob] = {}

    def add(self, schedule: PeriodicJob) -> PeriodicJob:
        existing = self._schedules.get(schedule.name)
        if existing is not None and existing != schedule:
            raise ValueError(
                f"periodic job {schedule.name!r} is declared twice with different settings; give one a name="
            )
        self._schedules[schedule.name] = schedule
        return schedule

    def schedules(self) -> list[PeriodicJob]:
        return [self._schedules[name] for name in sorted(self._schedules)]

    def __len__(self) -> int:
        return len(self._schedules)


default_periodic_registry = PeriodicRegistry()


def periodic(
    cron: str,
    *,
    type: str,
    registry: PeriodicRegistry | None = None,
    handlers: Registry | None = None,
    **options: Unpack[ScheduleOptions],
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Declares a schedule (at once); used as a decorator it also registers the function as `type`'s handler.
    `options`: payload, name, queue, priority, max_attempts, catch_up (see `ScheduleOptions`).

    @supaworker.periodic("*/5 * * * *", type="cleanup")
    def cleanup(job): ...
    """
    schedule = validate_periodic(cron, type=type, **options)
    (default_periodic_registry if registry is None else registry).add(schedule)

    def decorate(func: HandlerFunc) -> HandlerFunc:
        (default_registry if handlers is None else handlers).register(type, func)
        return func

    return decorate


def sync_periodic_jobs(store: Store, registry: PeriodicRegistry | None = None) -> int:
    """Writes the schedules declared in code to the database (a worker does this when it starts)."""
    schedules = (default_periodic_registry if registry is None else registry).schedules()
    for schedule in schedules:
        store.upsert_periodic_job(schedule.row("code"))
    return len(schedules)


def add_periodic_job(
    cron: str,
    *,
    type: str,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
    **options: Unpack[ScheduleOptions],
) -> dict[str, Any]:
    """Creates or replaces a schedule without code (CLI, API); returns its row."""
    schedule = validate_periodic(cron, type=type, **options)
    return _store_for(conn, store).upsert_periodic_job(schedule.row("api"), conn)


def remove_periodic_job(name: str, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> bool:
    """Deletes a schedule; False when there was none. A schedule still declared in code returns when a
    worker with that code starts."""
    return _store_for(conn, store).delete_periodic_job(name, conn)


def set_periodic_enabled(
    name: str, enabled: bool, *, conn: psycopg.Connection | None = None, store: Store | None = None
) -> dict[str, Any] | None:
    """Switches a schedule on or off; its row, or None when there is no such schedule. A disabled schedule
    enqueues nothing; enabled again, it counts ticks from then on (what fell due meanwhile is not caught up).
    A worker that starts with the schedule declared in its code leaves the switch as it is."""
    check_text("name", name, max_length=MAX_TYPE_LENGTH)
    return _store_for(conn, store).set_periodic_job_enabled(name, enabled, conn)


def list_periodic_jobs(*, conn: psycopg.Connection | None = None, store: Store | None = None) -> list[dict[str, Any]]:
    """Every schedule with its last tick and, computed here, its next one (none while it is disabled)."""
    rows = _store_for(conn, store).list_periodic_jobs(conn)
    for row in rows:
        row["next_tick_at"] = next_tick(row)
    return rows


def next_tick(schedule: dict[str, Any]) -> datetime | None:
    """The tick after a schedule's last one; None while it is disabled (enabled again, it counts from then),
    or when a schedule stored by plain SQL has no readable one (a cron croniter refuses, a last tick beyond
    Python's datetime)."""
    cron, last_tick = schedule["cron"], schedule["last_tick_at"]
    if not schedule["enabled"] or isinstance(last_tick, OutOfRangeTime):
        return None  # the scheduler skips such a schedule (maintenance/scheduler.py)
    try:
        return _cron_ticks(cron, last_tick.astimezone(UTC)).get_next(datetime)
    except SCHEDULE_ERRORS:
        return None


def list_periodic_schedules(
    limit: int = SCHEDULES_LIMIT, *, conn: psycopg.Connection | None = None, store: Store | None = None
) -> list[dict[str, Any]]:
    """At most `limit` schedules by name, with their next tick and the status of the last job each enqueued."""
    rows = _store_for(conn, store).list_periodic_schedules(limit, conn)
    for row in rows:
        row["next_tick_at"] = next_tick(row)
    return rows
