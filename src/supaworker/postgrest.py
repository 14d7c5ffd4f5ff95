"""The worker's queries as PostgREST RPC calls: for hosts that reach Supabase over HTTPS only.

Each call is one POST to `/rpc/<function>`, which PostgREST runs as one transaction under the role of the
service-role JWT. The functions are the same fenced SQL functions the Postgres worker's queries call, so a
claim is still one `UPDATE ... FOR UPDATE SKIP LOCKED` and a late completion is still rejected by owner and
attempt. The worker runner, completer, heartbeat and rescuer are the Postgres worker's own
(`supaworker.worker.protocol.WorkerQueries` is the seam).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import httpx
import psycopg

from .config import Settings
from .errors import ConfigError, DatabaseUnavailable, MigrationError, SupaworkerError
from .job import Job
from .loaders import OutOfRangeTime, utf8_json_loads
from .worker.protocol import ClaimRequest, Completions, Rescued, RetryDelays

log = logging.getLogger("supaworker.postgrest")

REQUEST_TIMEOUT_SECONDS = 30.0
OPEN_TIMEOUT_SECONDS = 30.0
MAX_CONNECTIONS = 8
# PostgREST answers these while it cannot reach the database or reload its schema cache: retry.
TRANSIENT_STATUSES = frozenset({502, 503, 504, 520, 521, 522, 523, 524})


class PostgrestError(SupaworkerError):
    """PostgREST refused a call for a reason retrying will not fix."""


def transient_sqlstate(code: object) -> bool:
    """Whether a PostgreSQL error PostgREST passed on (as a 500, mostly) is one the Postgres worker retries:
    psycopg's OperationalError classes (a statement or lock timeout, a deadlock, a serialization failure, an
    administrator's shutdown). Over HTTP they are no more final than over a direct connection."""
    if not isinstance(code, str) or len(code) != 5 or code.startswith("PGRST"):
        return False
    try:
        return issubclass(psycopg.errors.lookup(code), psycopg.OperationalError)
    except KeyError:
        return False


def jwt_role(key: str) -> str | None:
    """The `role` claim of a Supabase JWT key, read without verifying it (only to explain mistakes)."""
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    role = payload.get("role") if isinstance(payload, dict) else None
    return role if isinstance(role, str) else None


def check_service_key(key: str | None) -> str:
    """Returns the key, or raises ConfigError when it is missing or is plainly not a service-role key."""
    if not key:
        raise ConfigError("the HTTP worker needs SUPABASE_SERVICE_ROLE_KEY (Project Settings > API > service_role)")
    role = jwt_role(key)
    if role is not None and role != "service_role":
        raise ConfigError(
            f"SUPABASE_SERVICE_ROLE_KEY holds a key for role {role!r}; workers need the service_role key "
            "(the anon key cannot call supaworker's functions, by design)"
        )
    return key


def client_options(rest_url: str, service_key: str, schema: str, timeout: float) -> dict[str, Any]:
    """How an httpx client reaches PostgREST at `rest_url` as the service role, in `schema`."""
    key = check_service_key(service_key)
    headers = {
        # Supabase's gateway wants `apikey`; PostgREST reads the role from the bearer JWT.
        "apikey": key,
        "Authorization": f"Bearer {key}",
        # A schema other than `public` is chosen per request (it must be in the exposed schemas).
        "Content-Profile": schema,
        "Accept-Profile": schema,
    }
    return {"base_url": rest_url.rstrip("/"), "headers": headers, "timeout": timeout}


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # 'infinity', year 200000: stored by plain SQL, beyond what Python reads
        return OutOfRangeTime(value)


# What job_from_row reads of a claimed row. The payload comes as its JSON text, read job by job: a payload
# Python cannot read (loaders.py) then fails its own job instead of the whole response, and the claim with it.
CLAIMED_COLUMNS = (
    "id,type,queue,priority,payload:payload::text,attempts,max_attempts,timeout_seconds,brief_id,run_at,"
    "created_at,started_at,handler_started,claim_seq,handed_back"
)


def job_from_row(row: dict[str, Any], worker_id: str) -> Job:
    """A claimed jobs row, as PostgREST returns it in JSON, as the Job a handler receives."""
    brief = row.get("brief_id")
    return Job(
        id=int(row["id"]),
        type=row["type"],
        queue=row["queue"],
        priority=int(row["priority"]),
        payload=utf8_json_loads(row["payload"]),
        attempt=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        timeout_seconds=row.get("timeout_seconds"),
        brief_id=UUID(brief) if brief else None,
        run_at=_time(row["run_at"]),  # type: ignore[arg-type]
        created_at=_time(row["created_at"]),  # type: ignore[arg-type]
        started_at=_time(row["started_at"]),  # type: ignore[arg-type]
        worker_id=worker_id,
        _start_recorded=bool(row.get("handler_started", True)),
        _claim_seq=int(row.get("claim_seq") or 0),
        _record_start_first=bool(row.get("handed_back")),
    )


class PostgrestWorkerStore:
    """`WorkerQueries` over PostgREST (Supabase's `/rest/v1`), authenticated with the service-role key."""

    def __init__(self, rest_url: str, service_key: str, schema: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.schema = schema
        options = client_options(rest_url, service_key, schema, timeout)
        self.client = httpx.AsyncClient(**options, limits=httpx.Limits(max_connections=MAX_CONNECTIONS))

    async def rpc(self, function: str, args: dict[str, Any], select: str | None = None) -> Any:
        """Calls `function`; `select`: the columns of the rows it returns to send back (PostgREST's select)."""
        try:
            params = {"select": select} if select else None
            response = await self.client.post(f"/rpc/{function}", json=args, params=params)
        except httpx.TransportError as exc:
            raise DatabaseUnavailable(f"PostgREST at {self.rest_url} unreachable: {exc!r}") from exc
        if response.status_code < 300:
            return response.json() if response.content else None
        raise self._error(function, response)

    def _error(self, function: str, response: httpx.Response) -> Exception:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = body.get("code") if isinstance(body, dict) else None
        message = (body.get("message") if isinstance(body, dict) else None) or response.text[:300]
        where = f"PostgREST {self.rest_url}/rpc/{function}"
        if response.status_code in TRANSIENT_STATUSES or transient_sqlstate(code):
            status = f"{response.status_code} {code}" if code else str(response.status_code)
            return DatabaseUnavailable(f"{where} answered {status}: {message}")
        if code == "PGRST106":
            return ConfigError(
                f"{where}: schema {self.schema!r} is not exposed ({message}); add it to the exposed schemas "
                "(Supabase: Project Settings > API > Exposed schemas; PostgREST: db-schemas)"
            )
        if code == "PGRST202":
            return MigrationError(
                f"{where}: function not found ({message}); run `supaworker migrate` and make sure PostgREST "
                "reloaded its schema cache (NOTIFY pgrst, 'reload schema')"
            )
        if code in ("PGRST301", "PGRST302"):
            return ConfigError(
                f"{where} refused SUPABASE_SERVICE_ROLE_KEY ({response.status_code} {code}: {message}): the key "
                "expired, or was replaced (a new JWT secret); set it to the project's current service_role key"
            )
        if response.status_code in (401, 403) or code == "42501":
            return ConfigError(
                f"{where} refused the key ({response.status_code} {code}: {message}); use the service_role key "
                "in SUPABASE_SERVICE_ROLE_KEY and check the schema was migrated with service_role present"
            )
        return PostgrestError(f"{where} failed ({response.status_code} {code}): {message}")

    # -- WorkerQueries --------------------------------------------------------------------------------------
    async def open(self) -> None:
        # Fails fast on a wrong key or a missing schema; waits out an API or database still starting.
        deadline = time.monotonic() + OPEN_TIMEOUT_SECONDS
        delay = 0.2
        while True:
            try:
                await self.ping(REQUEST_TIMEOUT_SECONDS)
                return
            except DatabaseUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("PostgREST not answering yet, retrying", extra={"error": str(exc), "retry_in": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        await self.client.aclose()

    async def claim_jobs(self, worker_id: str, claim: ClaimRequest) -> list[Job]:
        rows = await self.rpc(
            "claim_jobs_v2",
            {f"p_{name}": value for name, value in claim.params(worker_id).items()},
            select=CLAIMED_COLUMNS,
        )
        jobs = sorted((job_from_row(row, worker_id) for row in rows or []), key=lambda job: job._claim_seq)
        if jobs:
            # The rows do not say which jobs have parents whose results they need: one more call per batch.
            try:
                with_parents = set(await self.rpc("jobs_with_parents", {"p_ids": [job.id for job in jobs]}) or [])
            except DatabaseUnavailable as exc:
                # The jobs are this worker's now, and nothing rescues a live worker's own jobs: raising here left
                # them `processing` for good. Each asks for its parents' results itself (retried, and empty for
                # a job without parents) before it runs.
                log.warning("looking for the jobs' parents failed, each job looks itself", extra={"error": str(exc)})
                with_parents = {job.id for job in jobs}
            for job in jobs:
                job.has_parents = job.id in with_parents
        return jobs

    async def record_job_starts(self, worker_id: str, through: int) -> None:
        await self.rpc("record_job_starts_alone", {"p_worker_id": worker_id, "p_through": through})

    async def forget_job_starts(self, worker_id: str) -> None:
        await self.rpc("forget_job_starts", {"p_worker_id": worker_id})

    async def wait_for_jobs(self, worker_id: str, seconds: float) -> None:
        await self.rpc("wait_for_jobs", {"p_worker_id": worker_id, "p_seconds": seconds})

    async def stop_waiting_for_jobs(self, worker_id: str) -> None:
        await self.rpc("stop_waiting_for_jobs", {"p_worker_id": worker_id})

    async def upstream_results(self, job_id: int) -> list[tuple[int, str, Any, int]]:
        rows = await self.rpc("upstream_results", {"p_job_id": job_id})
        return [(row["id"], row["type"], row["result"], row["depth"]) for row in rows or []]

    async def update_job_progress(
        self, worker_id: str, ids: list[int], attempts: list[int], percents: list[float], messages: list[str | None]
    ) -> set[int]:
        args = {"p_worker_id": worker_id, "p_ids": ids, "p_attempts": attempts, "p_percents": percents}
        rows = await self.rpc("update_job_progress", {**args, "p_messages": messages})
        return {int(row) for row in rows or []}

    async def complete_jobs(self, worker_id: str, ids: list[int], attempts: list[int], results: list[Any]) -> set[int]:
        done = await self.rpc(
            "complete_jobs",
            {"p_worker_id": worker_id, "p_ids": ids, "p_attempts": attempts, "p_results": results},
        )
        return {int(i) for i in done or []}

    async def write_and_claim_jobs(
        self, worker_id: str, completions: Completions, starts_through: int | None, claim: ClaimRequest
    ) -> tuple[set[int], list[Job]]:
        # Separate requests over HTTP; a write is never retried because the claim after it failed.
        done = await self.complete_jobs(worker_id, *completions) if completions[0] else set()
        if starts_through is not None:
            await self.record_job_starts(worker_id, starts_through)
        try:
            return done, await self.claim_jobs(worker_id, claim)
        except DatabaseUnavailable as exc:
            log.warning("claiming failed, retrying", extra={"error": str(exc)})
            return done, []

    async def fail_job(
        self, worker_id: str, job_id: int, attempt: int, error: str, *, delays: RetryDelays, retryable: bool = True
    ) -> str | None:
        status = await self.rpc(
            "fail_job",
            {
                "p_job_id": job_id,
                "p_worker_id": worker_id,
                "p_error": error,
                "p_attempt": attempt,
                "p_retry_base_seconds": delays.base_seconds,
                "p_retry_cap_seconds": delays.cap_seconds,
                "p_retryable": retryable,
            },
        )
        return str(status) if status is not None else None

    async def heartbeat_jobs(self, worker_id: str, ids: list[int], lease_seconds: float) -> set[int]:
        owned = await self.rpc(
            "heartbeat_jobs", {"p_worker_id": worker_id, "p_ids": ids, "p_lease_seconds": lease_seconds}
        )
        return {int(i) for i in owned or []}

    async def renew_directly(
        self, worker_id: str, ids: list[int], lease_seconds: float, timeout: float
    ) -> tuple[Literal["up", "down", "unreachable"], set[int]]:
        # Over HTTP a stopped database and a cut link look alike: anything but an answer is "unreachable".
        try:
            async with asyncio.timeout(timeout):
                return "up", await self.heartbeat_jobs(worker_id, ids, lease_seconds)
        except (TimeoutError, DatabaseUnavailable, PostgrestError):
            return "unreachable", set()

    async def release_jobs(self, worker_id: str, ids: list[int], attempts: list[int]) -> set[int]:
        released = await self.rpc("release_jobs", {"p_worker_id": worker_id, "p_ids": ids, "p_attempts": attempts})
        return {int(i) for i in released or []}

    async def rescue_expired_jobs(
        self,
        *,
        worker_id: str | None,
        held: list[int] | None,
        limit: int,
        delays: RetryDelays,
        grace_seconds: float,
    ) -> list[Rescued]:
        rows = await self.rpc(
            "rescue_expired_jobs_v3",
            {
                "p_worker_id": worker_id,
                "p_held": held,
                "p_limit": limit,
                "p_retry_base_seconds": delays.base_seconds,
                "p_retry_cap_seconds": delays.cap_seconds,
                "p_grace_seconds": grace_seconds,
            },
        )
        return [
            (int(r["id"]), r["type"], int(r["attempts"]), r["status"], r["worker_id"], bool(r["started"]))
            for r in rows or []
        ]

    async def ping(self, timeout: float) -> None:
        # A heartbeat of no jobs: proves the key may call the worker functions, and changes nothing.
        try:
            response = await self.client.post(
                "/rpc/heartbeat_jobs",
                json={"p_worker_id": "supaworker-ping", "p_ids": [], "p_lease_seconds": 1},
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise DatabaseUnavailable(f"PostgREST at {self.rest_url} unreachable: {exc!r}") from exc
        if response.status_code >= 300:
            raise self._error("heartbeat_jobs", response)


def worker_store_from_settings(settings: Settings) -> PostgrestWorkerStore:
    """The HTTP worker's store from SUPABASE_URL (or SUPAWORKER_POSTGREST_URL) and the service-role key."""
    if not settings.rest_url or not settings.supabase_service_role_key:
        raise ConfigError(
            "the HTTP worker needs SUPABASE_URL (or SUPAWORKER_POSTGREST_URL) and SUPABASE_SERVICE_ROLE_KEY"
        )
    return PostgrestWorkerStore(settings.rest_url, settings.supabase_service_role_key, settings.schema_name)
