"""supaworker: a PostgreSQL-backed job queue and worker.

Enqueue with `create_job` / `create_jobs` (`depends_on=` for pipelines and fan-in), start a brief with
`create_brief_with_job`, register handlers with `@handler("type")`, and run
`supaworker worker --import your.module`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

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
    WaitTimeout,
)
from .job import Job, JobRecord
from .registry import Registry, handler
from .states import JobStatus

if TYPE_CHECKING:
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
    from .controls import JobControl, clear_limits, list_controls, pause, resume, set_limits
    from .fairness import list_fairness_weights, remove_fairness_weight, set_fairness_weight
    from .periodic import add_periodic_job, list_periodic_jobs, periodic, remove_periodic_job
    from .results import wait_for

# The rest of the public API, imported on first use: a worker process that only registers handlers and runs
# them never pays for what producers, briefs or cron schedules need (a fifth of its start-up).
_LAZY = {
    **dict.fromkeys(
        ("Brief", "BriefStatus", "BriefWithJob", "cancel_brief", "create_brief_with_job", "get_brief"), "briefs"
    ),
    **dict.fromkeys(("list_briefs", "retry_brief"), "briefs"),
    **dict.fromkeys(("cancel_job", "create_job", "create_jobs", "get_job", "retry_job"), "client"),
    **dict.fromkeys(("JobControl", "clear_limits", "list_controls", "pause", "resume", "set_limits"), "controls"),
    **dict.fromkeys(("add_periodic_job", "list_periodic_jobs", "periodic", "remove_periodic_job"), "periodic"),
    **dict.fromkeys(("list_fairness_weights", "remove_fairness_weight", "set_fairness_weight"), "fairness"),
    "wait_for": "results",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'supaworker' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
    "cancel_brief",
    "cancel_job",
    "clear_limits",
    "create_brief_with_job",
    "create_job",
    "create_jobs",
    "get_brief",
    "get_job",
    "handler",
    "list_briefs",
    "list_controls",
    "list_fairness_weights",
    "list_periodic_jobs",
    "pause",
    "periodic",
    "remove_fairness_weight",
    "remove_periodic_job",
    "resume",
    "retry_brief",
    "retry_job",
    "set_fairness_weight",
    "set_limits",
    "wait_for",
]
