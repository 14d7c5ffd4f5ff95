"""Job states, equal to the SQL enum `job_status`; each says what moves a job out of it."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """cancel_job() (or a parent that failed for good) takes a job out of waiting, pending or processing."""

    WAITING = "waiting"  # blocked on dependencies; complete_jobs() releases it when its parents complete
    PENDING = "pending"  # runnable from run_at on; a worker's claim_jobs_v2() takes it
    # Its worker completes, fails or releases it; rescue_expired_jobs_v2() if the lease runs out (charging an
    # attempt only when the handler had started).
    PROCESSING = "processing"
    COMPLETED = "completed"  # final (until pruned)
    FAILED = "failed"  # final until retry_job()
    CANCELLED = "cancelled"  # final until retry_job()

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
