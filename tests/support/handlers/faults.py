"""Handlers for the fault and pooler tests (`--import tests.support.handlers.faults`).

`effect` records every execution in `public.test_effects` on the database named by SW_EFFECTS_URL, so a
test can count how often each job really ran, not just how it ended. Its payload may ask it to sleep
(`sleep` seconds) or to fail its first `fail_attempts` attempts. `tracked` and `suicide` also record in
`public.test_starts` that their handler began, so a test can tell which jobs a crash may charge.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time

import psycopg

import supaworker
from supaworker import Job

_local = threading.local()

EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS public.test_effects (
  job_id bigint NOT NULL,
  attempt integer NOT NULL,
  pid integer NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


STARTS_TABLE = """
CREATE TABLE IF NOT EXISTS public.test_starts (
  job_id bigint NOT NULL,
  attempt integer NOT NULL,
  pid integer NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def _conn() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(os.environ["SW_EFFECTS_URL"], autocommit=True, prepare_threshold=None)
        _local.conn = conn
    return conn


def _record(job: Job, table: str = "test_effects") -> None:
    # The side effect must survive database faults too: retry until it is written.
    for _ in range(600):
        try:
            _conn().execute(
                f"INSERT INTO public.{table} (job_id, attempt, pid) VALUES (%s, %s, %s)",
                (job.id, job.attempt, os.getpid()),
            )
            return
        except psycopg.OperationalError:
            _local.conn = None
            time.sleep(0.1)
    raise RuntimeError("could not record the side effect")


@supaworker.handler("effect")
def effect(job: Job) -> dict[str, int]:
    payload = job.payload or {}
    if payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    if job.attempt <= int(payload.get("fail_attempts", 0)):
        raise RuntimeError(f"planned failure of attempt {job.attempt}")
    _record(job)
    return {"pid": os.getpid(), "attempt": job.attempt}


@supaworker.handler("noop", inline=True)
def noop(job: Job) -> None:
    """No side effect: for throughput figures and for runs where the database refuses new connections."""
    return None


@supaworker.handler("stall", inline=True)
def stall(job: Job) -> dict[str, int]:
    """Blocks the worker's event loop while it sleeps: a process frozen in it resumes straight into
    recording its outcome, before its heartbeat can tell it the job was taken away."""
    time.sleep(float((job.payload or {}).get("sleep", 1)))
    _record(job)
    return {"pid": os.getpid(), "attempt": job.attempt}


@supaworker.handler("tracked")
def tracked(job: Job) -> dict[str, int]:
    """Records that it began, sleeps `sleep` seconds (default 0), then records its effect."""
    _record(job, "test_starts")
    time.sleep(float((job.payload or {}).get("sleep", 0)))
    _record(job)
    return {"pid": os.getpid(), "attempt": job.attempt}


@supaworker.handler("slow_async")
async def slow_async(job: Job) -> dict[str, int]:
    """An async job that records its start, sleeps `sleep` seconds (cancellable), then its effect."""
    await asyncio.to_thread(_record, job, "test_starts")
    await asyncio.sleep(float((job.payload or {}).get("sleep", 1)))
    await asyncio.to_thread(_record, job)
    return {"pid": os.getpid(), "attempt": job.attempt}


@supaworker.handler("suicide")
def suicide(job: Job) -> None:
    """A poison job: records that it began, then (after `sleep` seconds, default 0.3, so that the jobs
    running beside it have surely begun) kills its own worker process."""
    _record(job, "test_starts")
    time.sleep(float((job.payload or {}).get("sleep", 0.3)))
    os.kill(os.getpid(), signal.SIGKILL)


@supaworker.handler("jitter")
async def jitter(job: Job) -> None:
    """Finishes after 0-3 ms at random, so jobs complete in another order than they were claimed in."""
    await asyncio.sleep(random.random() * 0.003)


@supaworker.handler("echo_upstream")
def echo_upstream(job: Job) -> dict[str, object]:
    """Returns its payload with the results of the jobs before it (a pipeline step's view of its parents)."""
    return {"payload": job.payload, "upstream": {str(k): v for k, v in job.upstream_by_id.items()}}


@supaworker.handler("reports_progress")
def reports_progress(job: Job) -> str:
    """Reports progress, then stays running long enough for the report to be written."""
    job.progress(40, "almost there")
    time.sleep(0.8)
    return "done"
