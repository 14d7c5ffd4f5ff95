"""supaworker: a PostgreSQL-backed job queue and worker.

Enqueue with `create_job` / `create_jobs`, register handlers with `@handler("type")`, and run
`supaworker worker --import your.module`.
"""

from .client import cancel_job, create_job, create_jobs, get_job, retry_job
from .controls import JobControl, clear_limits, list_controls, pause, resume, set_limits
from .errors import (
    ConfigError,
    DatabaseUnavailable,
    InvalidJob,
    InvalidTransition,
    JobFailed,
    JobNotFound,
    MigrationError,
    SupaworkerError,
    UnrecoverableError,
    WaitTimeout,
)
from .job import Job, JobRecord
from .periodic import add_periodic_job, list_periodic_jobs, periodic, remove_periodic_job
from .registry import Registry, handler
from .results import wait_for
from .states import JobStatus

__all__ = [
    "ConfigError",
    "DatabaseUnavailable",
    "InvalidJob",
    "InvalidTransition",
    "Job",
    "JobControl",
    "JobFailed",
    "JobNotFound",
    "JobRecord",
    "JobStatus",
    "MigrationError",
    "Registry",
    "SupaworkerError",
    "UnrecoverableError",
    "WaitTimeout",
    "add_periodic_job",
    "cancel_job",
    "clear_limits",
    "create_job",
    "create_jobs",
    "get_job",
    "handler",
    "list_controls",
    "list_periodic_jobs",
    "pause",
    "periodic",
    "remove_periodic_job",
    "resume",
    "retry_job",
    "set_limits",
    "wait_for",
]
