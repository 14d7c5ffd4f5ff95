"""What the worker needs from the queue: one small protocol, two implementations.

`supaworker.store.WorkerStore` runs the named queries over psycopg; `supaworker.postgrest.PostgrestWorkerStore`
calls the same SQL functions as PostgREST RPCs, for hosts that only reach Supabase over HTTPS. Both go
through the same fenced SQL functions, so the runner, completer, heartbeat and rescuer are shared and the
guarantees (atomic claim, fencing, retries with backoff, rescue) are the same whichever is used.

A transient failure (database or API unreachable) raises one of `supaworker.retry.TRANSIENT_ERRORS`, which
the worker's loops retry with backoff; anything else is fatal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..job import Job

Reachability = Literal["up", "down", "unreachable"]
# Completions as columns: ids, the attempts they complete, and their results.
Completions = tuple[list[int], list[int], list[Any]]
# A job the rescuer moved: (id, type, attempts, status, dead worker, whether its handler had started).
Rescued = tuple[int, str, int, str, str, bool]


@dataclass(frozen=True)
class ClaimRequest:
    """One claim: up to `limit` jobs of `types` and `queues` (None: any), leased for `lease_seconds`, numbered
    from seq_base + 1 in the worker's claim sequence; the first `start` (None: all) count as started."""

    limit: int
    lease_seconds: float
    types: Sequence[str] | None = None
    queues: Sequence[str] | None = None
    start: int | None = None
    seq_base: int = 0

    def params(self, worker_id: str) -> dict[str, Any]:
        """The arguments of `claim_jobs_v2()` (without their `p_` prefix)."""
        return {
            "seq_base": self.seq_base,
            "worker_id": worker_id,
            "types": list(self.types) if self.types is not None else None,
            "limit": self.limit,
            "lease_seconds": self.lease_seconds,
            "queues": list(self.queues) if self.queues is not None else None,
            "start": self.start,
        }


@dataclass(frozen=True)
class RetryDelays:
    """A failed attempt's job runs again after base * 2^(attempt-1) seconds, at most `cap`, with jitter."""

    base_seconds: float
    cap_seconds: float


class WorkerQueries(Protocol):
    async def open(self) -> None:
        """Connects (waiting for the database) before the worker starts claiming."""

    async def close(self) -> None: ...

    async def claim_jobs(self, worker_id: str, claim: ClaimRequest) -> list[Job]:
        """The jobs claimed, in claim order."""

    async def record_job_starts(self, worker_id: str, through: int) -> None:
        """The worker may start every job up to place `through` of its claim sequence."""

    async def forget_job_starts(self, worker_id: str) -> None: ...

    async def wait_for_jobs(self, worker_id: str, seconds: float) -> None:
        """The worker's claim came back empty: enqueues NOTIFY it for the next `seconds` (a LISTENing worker)."""

    async def stop_waiting_for_jobs(self, worker_id: str) -> None:
        """The worker found work (or stops): enqueues need not NOTIFY for it."""

    async def upstream_results(self, job_id: int) -> list[tuple[int, str, Any, int]]:
        """(id, type, result, depth) of every completed ancestor of a job, nearest last."""

    async def update_job_progress(
        self, worker_id: str, ids: list[int], attempts: list[int], percents: list[float], messages: list[str | None]
    ) -> set[int]:
        """Writes the latest progress of running jobs this worker owns; returns the ids updated."""

    async def complete_jobs(
        self, worker_id: str, ids: list[int], attempts: list[int], results: list[Any]
    ) -> set[int]: ...

    async def write_and_claim_jobs(
        self, worker_id: str, completions: Completions, starts_through: int | None, claim: ClaimRequest
    ) -> tuple[set[int], list[Job]]:
        """complete_jobs() (if any) and record_job_starts() (if not None), then claim_jobs(): in one round
        trip where the transport allows. Returns the ids completed and the jobs claimed."""

    async def fail_job(
        self, worker_id: str, job_id: int, attempt: int, error: str, *, delays: RetryDelays, retryable: bool = True
    ) -> str | None: ...

    async def heartbeat_jobs(self, worker_id: str, ids: list[int], lease_seconds: float) -> set[int]: ...

    async def renew_directly(
        self, worker_id: str, ids: list[int], lease_seconds: float, timeout: float
    ) -> tuple[Reachability, set[int]]:
        """heartbeat_jobs() over a path of its own within `timeout`, never raising: ("up", owned ids), or
        ("down", ...) when the server said it is not serving, or ("unreachable", ...) when nothing answered."""

    async def release_jobs(self, worker_id: str, ids: list[int], attempts: list[int]) -> set[int]: ...

    async def rescue_expired_jobs(
        self,
        *,
        worker_id: str | None,
        held: list[int] | None,
        limit: int,
        delays: RetryDelays,
        grace_seconds: float,
    ) -> list[Rescued]:
        """The jobs moved, up to `limit`, from workers whose leases ran out more than `grace_seconds` ago, and
        the expired jobs of `worker_id` itself that are not in `held` (None: none of its own)."""

    async def ping(self, timeout: float) -> None: ...
