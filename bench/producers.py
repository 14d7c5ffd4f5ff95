"""Many producers, one job per transaction: what an enqueue's NOTIFY costs when nobody needs it.

    .venv/bin/python bench/producers.py [--producers 16] [--seconds 10] [--repeat 3]

A transaction that sent a NOTIFY takes one database-wide lock at commit, so concurrent enqueuers commit one
at a time. Since migration 0012 an insert notifies only while some worker waits for work
(`waiting_workers`). Each round runs the same producers twice on one fresh database, interleaved:

- `notify`: a worker says it waits (a row in waiting_workers), so every enqueue sends a NOTIFY, as every
  enqueue did before 0012;
- `quiet`: no worker waits (they are busy, or there are none), so no enqueue sends one.

Each producer is a process of its own with one connection, calling `supaworker.create_job(..., conn=...)`
in autocommit for `--seconds`. Prints jobs/s per mode (median of the rounds), the ratio, and how many of
the producers' sessions were seen waiting on the notify lock (`Lock:object`) in samples taken meanwhile.
With `--client pgbench` the producers are pgbench's (C, no client CPU to speak of) calling the SQL API,
`SELECT supaworker.create_job('noop', '{}')`, one per transaction: the database's side alone.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

import supaworker

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DB = "bench_producers"


def produce(dsn: str, start_at: float, seconds: float, counts: mp.Queue) -> None:  # type: ignore[type-arg]
    with psycopg.connect(dsn, autocommit=True) as conn:
        n = 0
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            supaworker.create_job("noop", {"i": n}, conn=conn)
            n += 1
    counts.put(n)


def run_round(dsn: str, producers: int, seconds: float) -> tuple[float, float]:
    """(jobs/s, mean number of sessions seen waiting on Lock:object)."""
    counts: mp.Queue[int] = mp.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 1.0
    procs = [mp.Process(target=produce, args=(dsn, start_at, seconds, counts)) for _ in range(producers)]
    for p in procs:
        p.start()
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.wait(0.1):
                if time.time() > start_at:
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND wait_event = 'object'"
                    ).fetchone()
                    samples.append(int(row[0]) if row else 0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    total = sum(counts.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    stop.set()
    sampler.join()
    return total / seconds, statistics.mean(samples) if samples else 0.0


def run_pgbench(dsn: str, producers: int, seconds: float) -> tuple[float, float]:
    """(jobs/s, -1: not sampled) of pgbench clients enqueueing through the SQL API."""
    script = Path("/tmp") / "supaworker_bench_enqueue.sql"
    script.write_text("SELECT supaworker.create_job('noop', '{}');\n")
    out = subprocess.run(
        ["pgbench", "-n", "-c", str(producers), "-j", "2", "-T", str(int(seconds)), "-f", str(script), dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tps = next(line for line in out.splitlines() if line.startswith("tps"))
    return float(tps.split("=")[1].split()[0]), -1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--producers", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--client", choices=("python", "pgbench"), default="python")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    a = ap.parse_args()
    dsn = a.pg + DB
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(REPO / "src")}
    results: dict[str, list[tuple[float, float]]] = {"notify": [], "quiet": []}
    for rep in range(a.repeat):
        for mode in ("notify", "quiet") if rep % 2 == 0 else ("quiet", "notify"):
            with psycopg.connect(a.pg + "postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {DB}")
            subprocess.run([sys.executable, "-m", "supaworker", "migrate"], env=env, check=True, capture_output=True)
            if mode == "notify":
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("SELECT supaworker.wait_for_jobs('a-waiting-worker', 3600)")
            if a.client == "pgbench":
                rate, waiting = run_pgbench(dsn, a.producers, a.seconds)
            else:
                rate, waiting = run_round(dsn, a.producers, a.seconds)
            results[mode].append((rate, waiting))
            seen = f", {waiting:4.1f} sessions waiting on Lock:object" if waiting >= 0 else ""
            print(f"round {rep + 1} {mode:6}: {rate:8,.0f} jobs/s{seen}")
    notify = statistics.median(r for r, _ in results["notify"])
    quiet = statistics.median(r for r, _ in results["quiet"])
    print(
        f"{a.producers} {a.client} producers x {a.seconds:g} s, medians of {a.repeat}: every enqueue notifies"
        f" {notify:,.0f} jobs/s,"
        f" none notifies {quiet:,.0f} jobs/s: {quiet / notify:.2f}x"
    )


if __name__ == "__main__":
    main()
