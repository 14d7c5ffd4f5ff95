"""The exception tree.

SupaworkerError
├── ConfigError            bad or missing configuration (no database, invalid setting)
│   └── SchemaInUse        SUPAWORKER_SCHEMA names `public` or a schema holding objects of others
├── DatabaseUnavailable    the database cannot be reached
├── MigrationError         schema missing, or migrated by a newer supaworker
├── JobNotFound            no job with that id
├── BriefNotFound          no brief with that id
├── InvalidJob             a job's fields were rejected (nothing was written)
│   └── InvalidBrief       a brief's fields were rejected (nothing was written)
├── InvalidTransition      the job is not in a state that allows the action
├── JobFailed              raised by wait_for() when the job ended failed or cancelled
├── WaitTimeout            raised by wait_for() when the job did not finish in time (also a TimeoutError)
└── UnrecoverableError     raised by a handler: fail the job now, no retries
"""

from __future__ import annotations


class SupaworkerError(Exception):
    """Base of every error supaworker raises on purpose."""


class ConfigError(SupaworkerError):
    """Bad or missing configuration."""


class SchemaInUse(ConfigError):
    """SUPAWORKER_SCHEMA names a schema supaworker cannot make its own (`public`, or one already holding other
    objects); nothing was installed. The message says how to keep unqualified `FROM jobs` SQL working."""


class DatabaseUnavailable(SupaworkerError):
    """The database cannot be reached."""


class MigrationError(SupaworkerError):
    """The schema is missing, or newer than this version of supaworker."""


class JobNotFound(SupaworkerError):
    """No job with that id."""


class InvalidJob(SupaworkerError, ValueError):
    """A job's fields were rejected; nothing was written. `field` names the rejected field when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BriefNotFound(SupaworkerError):
    """No brief with that id."""


class InvalidBrief(InvalidJob):
    """A brief's fields were rejected; nothing was written. (An InvalidJob, so one handler covers both.)"""


class InvalidTransition(SupaworkerError):
    """The job's state does not allow the requested action."""


class JobFailed(SupaworkerError):
    """The job ended failed or cancelled."""

    def __init__(self, job_id: int, status: str, error: str | None) -> None:
        super().__init__(f"job {job_id} {status}: {error or 'no error recorded'}")
        self.job_id = job_id
        self.status = status
        self.error = error


class UnrecoverableError(SupaworkerError):
    """Raised by a handler to fail its job at once, without the remaining retries."""


class WaitTimeout(SupaworkerError, TimeoutError):
    """wait_for() gave up: the job had not finished within the timeout (it may still finish later)."""

    def __init__(self, job_id: int, timeout: float, status: str) -> None:
        super().__init__(f"job {job_id} still {status} after waiting {timeout:g}s")
        self.job_id = job_id
        self.status = status
