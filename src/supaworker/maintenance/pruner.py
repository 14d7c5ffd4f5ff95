"""Deletes finished jobs once they are older than their retention, in bounded batches.

Defaults follow River's cleaner: completed and cancelled jobs are kept 24 hours, failed ones 7 days (they
are what someone may still need to look at). A finished job whose dependents have not finished yet is
kept: they read its result. Each batch is its own short statement, so pruning never holds many row locks
or a long transaction, and one run stops after `max_batches` so it cannot monopolise the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..config import PRUNE_CANCELLED_AFTER_SECONDS, PRUNE_COMPLETED_AFTER_SECONDS, PRUNE_FAILED_AFTER_SECONDS
from ..store import Store
from .batches import in_batches

PRUNE_BATCH_SIZE = 1000
PRUNE_MAX_BATCHES_PER_RUN = 100
PRUNE_INTERVAL_SECONDS = 30.0


@dataclass(frozen=True)
class PrunerConfig:
    """Retention per final status in seconds; None keeps that status for ever."""

    completed_retention_seconds: float | None = PRUNE_COMPLETED_AFTER_SECONDS
    failed_retention_seconds: float | None = PRUNE_FAILED_AFTER_SECONDS
    cancelled_retention_seconds: float | None = PRUNE_CANCELLED_AFTER_SECONDS
    batch_size: int = PRUNE_BATCH_SIZE
    max_batches: int = PRUNE_MAX_BATCHES_PER_RUN

    def __post_init__(self) -> None:
        for name in ("completed_retention_seconds", "failed_retention_seconds", "cancelled_retention_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, not {value}")
        if self.batch_size < 1 or self.max_batches < 1:
            raise ValueError("batch_size and max_batches must be >= 1")


class Pruner:
    """`run_once()` deletes what is past retention and returns how many jobs of each status went."""

    def __init__(self, store: Store, config: PrunerConfig | None = None) -> None:
        self.store = store
        self.config = config or PrunerConfig()

    def run_once(self) -> dict[str, int]:
        c = self.config
        counts: dict[str, int] = {}
        for status, retention in (
            ("completed", c.completed_retention_seconds),
            ("failed", c.failed_retention_seconds),
            ("cancelled", c.cancelled_retention_seconds),
        ):
            counts[status] = 0
            if retention is not None:
                prune = partial(self.store.prune_finished_jobs, status, retention)
                counts[status] = in_batches(prune, c.batch_size, c.max_batches)
        return counts
