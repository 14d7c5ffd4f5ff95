"""A rate limit whose window is shorter than the poll interval: how long a backlog takes to drain.

    .venv/bin/python bench/rate_window.py [--jobs 300] [--rate 25] [--period 0.5] [--runs 3]

On a fresh database per run, queues `--jobs` no-op jobs of a type limited to `--rate` starts per `--period`
seconds, launches `supaworker worker --import rate_window --type metered` (default settings: a 1 s poll) and
times launch to the last completion. Prints each run, the median, the ideal (jobs / rate windows, no start-up)
and the most starts seen in any one window (must not exceed the rate).

This module is also the worker's `--import`.
"""

from __future__ import annotations

import supaworker

TYPE = "metered"


@supaworker.handler(TYPE)
def metered(job: supaworker.Job) -> None:
    return None


def main() -> None:
    import argparse
    import os
    import statistics
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psycopg

    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--rate", type=int, default=25)
    ap.add_argument("--period", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    a = ap.parse_args()
    db, url = "bench_rate_window", a.pg + "bench_rate_window"

    def admin(statement: str) -> None:
        with psycopg.connect(a.pg + "postgres", autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(here)}
    times: list[float] = []
    most: list[int] = []
    try:
        for run in range(a.runs):
            admin(f"DROP DATABASE IF EXISTS {db}")
            admin(f"CREATE DATABASE {db}")
            subprocess.run([sys.executable, "-m", "supaworker", "migrate"], env=env, check=True, capture_output=True)
            with psycopg.connect(url, autocommit=True) as conn:
                supaworker.set_limits(TYPE, rate_limit=a.rate, rate_period=a.period, conn=conn)
                supaworker.create_jobs([{"type": TYPE}] * a.jobs, conn=conn)
                began = time.monotonic()
                worker = subprocess.Popen(
                    [sys.executable, "-m", "supaworker", "worker", "--import", "rate_window", "--type", TYPE],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    done = "SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'"
                    while conn.execute(done).fetchone() != (a.jobs,):
                        time.sleep(0.02)
                    times.append(time.monotonic() - began)
                finally:
                    worker.terminate()
                    worker.wait(30)
                (peak,) = conn.execute(  # type: ignore[misc]
                    """SELECT max(n) FROM (SELECT count(*) OVER (ORDER BY started_at RANGE BETWEEN CURRENT ROW
                       AND %s * interval '1 second' FOLLOWING) - 0 AS n FROM supaworker.jobs) w""",
                    (a.period - 0.000001,),
                ).fetchone()
                most.append(int(peak))
            print(f"run {run + 1}: {times[-1]:.2f} s, at most {most[-1]} starts in a {a.period:g} s window")
    finally:
        admin(f"DROP DATABASE IF EXISTS {db}")
    ideal = (a.jobs / a.rate - 1) * a.period
    print(
        f"{a.jobs} jobs at {a.rate} per {a.period:g} s: median {statistics.median(times):.2f} s from launch"
        f" (ideal {ideal:.2f} s without start-up); at most {max(most)} starts in any window"
    )


if __name__ == "__main__":
    main()
