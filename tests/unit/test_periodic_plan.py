"""Which cron ticks a scheduler enqueues: pure logic, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supaworker import InvalidJob
from supaworker.periodic import PeriodicRegistry, plan_ticks, validate_periodic
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
