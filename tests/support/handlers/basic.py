"""Handlers the acceptance tests load into real worker processes with `--import tests.support.handlers.basic`.

Each run appends `job_id attempt worker_id` to $SIDE_EFFECT_FILE: an append of one short line is atomic, so
the file counts executions across processes, including those whose completion never reached the database.
"""

from __future__ import annotations

import asyncio
import os
import time

import supaworker

_fd: int | None = None


def record(job: supaworker.Job) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["SIDE_EFFECT_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{job.id} {job.attempt} {job.worker_id}\n".encode())


@supaworker.handler("record")
async def record_async(job: supaworker.Job) -> dict[str, int]:
    record(job)
    delay = job.payload.get("sleep") if isinstance(job.payload, dict) else None
    if delay:
        await asyncio.sleep(delay)
    return {"id": job.id}


@supaworker.handler("record_sync")
def record_sync(job: supaworker.Job) -> dict[str, int]:
    record(job)
    time.sleep(job.payload.get("sleep", 0))
    return {"id": job.id}


@supaworker.handler("flaky")
def flaky(job: supaworker.Job) -> str:
    record(job)
    if job.attempt < job.payload.get("succeed_on", 99):
        raise RuntimeError(f"flaky attempt {job.attempt}")
    return "recovered"


@supaworker.handler("crash")
def crash(job: supaworker.Job) -> None:
    """A poison job: takes its whole worker process down."""
    record(job)
    os.kill(os.getpid(), 9)
