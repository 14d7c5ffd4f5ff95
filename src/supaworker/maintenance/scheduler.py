"""Enqueues periodic jobs at their cron ticks (see periodic.py for the rules on missed ticks).

It reads the schedules with the database's `now()`, plans each one's due ticks, and advances each with a
compare-and-set on its last tick that inserts the job in the same statement: a second scheduler racing it
(a leader change mid-run) finds the tick taken and enqueues nothing.
"""

from __future__ import annotations

import logging

from ..periodic import MISSED_TICK_GRACE_SECONDS, plan_ticks
from ..store import Store

log = logging.getLogger("supaworker.maintenance")

SCHEDULER_INTERVAL_SECONDS = 1.0


class PeriodicScheduler:
    """`run_once()` enqueues what is due and returns counts: enqueued, skipped (missed without catch-up),
    lost (another scheduler handled the tick first)."""

    def __init__(self, store: Store, *, grace_seconds: float = MISSED_TICK_GRACE_SECONDS) -> None:
        self.store = store
        self.grace_seconds = grace_seconds

    def run_once(self) -> dict[str, int]:
        counts = {"enqueued": 0, "skipped": 0, "lost": 0}
        for schedule in self.store.list_periodic_jobs():
            if not schedule["enabled"]:
                continue
            plan = plan_ticks(
                schedule["cron"],
                schedule["last_tick_at"],
                schedule["db_now"],
                catch_up=schedule["catch_up"],
                grace_seconds=self.grace_seconds,
            )
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
                if enqueue:
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
        return counts
