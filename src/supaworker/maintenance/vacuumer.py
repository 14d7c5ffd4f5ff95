"""Vacuums the jobs table when dead tuples pile up and autovacuum has not kept up (or is turned off).

Every claim and completion leaves a dead row version; the pruner's deletes leave more. Autovacuum, with the
eager per-table settings of the first migration, normally takes care of them, but it can be turned off
server-wide or fall behind a busy queue, and then the table and its runnable index only grow. The leader
checks the statistics every minute and runs one plain `VACUUM (ANALYZE)` (no exclusive lock) when dead rows
exceed both a floor and a fraction of the live ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Store

VACUUM_INTERVAL_SECONDS = 60.0
VACUUM_MIN_DEAD_TUPLES = 10_000
VACUUM_DEAD_FRACTION = 0.2


@dataclass(frozen=True)
class VacuumerConfig:
    min_dead_tuples: int = VACUUM_MIN_DEAD_TUPLES
    dead_fraction: float = VACUUM_DEAD_FRACTION


class Vacuumer:
    """`run_once()` vacuums the jobs table if it needs it; returns the dead tuples seen and whether it ran."""

    def __init__(self, store: Store, config: VacuumerConfig | None = None) -> None:
        self.store = store
        self.config = config or VacuumerConfig()

    def run_once(self) -> dict[str, int]:
        live, dead = self.store.jobs_tuple_counts()
        if dead < max(self.config.min_dead_tuples, self.config.dead_fraction * live):
            return {"dead_tuples": dead, "vacuumed": 0}
        self.store.vacuum_jobs()
        return {"dead_tuples": dead, "vacuumed": 1}
