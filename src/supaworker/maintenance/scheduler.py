"""Enqueues periodic jobs at their cron ticks (see periodic.py for the rules on missed ticks).

It reads the schedules with the database's `now()`, plans each one's due ticks, and advances each with a
compare-and-set on its last tick that inserts the job in the same statement: a second scheduler racing it
(a leader change mid-run) finds the tick taken and enqueues nothing.

A schedule whose ticks cannot be computed (stored by plain SQL: a cron croniter refuses or that never
fires, a last tick beyond Python's datetime) is skipped with one warning, and the others run on.
"""

from __future__ import annotations

import logging
from typing import Any

from ..loaders import OutOfRangeTime
from ..periodic import MISSED_TICK_GRACE_SECONDS, SCHEDULE_ERRORS, TickPlan, plan_ticks
from ..store import Store

log = logging.getLogger("supaworker.maintenance")

SCHEDULER_INTERVAL_SECONDS = 1.0


class PeriodicScheduler:
    """`run_once()` enqueues what is due and returns counts: enqueued, skipped (missed without catch-up),
    lost (another scheduler handled the tick first), duplicate (the tick's job was there already: its unique
    key held), unreadable (schedules whose ticks cannot be computed)."""

    def __init__(self, store: Store, *, grace_seconds: float = MISSED_TICK_GRACE_SECONDS) -> None:
        self.store = store
        self.grace_seconds = grace_seconds
        # The unreadable schedules of the last run, by name, as (cron, last tick): a schedule is warned about
        # again only once its row has changed.
        self._unreadable: dict[str, tuple[str, str]] = {}

    def run_once(self) -> dict[str, int]:
        counts = {"enqueued": 0, "skipped": 0, "lost": 0, "duplicate": 0, "unreadable": 0}
        unreadable: dict[str, tuple[str, str]] = {}
        for schedule in self.store.list_periodic_jobs():
            if not schedule["enabled"]:
                continue
            plan = self._plan(schedule, unreadable)
            if plan is None:
                counts["unreadable"] += 1
                continue
            if plan.advance_to is None:
                continue
            prev = schedule["last_tick_at"]
            steps = [(tick, True) for tick in plan.enqueue]
            if not steps or steps[-1][0] != plan.advance_to:
                steps.append((plan.advance_to, False))
            for tick, enqueue in steps:
                advanced, job_id = self.store.advance_periodic_job(schedule["name"], prev, tick, enqueue)
                if not advanced:
                    counts["lost"] += 1
                    break
                prev = tick
                if enqueue and job_id is None:
                    counts["duplicate"] += 1
                    log.info(
                        "periodic tick's job already there",
                        extra={"schedule": schedule["name"], "tick": tick.isoformat()},
                    )
                elif enqueue:
                    counts["enqueued"] += 1
                    log.info(
                        "periodic job enqueued",
                        extra={"schedule": schedule["name"], "tick": tick.isoformat(), "job_id": job_id},
                    )
                else:
                    counts["skipped"] += 1
                    log.info(
                        "missed periodic ticks skipped (catch_up off)",
                        extra={"schedule": schedule["name"], "up_to": tick.isoformat()},
                    )
        self._unreadable = unreadable
        return counts

    def _plan(self, schedule: dict[str, Any], unreadable: dict[str, tuple[str, str]]) -> TickPlan | None:
        """The schedule's due ticks; None when they cannot be computed, noted in `unreadable` and warned
        about unless the last run already was for this row."""
        name, cron, last_tick = schedule["name"], schedule["cron"], schedule["last_tick_at"]
        if isinstance(last_tick, OutOfRangeTime):
            # Even if ticks could be planned from it, the compare-and-set on this value would never match.
            reason = "last_tick_at is beyond Python's datetime range"
        else:
            try:
                return plan_ticks(
                    cron, last_tick, schedule["db_now"], catch_up=schedule["catch_up"], grace_seconds=self.grace_seconds
                )
            except SCHEDULE_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
        state = (cron, str(last_tick))
        unreadable[name] = state
        if self._unreadable.get(name) != state:
            log.warning(
                "periodic job skipped: its ticks cannot be computed (fix its cron or last_tick_at, or remove it)",
                extra={"schedule": name, "cron": cron, "last_tick_at": str(last_tick), "error": reason},
            )
        return None
