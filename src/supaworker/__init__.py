"""supaworker: a PostgreSQL-backed job queue and worker.

Enqueue with `create_job` / `create_jobs`, register handlers with `@handler("type")`, and run
`supaworker worker --import your.module`.
"""

from .client import cancel_job, create_job, create_jobs, get_job, retry_job
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
)
from .job import Job, JobRecord
from .registry import Registry, handler
from .states import JobStatus

__all__ = [
    "ConfigError",
    "DatabaseUnavailable",
    "InvalidJob",
    "InvalidTransition",
    "Job",
    "JobFailed",
    "JobNotFound",
    "JobRecord",
    "JobStatus",
    "MigrationError",
    "Registry",
    "SupaworkerError",
    "UnrecoverableError",
    "cancel_job",
    "create_job",
    "create_jobs",
    "get_job",
    "handler",
    "retry_job",
]
