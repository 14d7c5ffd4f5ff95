"""Waiting for a job's outcome: `wait_for(job_id, timeout)` returns its result or raises its error.

It polls the job's row with a growing interval (starting fast, so short jobs return quickly, and backing
off so a long wait costs little). Polling rather than LISTEN keeps it working behind a transaction pooler,
and adds nothing to the workers' completion path.
"""

from __future__ import annotations

import math
import time
from typing import Any

import psycopg

from .client import _store_for
from .errors import InvalidJob, JobFailed, JobNotFound, WaitTimeout
from .store import Store

POLL_FIRST_SECONDS = 0.02
POLL_MAX_SECONDS = 0.5
POLL_GROWTH = 1.5


def wait_for(
    job_id: int,
    timeout: float | None = None,
    *,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
) -> Any:
    """Blocks until the job finishes; returns its result.

    Raises JobFailed (with `.status` and `.error`) when it ended failed or cancelled, JobNotFound when
    there is no such job, and WaitTimeout (a TimeoutError) when `timeout` seconds pass first; a job being
    retried is still being waited for. `timeout=None` waits for ever.
    """
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout < 0
    ):
        raise InvalidJob(f"timeout must be a number of seconds >= 0 or None, not {timeout!r}")
    if conn is not None and not conn.autocommit:
        # Inside one open transaction the snapshot may never show the worker's commit.
        raise InvalidJob("wait_for needs an autocommit connection (or none): a transaction would never see the result")
    s = _store_for(conn, store)
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = POLL_FIRST_SECONDS
    while True:
        outcome = s.get_job_outcome(job_id, conn)
        if outcome is None:
            raise JobNotFound(f"no job with id {job_id}")
        status, result, error = outcome
        if status == "completed":
            return result
        if status in ("failed", "cancelled"):
            raise JobFailed(job_id, status, error)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(job_id, float(timeout or 0), status)
            interval = min(interval, remaining)
        time.sleep(interval)
        interval = min(interval * POLL_GROWTH, POLL_MAX_SECONDS)
