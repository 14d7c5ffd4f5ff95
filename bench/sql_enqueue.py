"""Single enqueue: the SQL function create_job (what TypeScript, psql and PostgREST call) against the Python
API's own path (`supaworker.create_job`), in the same run, on the same connection settings.

    .venv/bin/python bench/sql_enqueue.py --jobs 5000 [--rounds 3]

Each side enqueues `--jobs` jobs one call at a time on one autocommit connection to a fresh database
(`bench_sql_enqueue`), alternating sides each round so neither always runs on a warmer server. Prints one
line per side: jobs/s of the best round and the median microseconds per call. Also times create_jobs (the
SQL batch function) against the Python bulk path (COPY), one batch of `--jobs`, for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import psycopg
from psycopg.types.json import Jsonb

import supaworker
from supaworker.migrate import migrate
from supaworker.store import Store

DB = "bench_sql_enqueue"
SCHEMA = "supaworker"
PAYLOAD = {"video_url": "https://example.com/v.mp4", "n": 1}


def python_single(conn: psycopg.Connection, store: Store, jobs: int) -> list[float]:
    times = []
    for _ in range(jobs):
        start = time.perf_counter()
        supaworker.create_job("bench", PAYLOAD, conn=conn, store=store)
        times.append(time.perf_counter() - start)
    return times


def sql_single(conn: psycopg.Connection, store: Store, jobs: int) -> list[float]:
    times = []
    query = "SELECT supaworker.create_job(type => %s, payload => %s)"
    for _ in range(jobs):
        start = time.perf_counter()
        conn.execute(query, ("bench", Jsonb(PAYLOAD))).fetchone()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args()

    with psycopg.connect(a.pg + "postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    dsn = a.pg + DB
    migrate(dsn, SCHEMA)
    store = Store(None, SCHEMA)
    sides = {"python create_job": python_single, "sql create_job()": sql_single}
    results: dict[str, dict[str, float]] = {}
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for run in sides.values():  # warm-up: plans, caches
                run(conn, store, min(200, a.jobs))
            best: dict[str, float] = {}
            per_call: dict[str, list[float]] = {name: [] for name in sides}
            for round_ in range(a.rounds):
                order = list(sides.items()) if round_ % 2 == 0 else list(reversed(sides.items()))
                for name, run in order:
                    start = time.perf_counter()
                    times = run(conn, store, a.jobs)
                    elapsed = time.perf_counter() - start
                    best[name] = max(best.get(name, 0.0), a.jobs / elapsed)
                    per_call[name].extend(times)
            for name in sides:
                results[name] = {
                    "jobs_per_second": round(best[name]),
                    "median_us": round(statistics.median(per_call[name]) * 1e6),
                }
            batch = [{"type": "bench", "payload": PAYLOAD} for _ in range(a.jobs)]
            start = time.perf_counter()
            supaworker.create_jobs(batch, conn=conn, store=store)
            copy_s = time.perf_counter() - start
            start = time.perf_counter()
            conn.execute("SELECT supaworker.create_jobs(%s)", (Jsonb(batch),)).fetchone()
            sql_batch_s = time.perf_counter() - start
            results["python create_jobs (COPY)"] = {"jobs_per_second": round(a.jobs / copy_s)}
            results["sql create_jobs()"] = {"jobs_per_second": round(a.jobs / sql_batch_s)}
    finally:
        with psycopg.connect(a.pg + "postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    if a.json:
        print(json.dumps({"jobs": a.jobs, "rounds": a.rounds, "results": results}, indent=2))
        return
    print(f"{a.jobs} jobs per side and round, {a.rounds} rounds, one autocommit connection")
    for name, figures in results.items():
        median = f", median {figures['median_us']} us per call" if "median_us" in figures else ""
        print(f"  {name:<26} {figures['jobs_per_second']:>8} jobs/s{median}")


if __name__ == "__main__":
    main()
