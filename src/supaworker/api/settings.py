"""Settings of the REST API and dashboard, from the environment and `.env.local`.

Writes always need `Authorization: Bearer <key>` with the Supabase service role key or a configured API
key. Reads follow SUPAWORKER_API_PUBLIC_READS: open or closed when set, and when unset open only while the
server listens on loopback (so `curl localhost:3000/api/jobs?action=stats` works as it did).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

API_HOST = "127.0.0.1"
API_PORT = 3000
MAX_BODY_BYTES = 1_048_576
COUNT_CAP = 10_000  # the dashboard counts at most this many jobs per status (bounded scans)


class ApiSettings(BaseSettings):
    """Everything the API and dashboard read, with the defaults as named constants above."""

    model_config = SettingsConfigDict(
        env_file=(".env", ".env.local"), env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    host: str = Field(API_HOST, validation_alias=AliasChoices("SUPAWORKER_API_HOST", "API_HOST"))
    port: int = Field(API_PORT, ge=0, le=65535, validation_alias=AliasChoices("SUPAWORKER_API_PORT", "PORT"))
    service_role_key: str | None = Field(None, validation_alias=AliasChoices("SUPABASE_SERVICE_ROLE_KEY"))
    # Comma-separated, so keys can be rotated: add the new one, move clients over, drop the old one.
    api_keys: str | None = Field(None, validation_alias=AliasChoices("SUPAWORKER_API_KEYS", "SUPAWORKER_API_KEY"))
    public_reads: bool | None = Field(None, validation_alias=AliasChoices("SUPAWORKER_API_PUBLIC_READS"))
    # Verifies end users' Supabase session JWTs (HS256), for the routes a signed-in user may read.
    jwt_secret: str | None = Field(None, validation_alias=AliasChoices("SUPABASE_JWT_SECRET"))
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1, validation_alias=AliasChoices("SUPAWORKER_API_MAX_BODY_BYTES"))
    count_cap: int = Field(COUNT_CAP, ge=100, validation_alias=AliasChoices("SUPAWORKER_DASHBOARD_COUNT_CAP"))
    # Where the built-in steps write their files: the console previews only files inside it.
    artifacts_dir: str = Field("artifacts", validation_alias=AliasChoices("SUPAWORKER_ARTIFACTS_DIR", "ARTIFACTS_DIR"))
    # The workers' lease: the console dates a worker's last renewal from its newest lease.
    lease_seconds: float = Field(30.0, gt=0, validation_alias=AliasChoices("SUPAWORKER_LEASE_SECONDS"))

    @field_validator("service_role_key", "api_keys", "jwt_secret")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @property
    def keys(self) -> list[str]:
        """Every key that authorises a request."""
        found = [k.strip() for k in (self.api_keys or "").split(",") if k.strip()]
        if self.service_role_key:
            found.append(self.service_role_key.strip())
        return found

    @property
    def reads_are_public(self) -> bool:
        if self.public_reads is not None:
            return self.public_reads
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()
