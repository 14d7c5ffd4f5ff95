"""PgQueuer runner (bench/.venv-peers). Workers call `pgqueuer.run(create_pgqueuer, ...)`, the library
entry point behind `pgq run` (the `pgq run` command of 1.6.0 fails at start-up in its logging setup here).

PgQueuer has no per-process concurrency setting as such; `--max-concurrent-tasks` is its hard cap on
jobs picked by one worker and must be at least twice `--batch-size`. To run "concurrency C" we pass
max_concurrent_tasks=C and batch_size=C//2; everything else is left at the library defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pgqueuer
import psycopg
from pgqueuer import PgQueuer, Queries
from pgqueuer.db import PsycopgDriver
from pgqueuer.models import Job

import common
from measure import record


@asynccontextmanager
async def create_pgqueuer() -> AsyncIterator[PgQueuer]:
    """Worker factory for `pgq run`; the DSN comes from PGDSN."""
    conn = await psycopg.AsyncConnection.connect(os.environ["PGDSN"], autocommit=True)
    pgq = PgQueuer(PsycopgDriver(conn))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        body = json.loads(job.payload or b"{}")
        record(body["i"], body["t"])

    try:
        yield pgq
    finally:
        await conn.close()


class PgQueuerPeer:
    remaining_sql = "SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')"

    def __init__(self, args: argparse.Namespace) -> None:
        self.dsn = args.dsn
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.queries: Queries | None = None

    def settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            "batch_size": max(1, args.concurrency // 2),
            "max_concurrent_tasks": args.concurrency,
            "driver": "psycopg (PsycopgDriver, autocommit)",
        }

    async def setup(self) -> None:
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pgqueuer", "--pg-dsn", self.dsn, "install"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    async def open(self) -> None:
        self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        self.queries = Queries(PsycopgDriver(self.conn))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def enqueue_one(self, i: int, t_enq: float) -> None:
        assert self.queries is not None
        await self.queries.enqueue("noop", json.dumps({"i": i, "t": t_enq}).encode())

    async def enqueue_many(self, items: Sequence[tuple[int, float]]) -> None:
        assert self.queries is not None
        payloads: list[bytes | None] = [json.dumps({"i": i, "t": t}).encode() for i, t in items]
        await self.queries.enqueue(["noop"] * len(items), payloads, [0] * len(items))

    def worker_commands(self, args: argparse.Namespace) -> list[list[str]]:
        os.environ["PGDSN"] = self.dsn
        call = f"worker({max(1, args.concurrency // 2)}, {args.concurrency})"
        return [[sys.executable, "-c", f"import pgqueuer_runner; pgqueuer_runner.{call}"]] * args.processes


def worker(batch_size: int, max_concurrent_tasks: int) -> None:
    """One worker process; SIGTERM/SIGINT stop it (handled by pgqueuer.run)."""
    asyncio.run(pgqueuer.run(create_pgqueuer, batch_size=batch_size, max_concurrent_tasks=max_concurrent_tasks))


if __name__ == "__main__":
    common.main(PgQueuerPeer)
