"""Job states, equal to the SQL enum `job_status`; each says what moves a job out of it."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    WAITING = "waiting"  # blocked on dependencies; complete_jobs() releases it when its parents complete
    PENDING = "pending"  # runnable from run_at on; a worker's claim_jobs() takes it
    PROCESSING = "processing"  # its worker completes, fails or releases it; the rescuer if the lease runs out
    COMPLETED = "completed"  # final
    FAILED = "failed"  # final until retry_job()
    CANCELLED = "cancelled"  # final until retry_job()

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
