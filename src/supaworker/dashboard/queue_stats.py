"""Throughput and wait / run time percentiles per job type over the last hour and day, at a bounded cost.

Exact figures would read every job finished in a day (a million rows on a busy queue). Instead the day is cut
into SLICES hourly slices and each contributes at most PER_SLICE of its newest finished jobs
(sample_finished_jobs.sql, through jobs_completed_at_idx): at most SLICES x PER_SLICE rows whatever the
table holds, and no table of counters for the workers to keep up. A slice that returned fewer rows than
PER_SLICE is exact; a full one stands for all its jobs at the rate its sample shows (its jobs per second
between the oldest sampled job and the slice's end), and every sampled job carries the weight of the jobs
it stands for. Percentiles are weighted the same way. Figures from estimated slices are marked "≈".
One reading serves every viewer for MAX_AGE_SECONDS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..store import Store

SLICES = 24
SLICE_SECONDS = 3600.0
PER_SLICE = 200
MAX_AGE_SECONDS = 10.0


@dataclass
class TypeFigures:
    """One type's figures over one window."""

    completed: float = 0.0
    failed: float = 0.0  # failed and cancelled
    estimated: bool = False
    waits: list[tuple[float, float]] = field(default_factory=list)  # (seconds, weight)
    runs: list[tuple[float, float]] = field(default_factory=list)

    @property
    def finished(self) -> float:
        return self.completed + self.failed

    def wait_p(self, q: float) -> float | None:
        return weighted_percentile(self.waits, q)

    def run_p(self, q: float) -> float | None:
        return weighted_percentile(self.runs, q)


@dataclass
class QueueStats:
    as_of: datetime
    hour: dict[str, TypeFigures]
    day: dict[str, TypeFigures]
    hourly: dict[str, list[tuple[float, float]]]  # type -> (completed, failed) per hour, oldest first
    queues: dict[str, TypeFigures]  # per queue, over the hour
    sampled_rows: int
    estimated_slices: int


def weighted_percentile(values: list[tuple[float, float]], q: float) -> float | None:
    """The value below which a share `q` of the total weight lies."""
    if not values:
        return None
    ordered = sorted(values)
    total = sum(w for _, w in ordered)
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= q * total:
            return value
    return ordered[-1][0]


def compute(rows: list[dict[str, Any]], now: datetime) -> QueueStats:
    """Figures per type (hour, day, each hour) and per queue (hour) from the sampled rows."""
    by_slice: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_slice.setdefault(row["slice"], []).append(row)
    hour: dict[str, TypeFigures] = {}
    day: dict[str, TypeFigures] = {}
    queues: dict[str, TypeFigures] = {}
    hourly: dict[str, list[tuple[float, float]]] = {}
    estimated = 0
    for slice_no, sample in by_slice.items():
        weight = 1.0
        if len(sample) >= PER_SLICE:
            estimated += 1
            slice_end = now.timestamp() - slice_no * SLICE_SECONDS
            oldest = min(r["completed_at"].timestamp() for r in sample)
            covered = max(slice_end - oldest, 1e-3)
            weight = max(1.0, (len(sample) / covered) * SLICE_SECONDS / len(sample))
        for row in sample:
            targets = [day.setdefault(row["type"], TypeFigures())]
            if slice_no == 0:
                targets += [hour.setdefault(row["type"], TypeFigures()), queues.setdefault(row["queue"], TypeFigures())]
            for figures in targets:
                if row["status"] == "completed":
                    figures.completed += weight
                else:
                    figures.failed += weight
                figures.estimated |= weight > 1.0
                if row["wait_seconds"] is not None:
                    figures.waits.append((max(row["wait_seconds"], 0.0), weight))
                if row["run_seconds"] is not None:
                    figures.runs.append((max(row["run_seconds"], 0.0), weight))
            bars = hourly.setdefault(row["type"], [(0.0, 0.0)] * SLICES)
            ok, bad = bars[SLICES - 1 - slice_no]
            bars[SLICES - 1 - slice_no] = (ok + weight, bad) if row["status"] == "completed" else (ok, bad + weight)
    return QueueStats(now, hour, day, hourly, queues, len(rows), estimated)


class QueueStatsReader:
    """Samples once per `max_age_seconds` however many viewers ask; a viewer arriving during a reading waits."""

    def __init__(self, store: Store, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self.store = store
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        self._stats: QueueStats | None = None
        self._read_at = 0.0

    def stats(self) -> QueueStats:
        with self._lock:
            if self._stats is None or time.monotonic() - self._read_at >= self.max_age_seconds:
                with self.store.connection() as conn:
                    now = self.store.database_now(conn)
                    rows = self.store.sample_finished_jobs(now, SLICES, SLICE_SECONDS, PER_SLICE, conn)
                self._stats = compute(rows, now)
                self._read_at = time.monotonic()
            return self._stats
