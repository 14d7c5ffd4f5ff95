"""Shared scaffolding for the Python runners: the common CLI and the scenarios.

A runner describes its system with a `Peer` object; `main(peer)` parses the CLI, runs one scenario and
prints one JSON object on stdout. Measurement helpers live in measure.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg

from measure import (
    DbCpu,
    log_count,
    new_log_dir,
    once_check,
    pct,
    poll,
    proc_stat,
    read_log,
    start_workers,
    stop_workers,
    worker_errors,
)

SCENARIOS = ("setup", "enqueue_single", "enqueue_bulk", "drain", "latency", "backlog", "soak")
CHUNK = 10_000  # jobs per bulk call when pre-filling a queue


class Peer(Protocol):
    remaining_sql: str  # jobs queued or running, i.e. not done yet

    def settings(self, args: argparse.Namespace) -> dict[str, Any]: ...
    async def setup(self) -> None: ...
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def enqueue_one(self, i: int, t_enq: float) -> None: ...
    async def enqueue_many(self, items: Sequence[tuple[int, float]]) -> None: ...
    def worker_commands(self, args: argparse.Namespace) -> list[list[str]]: ...


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="benchmark runner (prints one JSON object)")
    p.add_argument("--dsn", required=True)
    p.add_argument("--scenario", choices=SCENARIOS, required=True)
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--mode", choices=("default", "equal", "fast"), default="default")
    p.add_argument("--rate", type=float, default=50.0, help="latency/soak: jobs enqueued per second")
    p.add_argument("--duration", type=float, default=600.0, help="soak: seconds of steady load")
    p.add_argument("--sample", type=int, default=10_000, help="backlog: how many jobs to time")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--handler", choices=("async", "def"), default="async", help="supaworker: the handler's kind")
    return p.parse_args(argv)


# ---------------------------------------------------------------- scenarios


def per_s(n: float, secs: float) -> float:
    return n / secs if secs > 0 else float("nan")


class Bench:
    def __init__(self, peer: Peer, args: argparse.Namespace) -> None:
        self.peer, self.args = peer, args
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.db_cpu: DbCpu | None = None

    async def start(self) -> None:
        """Opens the polling connection and starts counting the database's server CPU."""
        self.conn = await psycopg.AsyncConnection.connect(self.args.dsn, autocommit=True)
        row = await (await self.conn.execute("SELECT pg_backend_pid(), current_database()")).fetchone()
        assert row is not None
        self.db_cpu = DbCpu(proc_stat(row[0])[0], row[1], exclude=row[0])

    async def stop(self) -> None:
        if self.db_cpu is not None:
            self.db_cpu.close()
        if self.conn is not None:
            await self.conn.close()

    async def remaining(self) -> int:
        assert self.conn is not None
        row = await (await self.conn.execute(self.peer.remaining_sql)).fetchone()
        return int(row[0]) if row else -1

    def cpu(self) -> float:
        assert self.db_cpu is not None
        return self.db_cpu.read()

    async def enqueue(self, bulk: bool) -> dict[str, Any]:
        n = self.args.jobs
        items = [(i, 0.0) for i in range(n)]
        c0, t0 = self.cpu(), time.perf_counter()
        if bulk:
            await self.peer.enqueue_many(items)
        else:
            for i in range(n):
                await self.peer.enqueue_one(i, 0.0)
        secs, cpu = time.perf_counter() - t0, self.cpu() - c0
        return {
            "jobs": n,
            "seconds": secs,
            "jobs_per_s": per_s(n, secs),
            "server_cpu_ms_per_job": 1e3 * cpu / n,
            "queued_after": await self.remaining(),
        }

    async def prefill(self, n: int) -> float:
        t0 = time.perf_counter()
        for start in range(0, n, CHUNK):
            await self.peer.enqueue_many([(i, 0.0) for i in range(start, min(n, start + CHUNK))])
        return time.perf_counter() - t0

    async def drain(self, sample: int | None = None) -> dict[str, Any]:
        n = self.args.jobs
        prefill_s = await self.prefill(n)
        target = min(sample, n) if sample else n
        log_dir, offsets = new_log_dir(), {}
        c0, t_launch = self.cpu(), time.time()
        procs = start_workers(self.peer.worker_commands(self.args), log_dir)
        last_check, timed_out = t_launch, False
        try:
            while True:
                await asyncio.sleep(0.02)
                now, done = time.time(), log_count(log_dir, offsets)
                if sample and done >= target:
                    break
                if done >= target or now - last_check > 1.0:
                    last_check = now
                    if await self.remaining() == 0:
                        break
                if now - t_launch > self.args.timeout or any(p.poll() is not None for p in procs):
                    timed_out = True
                    break
            t_end, cpu = time.time(), self.cpu() - c0
        finally:
            stop_workers(procs)
        rows = read_log(log_dir)
        starts = sorted(t for _, _, t in rows)
        out: dict[str, Any] = {"jobs": n, "prefill_s": prefill_s, "server_cpu_s": cpu}
        if sample:
            window = starts[target - 1] - starts[0] if len(starts) >= target else float("nan")
            out |= {
                "sample": target,
                "seconds": window,
                "jobs_per_s": per_s(target - 1, window),
                "server_cpu_ms_per_job": 1e3 * cpu / target,
            }
        else:
            # The clock starts when the workers are launched, as a deploy or an autoscaler starts them:
            # start-up is part of what a drain costs (and is reported on its own as startup_s).
            secs = t_end - t_launch
            out |= {
                "seconds": secs,
                "jobs_per_s": per_s(n, secs),
                "startup_s": (starts or [t_end])[0] - t_launch,
                "server_cpu_ms_per_job": 1e3 * cpu / n,
                **once_check(rows, n),
                "remaining_after": await self.remaining(),
            }
        if timed_out:
            out |= {"error": "timed out or a worker exited", "worker_stderr": worker_errors(log_dir)}
        shutil.rmtree(log_dir, ignore_errors=True)
        return out

    async def latency(self) -> dict[str, Any]:
        n, rate = self.args.jobs, self.args.rate
        log_dir, offsets = new_log_dir(), {}
        procs = start_workers(self.peer.worker_commands(self.args), log_dir)
        out: dict[str, Any] = {"jobs": n, "rate": rate}
        try:
            await self.peer.enqueue_one(-1, time.time())  # warm-up: wait until the worker is ready
            ready = await poll(
                lambda: log_count(log_dir, offsets) >= 1 or any(p.poll() is not None for p in procs), 120
            )
            if not ready or log_count(log_dir, offsets) < 1:
                return out | {
                    "error": "worker never picked up the warm-up job",
                    "worker_stderr": worker_errors(log_dir),
                }
            await asyncio.sleep(0.5)  # let it go idle again
            c0, start = self.cpu(), time.time()
            for i in range(n):
                await asyncio.sleep(max(0.0, start + i / rate - time.time()))
                await self.peer.enqueue_one(i, time.time())
            await poll(lambda: log_count(log_dir, offsets) >= n + 1, n / rate + 30)
            cpu, secs = self.cpu() - c0, time.time() - start
        finally:
            stop_workers(procs)
        rows = [r for r in read_log(log_dir) if r[0] >= 0]
        lat = [1e3 * (t_start - t_enq) for _, t_enq, t_start in rows]
        out |= {
            "p50_ms": pct(lat, 0.50),
            "p95_ms": pct(lat, 0.95),
            "p99_ms": pct(lat, 0.99),
            "max_ms": max(lat, default=float("nan")),
            "server_cpu_ms_per_job": 1e3 * cpu / n,
            "server_cpu_s_per_s": per_s(cpu, secs),
            **once_check(rows, n),
        }
        shutil.rmtree(log_dir, ignore_errors=True)
        return out

    async def soak(self) -> dict[str, Any]:
        rate, duration = self.args.rate, self.args.duration
        log_dir, offsets = new_log_dir(), {}
        procs = start_workers(self.peer.worker_commands(self.args), log_dir)
        c0, start, i = self.cpu(), time.time(), 0
        try:
            while time.time() - start < duration:
                await asyncio.sleep(max(0.0, start + i / rate - time.time()))
                await self.peer.enqueue_one(i, time.time())
                i += 1
            await poll(lambda: log_count(log_dir, offsets) >= i, 60, 0.1)
            cpu = self.cpu() - c0
        finally:
            stop_workers(procs)
        rows = read_log(log_dir)
        lat = [1e3 * (t_start - t_enq) for _, t_enq, t_start in rows]
        shutil.rmtree(log_dir, ignore_errors=True)
        return {
            "jobs": i,
            "rate": rate,
            "duration_s": duration,
            "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99),
            "server_cpu_ms_per_job": 1e3 * cpu / max(i, 1),
            **once_check(rows, i),
            "remaining_after": await self.remaining(),
        }


async def run(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    if args.scenario == "setup":
        await peer.setup()
        return {}
    bench = Bench(peer, args)
    await peer.open()
    await bench.start()
    try:
        match args.scenario:
            case "enqueue_single" | "enqueue_bulk":
                return await bench.enqueue(bulk=args.scenario == "enqueue_bulk")
            case "drain":
                return await bench.drain()
            case "backlog":
                return await bench.drain(sample=args.sample)
            case "latency":
                return await bench.latency()
            case "soak":
                return await bench.soak()
    finally:
        await bench.stop()
        await peer.close()
    raise ValueError(args.scenario)


def main(peer_factory: Any, argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    peer = peer_factory(args)
    t0 = time.time()
    result = asyncio.run(run(peer, args))
    out = {
        "scenario": args.scenario,
        "mode": args.mode,
        "processes": args.processes,
        "concurrency": args.concurrency,
        "settings": peer.settings(args),
        **result,
        "runner_wall_s": time.time() - t0,
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
