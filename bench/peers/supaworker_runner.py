"""supaworker runner: the project's own interpreter with PYTHONPATH=<repo>/src (not a bench venv).

Schema: `python -m supaworker migrate`. Enqueue: `supaworker.create_job(..., conn=<autocommit connection>)`
(one transaction per job) and `supaworker.create_jobs([...], conn=...)` (one COPY). Workers:
`python -m supaworker worker --import supaworker_runner --concurrency C --processes P [--prefetch N]` with
LOG_LEVEL=warning and ENABLE_HEALTH_CHECK=false; every other setting at its default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import psycopg

import common
import supaworker
from measure import record


@supaworker.handler("noop")
async def noop(job: supaworker.Job) -> None:
    record(job.payload["i"], job.payload["t"])


@supaworker.handler("noop_def")
def noop_def(job: supaworker.Job) -> None:
    record(job.payload["i"], job.payload["t"])


class SupaworkerPeer:
    remaining_sql = "SELECT count(*) FROM supaworker.jobs WHERE status IN ('pending', 'processing')"

    def __init__(self, args: argparse.Namespace) -> None:
        self.dsn = args.dsn
        self.handler = args.handler
        self.job_type = "noop" if args.handler == "async" else "noop_def"
        self.conn: psycopg.Connection[Any] | None = None
        # Completed jobs are pruned after 60 s (default 24 h), as a queue under constant load is configured, so
        # the soak shows whether pruning and autovacuum keep the table level.
        os.environ.update(
            DATABASE_URL=self.dsn,
            LOG_LEVEL="warning",
            ENABLE_HEALTH_CHECK="false",
            SUPAWORKER_PRUNE_COMPLETED_AFTER_SECONDS="60",
        )

    def settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            "worker": " ".join(["supaworker worker", *self.worker_options(args)]),
            "handler": "async def" if self.handler == "async" else "def",
            "enqueue": "create_job(conn=autocommit) / create_jobs (COPY)",
        }

    async def setup(self) -> None:
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "supaworker", "migrate"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    async def open(self) -> None:
        self.conn = psycopg.connect(self.dsn, autocommit=True)

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    async def enqueue_one(self, i: int, t_enq: float) -> None:
        supaworker.create_job(self.job_type, {"i": i, "t": t_enq}, conn=self.conn)

    async def enqueue_many(self, items: Sequence[tuple[int, float]]) -> None:
        jobs = [{"type": self.job_type, "payload": {"i": i, "t": t}} for i, t in items]
        supaworker.create_jobs(jobs, conn=self.conn)

    def worker_commands(self, args: argparse.Namespace) -> list[list[str]]:
        # One supervised command; supaworker forks its own worker processes.
        return [
            [
                sys.executable,
                "-m",
                "supaworker",
                "worker",
                "--import",
                "supaworker_runner",
                *self.worker_options(args),
            ]
        ]

    @staticmethod
    def worker_options(args: argparse.Namespace) -> list[str]:
        # default: prefetch = concurrency (the library default); equal: concurrency + 1, as graphile-worker's
        # equal mode; fast: 500, as graphile-worker's documented local queue.
        prefetch = {"default": [], "equal": ["--prefetch", str(args.concurrency + 1)], "fast": ["--prefetch", "500"]}
        return ["--concurrency", str(args.concurrency), "--processes", str(args.processes), *prefetch[args.mode]]


if __name__ == "__main__":
    import supaworker_runner

    common.main(supaworker_runner.SupaworkerPeer)
