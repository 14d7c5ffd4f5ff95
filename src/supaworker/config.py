"""Settings from the environment and `.env.local`.

Names follow the system supaworker replaces (`DATABASE_URL`, `LOG_LEVEL`, `ENABLE_HEALTH_CHECK`,
`HEALTH_CHECK_PORT`); the worker's knobs also accept a `SUPAWORKER_` prefix.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .sql import schema_name_problem

DEFAULT_SCHEMA = "supaworker"
MAX_CONCURRENT_JOBS = 10
POLL_INTERVAL_MS = 1000
JOB_TIMEOUT_MS = 300_000
LEASE_SECONDS = 30.0
RESCUE_INTERVAL_SECONDS = 5.0
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 3600.0
SHUTDOWN_GRACE_SECONDS = 30.0
HEALTH_CHECK_PORT = 3001
LOG_LEVELS = ("debug", "info", "warning", "error")

# The settings that take one of a few words (any case), by field: the variable that sets it and the words.
_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "log_level": ("LOG_LEVEL", LOG_LEVELS),
    "log_format": ("LOG_FORMAT", ("text", "json")),
    "pooler_mode": ("SUPAWORKER_POOLER_MODE", ("auto", "transaction", "session", "none")),
    "transport": ("SUPAWORKER_TRANSPORT", ("auto", "postgres", "http")),
}

# Retention of finished jobs before the leader's pruner deletes them (River's cleaner defaults).
PRUNE_COMPLETED_AFTER_SECONDS = 24 * 3600.0
PRUNE_CANCELLED_AFTER_SECONDS = 24 * 3600.0
PRUNE_FAILED_AFTER_SECONDS = 7 * 24 * 3600.0
# With history on: a month of it, in a partition a day.
HISTORY_RETENTION_SECONDS = 30 * 24 * 3600.0
HISTORY_PARTITION_SECONDS = 24 * 3600.0


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything configurable, with the defaults as named constants above."""

    model_config = SettingsConfigDict(
        env_file=(".env", ".env.local"), env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL", "SUPABASE_DB_URL"))
    # A streaming replica of that database: the API's and dashboard's reads go there, writes and LISTEN never do.
    read_url: str | None = Field(None, validation_alias=_env("SUPAWORKER_READ_URL"))
    schema_name: str = Field(DEFAULT_SCHEMA, validation_alias=_env("SUPAWORKER_SCHEMA"))
    log_level: str = Field("info", validation_alias=_env("LOG_LEVEL"))
    log_format: str = Field("text", validation_alias=_env("LOG_FORMAT", "SUPAWORKER_LOG_FORMAT"))
    enable_health_check: bool = Field(True, validation_alias=_env("ENABLE_HEALTH_CHECK"))
    health_check_port: int = Field(HEALTH_CHECK_PORT, ge=0, le=65535, validation_alias=_env("HEALTH_CHECK_PORT"))
    health_check_host: str = Field("0.0.0.0", validation_alias=_env("HEALTH_CHECK_HOST"))
    max_concurrent_jobs: int = Field(
        MAX_CONCURRENT_JOBS,
        ge=1,
        validation_alias=_env("WORKER_MAX_CONCURRENT_JOBS", "SUPAWORKER_MAX_CONCURRENT_JOBS", "MAX_CONCURRENT_JOBS"),
    )
    poll_interval_ms: int = Field(
        POLL_INTERVAL_MS,
        ge=10,
        validation_alias=_env("WORKER_POLL_INTERVAL_MS", "SUPAWORKER_POLL_INTERVAL_MS", "POLL_INTERVAL_MS"),
    )
    job_timeout_ms: int = Field(
        JOB_TIMEOUT_MS,
        ge=1,
        validation_alias=_env("WORKER_JOB_TIMEOUT_MS", "SUPAWORKER_JOB_TIMEOUT_MS", "JOB_TIMEOUT_MS"),
    )
    lease_seconds: float = Field(LEASE_SECONDS, gt=0, validation_alias=_env("SUPAWORKER_LEASE_SECONDS"))
    rescue_interval_seconds: float = Field(
        RESCUE_INTERVAL_SECONDS, gt=0, validation_alias=_env("SUPAWORKER_RESCUE_INTERVAL_SECONDS")
    )
    retry_base_seconds: float = Field(RETRY_BASE_SECONDS, ge=0, validation_alias=_env("SUPAWORKER_RETRY_BASE_SECONDS"))
    retry_cap_seconds: float = Field(RETRY_CAP_SECONDS, ge=0, validation_alias=_env("SUPAWORKER_RETRY_CAP_SECONDS"))
    shutdown_grace_seconds: float = Field(
        SHUTDOWN_GRACE_SECONDS, ge=0, validation_alias=_env("SUPAWORKER_SHUTDOWN_GRACE_SECONDS")
    )
    # auto: detect a transaction pooler (server port differs from the one connected to); or force it.
    pooler_mode: str = Field("auto", validation_alias=_env("SUPAWORKER_POOLER_MODE"))
    embedded_data_dir: str | None = Field(None, validation_alias=_env("SUPAWORKER_EMBEDDED_DATA_DIR"))
    artifacts_dir: str = Field("artifacts", validation_alias=_env("SUPAWORKER_ARTIFACTS_DIR", "ARTIFACTS_DIR"))
    # Maintenance (leader election, periodic jobs, pruning) runs in every worker unless turned off here.
    maintenance_enabled: bool = Field(True, validation_alias=_env("SUPAWORKER_MAINTENANCE"))
    # Seconds a finished job is kept; "never" (or "none") keeps that status for ever.
    prune_completed_after_seconds: float | None = Field(
        PRUNE_COMPLETED_AFTER_SECONDS, ge=0, validation_alias=_env("SUPAWORKER_PRUNE_COMPLETED_AFTER_SECONDS")
    )
    prune_failed_after_seconds: float | None = Field(
        PRUNE_FAILED_AFTER_SECONDS, ge=0, validation_alias=_env("SUPAWORKER_PRUNE_FAILED_AFTER_SECONDS")
    )
    prune_cancelled_after_seconds: float | None = Field(
        PRUNE_CANCELLED_AFTER_SECONDS, ge=0, validation_alias=_env("SUPAWORKER_PRUNE_CANCELLED_AFTER_SECONDS")
    )

    # Finished jobs move to job_history (migration 0019) this many seconds after they finish; unset: history is
    # off and the prune settings above delete them instead. History is dropped a whole partition at a time.
    history_after_seconds: float | None = Field(None, ge=0, validation_alias=_env("SUPAWORKER_HISTORY_AFTER_SECONDS"))
    history_retention_seconds: float = Field(
        HISTORY_RETENTION_SECONDS, gt=0, validation_alias=_env("SUPAWORKER_HISTORY_RETENTION_SECONDS")
    )
    history_partition_seconds: float = Field(
        HISTORY_PARTITION_SECONDS, ge=1, validation_alias=_env("SUPAWORKER_HISTORY_PARTITION_SECONDS")
    )

    # -- Supabase -------------------------------------------------------------------------------------------
    # The project's API: used by the HTTP worker when there is no DATABASE_URL (hosts without Postgres access).
    supabase_url: str | None = Field(None, validation_alias=_env("SUPABASE_URL", "NEXT_PUBLIC_SUPABASE_URL"))
    supabase_service_role_key: str | None = Field(
        None, validation_alias=_env("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SERVICE_KEY")
    )
    # Read so that a copied .env.local is accepted; never used to run jobs (anon cannot call the functions).
    supabase_anon_key: str | None = Field(
        None, validation_alias=_env("NEXT_PUBLIC_SUPABASE_ANON_KEY", "SUPABASE_ANON_KEY")
    )
    # PostgREST's own address when it is not at SUPABASE_URL/rest/v1 (self-hosted PostgREST).
    postgrest_url: str | None = Field(None, validation_alias=_env("SUPAWORKER_POSTGREST_URL"))
    # auto: Postgres when DATABASE_URL is set, else HTTP when SUPABASE_URL and the service key are.
    transport: str = Field("auto", validation_alias=_env("SUPAWORKER_TRANSPORT"))

    @field_validator(*_CHOICES, mode="before")
    @classmethod
    def _check_choice(cls, value: str, info: ValidationInfo) -> str:
        variable, choices = _CHOICES[info.field_name or ""]
        choice = str(value).strip().lower()
        choice = "warning" if choice == "warn" and variable == "LOG_LEVEL" else choice
        if choice not in choices:
            raise ValueError(f"{variable} must be one of {', '.join(choices)}, not {value!r}")
        return choice

    @field_validator("read_url")
    @classmethod
    def _blank_read_url(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @field_validator("supabase_url", "postgrest_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"SUPABASE_URL and SUPAWORKER_POSTGREST_URL must start with https://, not {value!r}")
        return url

    @field_validator("schema_name")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        why = schema_name_problem(value)
        if why:
            raise ValueError(f"SUPAWORKER_SCHEMA {value!r} cannot hold supaworker: {why}")
        return value

    @field_validator(
        "prune_completed_after_seconds", "prune_failed_after_seconds", "prune_cancelled_after_seconds", mode="before"
    )
    @classmethod
    def _check_retention(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("never", "none"):
            return None
        return value

    @property
    def poll_interval_seconds(self) -> float:
        return self.poll_interval_ms / 1000

    @property
    def job_timeout_seconds(self) -> float:
        return self.job_timeout_ms / 1000

    @property
    def rest_url(self) -> str | None:
        """Where PostgREST answers: SUPAWORKER_POSTGREST_URL, else Supabase's `SUPABASE_URL/rest/v1`."""
        if self.postgrest_url:
            return self.postgrest_url
        return f"{self.supabase_url}/rest/v1" if self.supabase_url else None

    @property
    def uses_http(self) -> bool:
        """Whether the worker goes through PostgREST rather than connecting to Postgres."""
        if self.transport != "auto":
            return self.transport == "http"
        return self.database_url is None and bool(self.rest_url and self.supabase_service_role_key)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
