"""One attempt of one job, from its slot's point of view: record the start, give it its parents' results, run
the handler under the watchdog, and record the outcome (completions buffered, failures written at once)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from ..job import Job
from ..retry import retry_transient
from .executor import Executor, Outcome
from .options import WorkerOptions
from .prefetch import Prefetch
from .protocol import WorkerQueries
from .records import Recorders
from .slots import RunningJob
from .watchdog import Watchdog

log = logging.getLogger("supaworker.worker")


@dataclass(eq=False)
class AttemptRunner:
    """Runs one attempt of a claimed job in its slot: its start record, its parents' results, the handler
    under its timeout; a success goes to the completer, a failure is recorded here (counted in `failed` or
    `retried`)."""

    store: WorkerQueries
    worker_id: str
    options: WorkerOptions
    executor: Executor
    _: KW_ONLY
    records: Recorders
    watchdog: Watchdog
    prefetch: Prefetch
    on_trouble: Callable[[], None]
    failed: int = field(default=0, init=False)
    retried: int = field(default=0, init=False)

    async def run(self, job: Job, running: RunningJob) -> None:
        job._progress_sink = self.records.progress.report
        await self.records.starts.record(job)
        running.started = True
        log.debug("job started", extra={"job_id": job.id, "type": job.type, "attempt": job.attempt})
        if job.has_parents:
            await self._load_upstream(job)
        timeout = self.executor.timeout_for(job)
        began = asyncio.get_running_loop().time()
        self.watchdog.arm(running, began + timeout)
        try:
            outcome = await self.executor.execute(job)
        except asyncio.CancelledError:
            if not (running.timed_out or running.fenced):
                raise  # a stop, a cancel_job() or a lost lease
        finally:
            running.deadline = math.inf  # the handler is done: its deadline must not cut the outcome's write short
        if running.fenced:
            # Abandoned while the database was out of reach; recorded (and retried) once it answers again.
            outcome = Outcome(
                False,
                asyncio.get_running_loop().time() - began,
                error=f"worker {self.worker_id} lost the database for most of a lease and stopped the job",
            )
        elif running.timed_out:
            # The watchdog's own cancellation (even if the handler swallowed it): recorded as a failed attempt.
            outcome = Outcome(False, timeout, error=f"TimeoutError: job timed out after {timeout:g}s")
        self.prefetch.observe(outcome.duration_seconds)
        if outcome.ok:
            self.records.completions.add(job, outcome.result, outcome.duration_seconds)
        else:
            await self._record_failure(
                job, outcome.error or "unknown error", outcome.retryable, outcome.duration_seconds
            )

    async def _load_upstream(self, job: Job) -> None:
        """Gives a dependent job the results of the steps before it (retrying while the database is away;
        the lease stays alive meanwhile, and a stop cancels this task and releases the job)."""
        rows = await retry_transient(
            lambda: self.store.upstream_results(job.id),
            what="loading upstream results",
            log=log,
            extra={"job_id": job.id},
            on_error=self.on_trouble,
        )
        for parent_id, parent_type, result, _depth in rows:  # farthest first: the nearest of a type wins
            job.upstream[parent_type] = result
            job.upstream_by_id[parent_id] = result

    async def _record_failure(self, job: Job, error: str, retryable: bool, duration: float) -> None:
        fields = {
            "job_id": job.id,
            "type": job.type,
            "attempt": job.attempt,
            "duration_ms": round(duration * 1000, 1),
        }
        status = await retry_transient(
            lambda: self.store.fail_job(
                self.worker_id,
                job.id,
                job.attempt,
                error,
                delays=self.options.retry_delays,
                retryable=retryable,
            ),
            what="recording a failure",
            log=log,
            extra=fields,
            on_error=self.on_trouble,
        )
        first_line = error.splitlines()[0] if error else ""
        if status == "pending":
            self.retried += 1
            log.warning("job failed, will retry", extra={**fields, "error": first_line})
        elif status == "failed":
            self.failed += 1
            log.error("job failed permanently", extra={**fields, "error": first_line})
        else:
            log.warning("job failure rejected: this worker no longer owns the attempt", extra=fields)
