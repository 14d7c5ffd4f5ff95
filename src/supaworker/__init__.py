"""supaworker: a PostgreSQL-backed job queue and worker.

Enqueue with `create_job` / `create_jobs` (`depends_on=` for pipelines and fan-in), start a brief with
`create_brief_with_job`, register handlers with `@handler("type")`, and run
`supaworker worker --import your.module`.
"""

from .briefs import (
    Brief,
    BriefStatus,
    BriefWithJob,
    cancel_brief,
    create_brief_with_job,
    get_brief,
    list_briefs,
    retry_brief,
)
from .client import cancel_job, create_job, create_jobs, get_job, retry_job
from .errors import (
    BriefNotFound,
    ConfigError,
    DatabaseUnavailable,
    InvalidBrief,
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
    "Brief",
    "BriefNotFound",
    "BriefStatus",
    "BriefWithJob",
    "ConfigError",
    "DatabaseUnavailable",
    "InvalidBrief",
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
    "cancel_brief",
    "cancel_job",
    "create_brief_with_job",
    "create_job",
    "create_jobs",
    "get_brief",
    "get_job",
    "handler",
    "list_briefs",
    "retry_brief",
    "retry_job",
]
