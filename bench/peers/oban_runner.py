"""oban-py runner (bench/.venv-oban, Python 3.12).

Workers are the documented CLI, `oban start --dsn DSN --queues default:C`, with every other option at
its default. Jobs name their worker class by import path (`oban_runner.Noop`), which `oban start`
imports from this directory.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oban import Job, Oban, worker

import common
from measure import record


@worker(queue="default")
class Noop:
    async def process(self, job: Job) -> None:
        record(job.args["i"], job.args["t"])


class ObanPeer:
    remaining_sql = "SELECT count(*) FROM oban_jobs WHERE state IN ('available', 'scheduled', 'executing', 'retryable')"

    def __init__(self, args: argparse.Namespace) -> None:
        self.dsn = args.dsn
        self.pool: Any = None
        self.oban: Oban | None = None
        self.cli = str(Path(sys.executable).with_name("oban"))

    def settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"worker": f"oban start --queues default:{args.concurrency}", "pool": "oban defaults (1..10)"}

    async def setup(self) -> None:
        await asyncio.to_thread(
            subprocess.run,
            [self.cli, "install", "--dsn", self.dsn],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def open(self) -> None:
        self.pool = await Oban.create_pool(self.dsn)
        self.oban = Oban(pool=self.pool)  # client mode: no queues, enqueue only

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def enqueue_one(self, i: int, t_enq: float) -> None:
        assert self.oban is not None
        await self.oban.enqueue(Noop.new({"i": i, "t": t_enq}))

    async def enqueue_many(self, items: Sequence[tuple[int, float]]) -> None:
        assert self.oban is not None
        await self.oban.enqueue_many([Noop.new({"i": i, "t": t}) for i, t in items])

    def worker_commands(self, args: argparse.Namespace) -> list[list[str]]:
        cmd = [
            self.cli,
            "start",
            "--dsn",
            self.dsn,
            "--queues",
            f"default:{args.concurrency}",
            "--log-level",
            "warning",
        ]
        return [cmd] * args.processes


if __name__ == "__main__":
    # Go through the importable module so jobs name `oban_runner.Noop`, not `__main__.Noop`.
    import oban_runner

    common.main(oban_runner.ObanPeer)
