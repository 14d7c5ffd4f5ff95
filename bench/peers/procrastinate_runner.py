"""Procrastinate runner (bench/.venv-peers).

Workers are the documented CLI, `procrastinate --app=procrastinate_runner.app worker --concurrency C`,
with every other worker option at its default (LISTEN/NOTIFY on, finished jobs kept in the table).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import procrastinate

import common
from measure import record


def make_app(dsn: str) -> procrastinate.App:
    new_app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @new_app.task(name="noop")
    async def noop(i: int, t: float) -> None:
        record(i, t)

    return new_app


# The worker CLI imports this module and reads `app`; the DSN comes from BENCH_DSN.
app = make_app(os.environ.get("BENCH_DSN", ""))


class ProcrastinatePeer:
    remaining_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"

    def __init__(self, args: argparse.Namespace) -> None:
        self.dsn = args.dsn
        self.app = make_app(self.dsn)

    def settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"worker": f"procrastinate worker --concurrency {args.concurrency}", "connector": "psycopg"}

    async def setup(self) -> None:
        async with self.app.open_async():
            await self.app.schema_manager.apply_schema_async()

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def enqueue_one(self, i: int, t_enq: float) -> None:
        await self.app.configure_task("noop").defer_async(i=i, t=t_enq)

    async def enqueue_many(self, items: Sequence[tuple[int, float]]) -> None:
        await self.app.configure_task("noop").batch_defer_async(*({"i": i, "t": t} for i, t in items))

    def worker_commands(self, args: argparse.Namespace) -> list[list[str]]:
        os.environ["BENCH_DSN"] = self.dsn
        cmd = [
            sys.executable,
            "-m",
            "procrastinate",
            "--app=procrastinate_runner.app",
            "--log-level=warning",
            "worker",
            f"--concurrency={args.concurrency}",
        ]
        return [cmd] * args.processes


if __name__ == "__main__":
    # Go through the importable module so procrastinate does not see an App built in __main__.
    import procrastinate_runner

    common.main(procrastinate_runner.ProcrastinatePeer)
