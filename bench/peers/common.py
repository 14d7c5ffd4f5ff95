"""Shared scaffolding for the Python runners: CLI, the handlers' side-effect log, server CPU, scenarios.

A runner describes its system with a `Peer` object; `main(peer)` parses the common CLI, runs one scenario
and prints one JSON object on stdout. Handlers call `record(i, t_enq)` first thing: it appends
"<i> <t_enq> <t_start>" to a per-process file in $BENCH_LOG_DIR with a single O_APPEND write, which is
how runs are checked for exactly-once execution and how pickup latency is measured (same host clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg

SCENARIOS = ("setup", "enqueue_single", "enqueue_bulk", "drain", "latency", "backlog", "soak")
PEERS_DIR = Path(__file__).resolve().parent
LOG_ENV = "BENCH_LOG_DIR"
CHUNK = 10_000  # jobs per bulk call when pre-filling a queue
_fd: int | None = None


def record(i: int, t_enq: float) -> None:
    """Called by every no-op handler: one line per execution, one write(2) call."""
    global _fd
    t_start = time.time()
    if _fd is None:
        path = os.path.join(os.environ[LOG_ENV], f"{os.getpid()}.log")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, f"{i} {t_enq:.6f} {t_start:.6f}\n".encode())


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
    p.add_argument("--mode", choices=("default", "fast"), default="default")
    p.add_argument("--rate", type=float, default=50.0, help="latency/soak: jobs enqueued per second")
    p.add_argument("--duration", type=float, default=600.0, help="soak: seconds of steady load")
    p.add_argument("--sample", type=int, default=10_000, help="backlog: how many jobs to time")
    p.add_argument("--timeout", type=float, default=600.0)
    return p.parse_args(argv)


# ---------------------------------------------------------------- server CPU from /proc


def _stat(pid: int | str) -> tuple[int, int]:
    """(ppid, utime+stime+cutime+cstime in clock ticks) of one process."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[1]), sum(int(x) for x in fields[11:15])


class DbCpu:
    """CPU time of the PostgreSQL processes serving one database: the client backends and autovacuum
    workers whose process title names it, minus `exclude` (the runner's own polling connection). The
    server is shared, so processes of other databases and shared background processes (WAL writer,
    checkpointer) are left out. Sampled every 100 ms, so a backend that exits still counts up to its
    last sample; `read()` gives the seconds used since this object was created."""

    def __init__(self, postmaster: int, dbname: str, exclude: int) -> None:
        self.pm, self.db, self.exclude = postmaster, dbname.encode(), exclude
        self.seen: dict[int, tuple[int, int]] = {}  # pid -> (ticks when first seen or 0 if new, last ticks)
        self.lock = threading.Lock()
        self.baseline = True
        self._scan()
        self.baseline = False
        self.stopped = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _scan(self) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == self.exclude:
                continue
            try:
                ppid, ticks = _stat(name)
                if ppid != self.pm:
                    continue
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").split()
            except (OSError, IndexError, ValueError):
                continue
            if self.db in title:
                with self.lock:
                    first = (
                        self.seen[int(name)][0] if int(name) in self.seen else (ticks if self.baseline else 0)
                    )
                    self.seen[int(name)] = (first, ticks)

    def _loop(self) -> None:
        while not self.stopped.wait(0.1):
            self._scan()

    def read(self) -> float:
        self._scan()
        with self.lock:
            return sum(last - first for first, last in self.seen.values()) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.stopped.set()


# ---------------------------------------------------------------- side-effect log and workers


def new_log_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-log-"))


def log_count(log_dir: Path, offsets: dict[str, int]) -> int:
    """Executions logged so far; reads only bytes appended since the last call."""
    for entry in os.scandir(log_dir):
        if entry.name.endswith(".log"):
            with open(entry.path, "rb") as f:
                f.seek(offsets.get(entry.name, 0))
                data = f.read()
            offsets[entry.name] = offsets.get(entry.name, 0) + len(data)
            offsets["_lines"] = offsets.get("_lines", 0) + data.count(b"\n")
    return offsets.get("_lines", 0)


def read_log(log_dir: Path) -> list[tuple[int, float, float]]:
    rows = []
    for path in log_dir.glob("*.log"):
        for line in path.read_text().splitlines():
            i, t_enq, t_start = line.split()
            rows.append((int(i), float(t_enq), float(t_start)))
    return rows


def once_check(rows: list[tuple[int, float, float]], n: int) -> dict[str, int]:
    seen = Counter(i for i, _, _ in rows if i >= 0)
    return {
        "executions": sum(seen.values()),
        "duplicates": sum(c - 1 for c in seen.values() if c > 1),
        "missing": sum(1 for i in range(n) if i not in seen),
    }


def start_workers(cmds: list[list[str]], log_dir: Path, env: dict[str, str] | None = None) -> list[Any]:
    full_env = {**os.environ, **(env or {}), LOG_ENV: str(log_dir)}
    pypath = [str(PEERS_DIR), full_env.get("PYTHONPATH", "")]
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in pypath if p)
    procs = []
    for n, cmd in enumerate(cmds):
        err = open(log_dir / f"worker{n}.err", "wb")  # noqa: SIM115 - lives as long as the worker
        procs.append(
            subprocess.Popen(cmd, env=full_env, cwd=PEERS_DIR, stdout=err, stderr=err, start_new_session=True)
        )
    return procs


def stop_workers(procs: list[Any], grace: float = 3.0) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def worker_errors(log_dir: Path) -> str:
    text = "".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("worker*.err")))
    return text[-2000:]


async def poll(done: Any, limit_s: float, interval: float = 0.02) -> bool:
    """Wait until `done()` is true or `limit_s` seconds pass; returns whether it became true."""
    deadline = time.time() + limit_s
    while True:
        if done():
            return True
        if time.time() > deadline:
            return False
        await asyncio.sleep(interval)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


# ---------------------------------------------------------------- scenarios


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
        self.db_cpu = DbCpu(_stat(row[0])[0], row[1], exclude=row[0])

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
            "jobs_per_s": n / secs,
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
                "jobs_per_s": (target - 1) / window,
                "server_cpu_ms_per_job": 1e3 * cpu / target,
            }
        else:
            secs = t_end - starts[0] if starts else float("nan")
            out |= {
                "seconds": secs,
                "jobs_per_s": n / secs,
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
            await asyncio.sleep(1.0)  # let it go idle again
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
            "server_cpu_s_per_s": cpu / secs,
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
