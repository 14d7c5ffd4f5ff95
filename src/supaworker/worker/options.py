"""A worker's options: what `supaworker worker` and `up` are given, as one value the supervisor hands to its
children unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config import Settings


@dataclass
class WorkerOptions:
    concurrency: int
    poll_interval_seconds: float
    job_timeout_seconds: float
    lease_seconds: float
    rescue_interval_seconds: float
    retry_base_seconds: float
    retry_cap_seconds: float
    shutdown_grace_seconds: float
    queues: Sequence[str] | None = None
    types: Sequence[str] | None = None  # default: every type with a handler
    # Jobs claimed ahead of free slots, so claims come in batches. They hold a lease like running jobs (the
    # heartbeat renews it), so a crash strands them only until the lease runs out. None: same as concurrency.
    prefetch: int | None = None
    # Named queues with slots of their own (Oban's and River's per-queue limits): each queue is claimed for
    # separately, so a busy queue never takes the slots of another. Overrides queues and concurrency, and
    # claims no more than the free slots of each queue (no prefetch).
    queue_concurrency: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.queue_concurrency:
            bad = {q: n for q, n in self.queue_concurrency.items() if n < 1}
            if bad:
                raise ValueError(f"queue concurrency must be >= 1: {bad}")
            self.queues = list(self.queue_concurrency)
            self.concurrency = sum(self.queue_concurrency.values())
            self.prefetch = 0

    @property
    def capacity(self) -> int:
        return self.concurrency + (self.concurrency if self.prefetch is None else self.prefetch)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> WorkerOptions:
        values: dict[str, object] = {
            "concurrency": settings.max_concurrent_jobs,
            "poll_interval_seconds": settings.poll_interval_seconds,
            "job_timeout_seconds": settings.job_timeout_seconds,
            "lease_seconds": settings.lease_seconds,
            "rescue_interval_seconds": settings.rescue_interval_seconds,
            "retry_base_seconds": settings.retry_base_seconds,
            "retry_cap_seconds": settings.retry_cap_seconds,
            "shutdown_grace_seconds": settings.shutdown_grace_seconds,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
