"""Moves finished jobs out of the queue's table into job_history and drops its partitions past retention.

With history on (SUPAWORKER_HISTORY_AFTER_SECONDS), this replaces the pruner: a job leaves `jobs` by moving,
a batch at a time, and history leaves by whole partitions (migration 0019), so no DELETE of a day's jobs ever
runs and the queue's table holds only unfinished and recently finished jobs. Autovacuum analyzes partitions
but never their parent, so the parent is analyzed here after a drop and after every `ANALYZE_AFTER_ROWS`
moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..config import HISTORY_PARTITION_SECONDS, HISTORY_RETENTION_SECONDS, Settings
from ..store import Store
from .batches import in_batches

HISTORY_BATCH_SIZE = 1000
HISTORY_MAX_BATCHES_PER_RUN = 100
ANALYZE_AFTER_ROWS = 100_000


@dataclass(frozen=True)
class HistoryConfig:
    """Finished jobs move after `after_seconds`; a partition spans `partition_seconds` of completion times
    and is dropped once all of it is older than `retention_seconds`."""

    after_seconds: float
    retention_seconds: float = HISTORY_RETENTION_SECONDS
    partition_seconds: float = HISTORY_PARTITION_SECONDS
    batch_size: int = HISTORY_BATCH_SIZE
    max_batches: int = HISTORY_MAX_BATCHES_PER_RUN

    def __post_init__(self) -> None:
        if not self.after_seconds >= 0:
            raise ValueError(f"after_seconds must be >= 0, not {self.after_seconds}")
        if not self.retention_seconds > 0:
            raise ValueError(f"retention_seconds must be > 0, not {self.retention_seconds}")
        if not self.partition_seconds >= 1:
            raise ValueError(f"partition_seconds must be >= 1, not {self.partition_seconds}")
        if self.batch_size < 1 or self.max_batches < 1:
            raise ValueError("batch_size and max_batches must be >= 1")


def history_config(settings: Settings) -> HistoryConfig | None:
    """What SUPAWORKER_HISTORY_* ask for; None while history is off (the pruner deletes finished jobs)."""
    if settings.history_after_seconds is None:
        return None
    return HistoryConfig(
        after_seconds=settings.history_after_seconds,
        retention_seconds=settings.history_retention_seconds,
        partition_seconds=settings.history_partition_seconds,
    )


class HistoryKeeper:
    """`run_once()` moves what finished long enough ago, drops what is past retention, and returns counts."""

    def __init__(self, store: Store, config: HistoryConfig) -> None:
        self.store = store
        self.config = config
        self._moved_since_analyze = 0

    def run_once(self) -> dict[str, int]:
        c = self.config
        move = partial(self.store.archive_finished_jobs, c.after_seconds, partition_seconds=c.partition_seconds)
        moved = in_batches(move, c.batch_size, c.max_batches)
        dropped = self.store.drop_history_partitions(c.retention_seconds)
        self._moved_since_analyze += moved
        analyzed = bool(dropped) or self._moved_since_analyze >= ANALYZE_AFTER_ROWS
        if analyzed:
            self.store.analyze_job_history()
            self._moved_since_analyze = 0
        return {"moved": moved, "partitions_dropped": len(dropped), "analyzed": int(analyzed)}
