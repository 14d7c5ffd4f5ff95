"""How many jobs a worker claims ahead of its free slots.

Claiming ahead turns one round trip per job into one per batch, which is most of what a short job costs
(worker and server CPU alike). What it costs in return is what the claimed-ahead jobs wait for: a slot of
this worker, while another worker may be idle, and, if this worker is killed, its lease (they then go back
uncharged: no attempt is used). Both are bounded by time, not by a count, so the default is "about
PREFETCH_TARGET_SECONDS of work": the jobs this worker's slots finish in that time at their recent pace, up to
PREFETCH_MAX. Many for no-op jobs (hundreds), one or two for jobs of a second, none held back from the start
beyond `concurrency`, which is where it begins before the first jobs have been timed.
"""

from __future__ import annotations

import math

PREFETCH_TARGET_SECONDS = 0.1
PREFETCH_MAX = 500
# Weight of the newest run time in the moving average: it follows a change of pace within about 20 jobs.
SMOOTHING = 0.05


class Prefetch:
    """`value` is the number of jobs to hold claimed ahead: `fixed` when the operator set one (`--prefetch`),
    else adapted to the run times `observe()` is given."""

    def __init__(self, concurrency: int, fixed: int | None = None) -> None:
        self.concurrency = concurrency
        self.fixed = fixed
        self.average_seconds: float | None = None
        self.value = fixed if fixed is not None else concurrency

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    def observe(self, run_seconds: float) -> None:
        """One finished attempt's run time (handler only)."""
        if self.fixed is not None:
            return
        if self.average_seconds is None:
            self.average_seconds = run_seconds
        else:
            self.average_seconds += SMOOTHING * (run_seconds - self.average_seconds)
        per_slot = max(self.average_seconds, 1e-6)
        self.value = max(1, min(PREFETCH_MAX, math.floor(PREFETCH_TARGET_SECONDS * self.concurrency / per_slot)))
