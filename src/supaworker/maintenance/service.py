"""The worker's hook for maintenance: every worker runs one MaintenanceService; only the elected leader
runs the periodic scheduler, the pruner (or, with history on, the history keeper) and the vacuumer, each on
its own interval.

The services are synchronous (each `run_once()` is a few short statements, and tests call them directly),
so the loop runs them in a thread on a small pool of their own, never blocking the worker's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from ..periodic import PeriodicRegistry, default_periodic_registry, sync_periodic_jobs
from ..retry import DATABASE_ERRORS
from ..store import Store
from .history import HistoryConfig, HistoryKeeper
from .leader import LEADER_RENEW_SECONDS, LEADER_TTL_SECONDS, LeaderElector
from .pruner import PRUNE_INTERVAL_SECONDS, Pruner, PrunerConfig
from .scheduler import SCHEDULER_INTERVAL_SECONDS, PeriodicScheduler
from .vacuumer import VACUUM_INTERVAL_SECONDS, Vacuumer, VacuumerConfig

log = logging.getLogger("supaworker.maintenance")

TICK_SECONDS = 0.5


@dataclass
class MaintenanceConfig:
    leader_ttl_seconds: float = LEADER_TTL_SECONDS
    leader_renew_seconds: float = LEADER_RENEW_SECONDS
    scheduler_interval_seconds: float = SCHEDULER_INTERVAL_SECONDS
    prune_interval_seconds: float = PRUNE_INTERVAL_SECONDS
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    history: HistoryConfig | None = None  # on: finished jobs move to job_history instead of being pruned
    vacuum_interval_seconds: float = VACUUM_INTERVAL_SECONDS
    vacuumer: VacuumerConfig = field(default_factory=VacuumerConfig)


class MaintenanceService:
    """Elects a leader among the workers and, on the leader, schedules periodic jobs, prunes old ones and
    vacuums the jobs table when autovacuum has not kept up."""

    name = "maintenance"

    def __init__(
        self,
        store: Store,
        leader_id: str,
        config: MaintenanceConfig | None = None,
        periodic_registry: PeriodicRegistry | None = None,
    ) -> None:
        self.store = store
        self.config = config or MaintenanceConfig()
        self.periodic_registry = default_periodic_registry if periodic_registry is None else periodic_registry
        self.elector = LeaderElector(store, leader_id, ttl_seconds=self.config.leader_ttl_seconds)
        self.scheduler = PeriodicScheduler(store)
        self.pruner = Pruner(store, self.config.pruner)
        self.history = HistoryKeeper(store, self.config.history) if self.config.history is not None else None
        self.vacuumer = Vacuumer(store, self.config.vacuumer)
        self._synced = False
        self._due: dict[str, float] = {}

    def _is_due(self, what: str, interval: float, now: float) -> bool:
        if now < self._due.get(what, 0.0):
            return False
        self._due[what] = now + interval
        return True

    def tick(self, now: float | None = None) -> dict[str, object]:
        """One pass: sync declared schedules (once), renew or seek leadership, and run what is due."""
        now = time.monotonic() if now is None else now
        done: dict[str, object] = {}
        if not self._synced:
            done["periodic_synced"] = sync_periodic_jobs(self.store, self.periodic_registry)
            self._synced = True
        if self._is_due("elect", self.config.leader_renew_seconds, now):
            done["leader"] = self.elector.run_once()
        if not self.elector.is_leader:
            return done
        if self._is_due("schedule", self.config.scheduler_interval_seconds, now):
            done["scheduled"] = self.scheduler.run_once()
        if self._is_due("prune", self.config.prune_interval_seconds, now):
            self._prune(done)
        if self._is_due("vacuum", self.config.vacuum_interval_seconds, now):
            vacuumed = self.vacuumer.run_once()
            done["vacuum"] = vacuumed
            if vacuumed["vacuumed"]:
                log.info("vacuumed the jobs table", extra=vacuumed)
        return done

    def _prune(self, done: dict[str, object]) -> None:
        if self.history is not None:
            kept = done["history"] = self.history.run_once()
            if kept["moved"] or kept["partitions_dropped"]:
                log.info("moved finished jobs to history", extra=kept)
            return
        pruned = done["pruned"] = self.pruner.run_once()
        if any(pruned.values()):
            log.info("pruned finished jobs", extra=pruned)

    async def run(self) -> None:
        """Ticks until cancelled; resigns leadership on the way out."""
        try:
            while True:
                try:
                    await asyncio.to_thread(self.tick)
                except DATABASE_ERRORS as exc:
                    # Leadership is unknown after an error: the lease decides, re-checked on the next renewal.
                    self.elector.is_leader = False
                    self._due.pop("elect", None)
                    log.warning("maintenance failed, retrying", extra={"error": str(exc).strip()})
                await asyncio.sleep(TICK_SECONDS)
        finally:
            with contextlib.suppress(*DATABASE_ERRORS):
                await asyncio.to_thread(self.elector.resign)
