"""The application API over PostgREST RPC: `create_job` and `create_brief_with_job` with only SUPABASE_URL (or
SUPAWORKER_POSTGREST_URL) and the service-role key, for hosts that reach Supabase over HTTPS only.

Each call is one POST to `/rpc/<function>` of the SQL API (migration 0008), which PostgREST runs as one
transaction: the same checks, the same rows and the same atomicity as the Python API on a database URL. The
client's own checks still run first, so a bad field costs no request; the database's refusal of what only
it can judge (a brief_id that is no brief's, unknown parents) comes back as the same InvalidJob.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from .config import Settings
from .errors import ConfigError, DatabaseUnavailable, InvalidBrief, InvalidJob, MigrationError, SupaworkerError
from .job import JobRecord
from .new_job import NewJob
from .postgrest import TRANSIENT_STATUSES, client_options

REQUEST_TIMEOUT_SECONDS = 30.0
# SQLSTATEs of rejected input: supaworker's own checks (22023), the dependency trigger (23514), and values
# PostgreSQL itself could not read.
INVALID_INPUT_CODES = frozenset({"22023", "23514", "22P02", "22003", "22P05", "22007", "22008"})
_JOB_TIMES = ("run_at", "lease_expires_at", "created_at", "started_at", "completed_at", "unique_until", "progress_at")
_BRIEF_TIMES = ("created_at", "started_at", "updated_at", "completed_at")

_lock = threading.Lock()
_clients: dict[tuple[str, str, str], RpcClient] = {}


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def job_from_document(document: dict[str, Any]) -> JobRecord:
    """A job as the SQL API returns it in JSON, as the JobRecord the Python API returns."""
    row = dict(document)
    for name in _JOB_TIMES:
        if name in row:
            row[name] = _time(row[name])
    if row.get("brief_id"):
        row["brief_id"] = UUID(row["brief_id"])
    return JobRecord.from_row(row)


def brief_row_from_document(document: dict[str, Any]) -> dict[str, Any]:
    """A brief as the SQL API returns it, as a row of briefs_with_status (steps left out)."""
    row = {name: value for name, value in document.items() if name != "steps"}
    row["id"] = UUID(row["id"])
    for name in _BRIEF_TIMES:
        row[name] = _time(row.get(name))
    return row


class RpcClient:
    """The SQL API's functions over PostgREST, authenticated with the service-role key."""

    def __init__(self, rest_url: str, service_key: str, schema: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.schema = schema
        self.client = httpx.Client(**client_options(rest_url, service_key, schema, timeout))

    def close(self) -> None:
        self.client.close()

    def call(self, function: str, args: dict[str, Any], *, invalid: type[InvalidJob] = InvalidJob) -> Any:
        try:
            response = self.client.post(f"/rpc/{function}", json=args)
        except httpx.TransportError as exc:
            raise DatabaseUnavailable(f"PostgREST at {self.rest_url} unreachable: {exc!r}") from exc
        if response.status_code < 300:
            return response.json() if response.content else None
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        code, message = body.get("code"), body.get("message") or response.text[:300]
        where = f"PostgREST {self.rest_url}/rpc/{function}"
        if code in INVALID_INPUT_CODES:
            details = body.get("details") or ""
            field = details.removeprefix("field: ") if details.startswith("field: ") else None
            raise invalid(message, field=field)
        if response.status_code in TRANSIENT_STATUSES:
            raise DatabaseUnavailable(f"{where} answered {response.status_code}: {message}")
        if code in ("PGRST202", "PGRST106"):
            raise MigrationError(
                f"{where}: {message}; run `supaworker migrate`, expose schema {self.schema!r} (Supabase: Project "
                "Settings > API > Exposed schemas) and reload PostgREST's schema cache"
            )
        if response.status_code in (401, 403) or code == "42501":
            raise ConfigError(f"{where} refused the key ({response.status_code} {code}: {message}); use the "
                              "service_role key in SUPABASE_SERVICE_ROLE_KEY")  # fmt: skip
        raise SupaworkerError(f"{where} failed ({response.status_code} {code}): {message}")

    def create_job(self, job: NewJob) -> JobRecord:
        """Enqueues a checked job through the SQL function create_job."""
        return job_from_document(self.call("create_job", job.rpc_arguments()))

    def create_brief_with_job(self, args: dict[str, Any]) -> dict[str, Any]:
        """The SQL function create_brief_with_job: {"brief": ..., "job": ...} as JSON."""
        return self.call("create_brief_with_job", args, invalid=InvalidBrief)


def rpc_client_for(settings: Settings) -> RpcClient:
    """The process-wide RpcClient for these settings (one connection pool per URL, key and schema)."""
    if not settings.rest_url or not settings.supabase_service_role_key:
        raise ConfigError("RPC calls need SUPABASE_URL (or SUPAWORKER_POSTGREST_URL) and SUPABASE_SERVICE_ROLE_KEY")
    key = (settings.rest_url, settings.supabase_service_role_key, settings.schema_name)
    with _lock:
        if key not in _clients:
            _clients[key] = RpcClient(*key)
        return _clients[key]


def close() -> None:
    """Closes the process-wide RPC clients (tests and short scripts)."""
    with _lock:
        for rpc in _clients.values():
            rpc.close()
        _clients.clear()
