"""Which cron ticks a scheduler enqueues: pure logic, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supaworker import InvalidJob
from supaworker.maintenance.leader import LEADER_RENEW_SECONDS, LEADER_TTL_SECONDS
from supaworker.maintenance.scheduler import SCHEDULER_INTERVAL_SECONDS
from supaworker.periodic import MISSED_TICK_GRACE_SECONDS, PeriodicRegistry, plan_ticks, validate_periodic
from supaworker.registry import Registry

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_tick_just_passed_is_enqueued() -> None:
    plan = plan_ticks("*/5 * * * *", T0, T0 + timedelta(minutes=5, seconds=2), catch_up=True)
    assert plan.enqueue == [T0 + timedelta(minutes=5)] and plan.advance_to == T0 + timedelta(minutes=5)
    assert plan.missed == 0


def test_nothing_is_due_between_ticks() -> None:
    assert plan_ticks("*/5 * * * *", T0, T0 + timedelta(minutes=4), catch_up=True).advance_to is None


def test_ticks_missed_during_downtime_become_one_job_with_catch_up() -> None:
    now = T0 + timedelta(hours=3, minutes=2)
    plan = plan_ticks("*/5 * * * *", T0, now, catch_up=True)
    assert plan.enqueue == [T0 + timedelta(hours=3)] and plan.advance_to == T0 + timedelta(hours=3)
    assert plan.missed == 1


def test_ticks_missed_during_downtime_are_skipped_without_catch_up() -> None:
    plan = plan_ticks("*/5 * * * *", T0, T0 + timedelta(hours=3, minutes=2), catch_up=False)
    assert plan.enqueue == [] and plan.advance_to == T0 + timedelta(hours=3)


def test_recent_tick_stands_in_for_older_missed_ones() -> None:
    plan = plan_ticks("*/5 * * * *", T0, T0 + timedelta(hours=1, seconds=10), catch_up=True)
    assert plan.enqueue == [T0 + timedelta(hours=1)] and plan.missed == 1


def test_every_recent_seconds_tick_is_enqueued() -> None:
    plan = plan_ticks("* * * * * */10", T0, T0 + timedelta(seconds=35), catch_up=True)
    assert plan.enqueue == [T0 + timedelta(seconds=s) for s in (10, 20, 30)]


def test_ticks_are_judged_in_utc_whatever_the_timezone_given() -> None:
    local = datetime(2030, 1, 1, 13, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    plan = plan_ticks("0 13 * * *", T0, local + timedelta(seconds=1), catch_up=True)
    assert plan.enqueue == [datetime(2030, 1, 1, 13, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "every day"}, "cron must be a cron expression"),
        ({"cron": "* * *"}, "cron must be a cron expression"),
        ({"cron": "* * * * *", "type": ""}, "type must be a non-empty string"),
        ({"cron": "* * * * *", "payload": {"x": object()}}, "JSON-serialisable"),
        ({"cron": "* * * * *", "max_attempts": 0}, "max_attempts"),
        ({"cron": "* * * * *", "catch_up": "yes"}, "catch_up"),
    ],
)
def test_bad_schedules_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        validate_periodic(**{"type": "report", **kwargs})


def test_declaring_one_name_twice_differently_is_an_error_and_decorator_registers_the_handler() -> None:
    schedules, handlers = PeriodicRegistry(), Registry()
    from supaworker.periodic import periodic

    @periodic("*/5 * * * *", type="cleanup", registry=schedules, handlers=handlers)
    def cleanup(job: object) -> str:
        return "clean"

    assert "cleanup" in handlers and [s.name for s in schedules.schedules()] == ["cleanup"]
    periodic("*/5 * * * *", type="cleanup", registry=schedules, handlers=handlers)  # same again: fine
    with pytest.raises(ValueError, match="declared twice"):
        periodic("0 * * * *", type="cleanup", registry=schedules, handlers=handlers)


def _simulate(cron: str, runs: list[datetime], *, catch_up: bool = True) -> list[datetime]:
    """The ticks a scheduler enqueues when it runs at `runs`, keeping the last tick as the database does."""
    last, enqueued = T0, []
    for now in runs:
        plan = plan_ticks(cron, last, now, catch_up=catch_up)
        enqueued += plan.enqueue
        last = plan.advance_to or last
    return enqueued


def _runs(start: float, stop: float, step: float = 1.3) -> list[datetime]:
    """Scheduler runs from `start` to `stop` seconds after T0, `step` apart (its interval plus some lag)."""
    return [T0 + timedelta(seconds=start + i * step) for i in range(int((stop - start) / step) + 1)]


def _seconds(*ticks: int) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in ticks]


def test_without_downtime_every_tick_is_enqueued_once_across_a_change_of_leader() -> None:
    # No scheduler runs for as long as a crashed leader's lease lasts and a follower takes to see it.
    gap = LEADER_TTL_SECONDS + LEADER_RENEW_SECONDS + 2 * SCHEDULER_INTERVAL_SECONDS
    runs = _runs(0.5, 20) + _runs(20 + gap, 80)
    assert _simulate("* * * * * */2", runs) == _seconds(*range(2, 80, 2))
    assert _simulate("* * * * * *", runs) == _seconds(*range(1, 80))


def test_a_downtime_of_many_ticks_enqueues_one_job_for_the_latest_then_every_tick_again() -> None:
    # Every 2 s (seconds last), no worker from 10.5 s to 46.5 s: the ticks 12 to 46 were missed and make one
    # job (18 before), for the latest of them.
    runs = _runs(0.5, 10.5, step=1.0) + _runs(46.5, 56.5, step=1.0)
    assert _simulate("* * * * * */2", runs) == _seconds(2, 4, 6, 8, 10, 46, 48, 50, 52, 54, 56)
    assert _simulate("* * * * * */2", runs, catch_up=False) == _seconds(2, 4, 6, 8, 10, 48, 50, 52, 54, 56)


def test_grace_outlasts_a_change_of_leader() -> None:
    # A crashed leader's lease runs out; a follower sees it at its next renewal and schedules at once.
    assert MISSED_TICK_GRACE_SECONDS > LEADER_TTL_SECONDS + LEADER_RENEW_SECONDS + 2 * SCHEDULER_INTERVAL_SECONDS
