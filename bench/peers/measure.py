"""Measurement helpers shared by the Python runners: the handlers' side-effect log, the worker
processes, and the server CPU of the benchmark database read from /proc.

Handlers call `record(i, t_enq)` first thing: it appends "<i> <t_enq> <t_start>" to a per-process file in
$BENCH_LOG_DIR with one O_APPEND write(2). The log is how every run is checked for exactly-once execution
and how pickup latency is measured (both timestamps come from the same host clock).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent
LOG_ENV = "BENCH_LOG_DIR"
_fd: int | None = None


def record(i: int, t_enq: float) -> None:
    """Called by every no-op handler: one line per execution, one write(2) call."""
    global _fd
    t_start = time.time()
    if _fd is None:
        path = os.path.join(os.environ[LOG_ENV], f"{os.getpid()}.log")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, f"{i} {t_enq:.6f} {t_start:.6f}\n".encode())


# ---------------------------------------------------------------- server CPU from /proc


def proc_stat(pid: int | str) -> tuple[int, int]:
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

    def _children(self) -> list[str]:
        """The postmaster's children: one read of /proc/PID/task/PID/children, else a scan of /proc."""
        try:
            with open(f"/proc/{self.pm}/task/{self.pm}/children") as f:
                return f.read().split()
        except OSError:
            return [n for n in os.listdir("/proc") if n.isdigit()]

    def _scan(self) -> None:
        for name in self._children():
            if int(name) == self.exclude:
                continue
            try:
                ppid, ticks = proc_stat(name)
                if ppid != self.pm:
                    continue
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").split()
            except (OSError, IndexError, ValueError):
                continue
            if self.db in title:
                with self.lock:
                    first = self.seen[int(name)][0] if int(name) in self.seen else (ticks if self.baseline else 0)
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
        procs.append(subprocess.Popen(cmd, env=full_env, cwd=PEERS_DIR, stdout=err, stderr=err, start_new_session=True))
    return procs


def stop_workers(procs: list[Any], grace: float = 1.5) -> None:
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
