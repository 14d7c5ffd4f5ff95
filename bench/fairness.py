"""Fair shares across tenants, measured with a real worker at default settings.

    .venv/bin/python bench/fairness.py [--seconds 30] [--repeat 3]

1. A small tenant behind a big one: tenant a queues 20,000 jobs, then tenant b 100; prints how many of a's
   jobs were left when b's last one completed (the aim: more than half).
2. Weights 3:1: tenants a (weight 3) and b (weight 1) both keep a backlog (topped up as it drains); prints
   each one's share of the jobs completed over `--seconds` (the aim: within 10 % of 3:1).
3. What sharing costs: drains of 50,000 no-op jobs spread over 100 tenants and of the same jobs all of one
   tenant, interleaved, medians of `--repeat`; prints the ratio (the aim: at least 0.85).

Each run is on a fresh database (`bench_fairness`), with one `supaworker worker` process (concurrency 10).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

import supaworker

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DB = "bench_fairness"


@supaworker.handler("noop")
async def noop(job: supaworker.Job) -> None:
    return None


class Bench:
    def __init__(self, pg: str) -> None:
        self.pg = pg
        self.dsn = pg + DB
        self.env = {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "LOG_LEVEL": "warning",
            "ENABLE_HEALTH_CHECK": "false",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]),
        }

    def fresh(self) -> psycopg.Connection:
        with psycopg.connect(self.pg + "postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DB}")
        subprocess.run([sys.executable, "-m", "supaworker", "migrate"], env=self.env, check=True, capture_output=True)
        return psycopg.connect(self.dsn, autocommit=True)

    def worker(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "supaworker", "worker", "--no-builtins", "--import", "fairness"]
        return subprocess.Popen(cmd, env=self.env)

    @staticmethod
    def enqueue(conn: psycopg.Connection, tenant: str, n: int) -> None:
        supaworker.create_jobs([{"type": "noop", "fairness_key": tenant}] * n, conn=conn)

    @staticmethod
    def completed(conn: psycopg.Connection, tenant: str | None = None) -> int:
        row = conn.execute(
            "SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'"
            " AND (%(t)s::text IS NULL OR fairness_key = %(t)s)",
            {"t": tenant},
        ).fetchone()
        return int(row[0]) if row else 0

    def small_behind_big(self) -> int:
        with self.fresh() as conn:
            self.enqueue(conn, "a", 20_000)
            worker = self.worker()
            try:
                while self.completed(conn, "a") < 500:
                    time.sleep(0.01)
                self.enqueue(conn, "b", 100)
                while self.completed(conn, "b") < 100:
                    time.sleep(0.005)
                return 20_000 - self.completed(conn, "a")
            finally:
                worker.terminate()
                worker.wait()

    def weighted(self, seconds: float) -> tuple[int, int]:
        """Jobs of a (weight 3) and b (weight 1) completed over `seconds`, both kept backlogged throughout."""
        with self.fresh() as conn:
            supaworker.set_fairness_weight("a", 3, conn=conn)
            backlog = "SELECT count(*) FROM supaworker.jobs WHERE status = 'pending' AND fairness_key = %s"

            def top_up() -> None:
                for tenant in ("a", "b"):
                    row = conn.execute(backlog, (tenant,)).fetchone()
                    if row and row[0] < 50_000:
                        self.enqueue(conn, tenant, 100_000)

            top_up()
            worker = self.worker()
            try:
                time.sleep(2)  # start-up and the first claims
                a0, b0 = self.completed(conn, "a"), self.completed(conn, "b")
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    top_up()
                    time.sleep(0.5)
                return self.completed(conn, "a") - a0, self.completed(conn, "b") - b0
            finally:
                worker.terminate()
                worker.wait()

    def drain(self, tenants: int, jobs: int) -> float:
        with self.fresh() as conn:
            per = jobs // tenants
            supaworker.create_jobs(
                [{"type": "noop", "fairness_key": f"tenant-{t:03}"} for t in range(tenants) for _ in range(per)],
                conn=conn,
            )
            conn.execute("VACUUM ANALYZE supaworker.jobs")
            # Each drain starts from a checkpoint: the database dropped before it (the previous phase's 400,000
            # jobs) must not leave its writes to the first drain after it.
            conn.execute("CHECKPOINT")
            started = time.monotonic()
            worker = self.worker()
            try:
                while self.completed(conn) < per * tenants:
                    time.sleep(0.02)
                return per * tenants / (time.monotonic() - started)
            finally:
                worker.terminate()
                worker.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=50_000)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    a = ap.parse_args()
    bench = Bench(a.pg)
    os.environ["DATABASE_URL"] = bench.dsn

    left = bench.small_behind_big()
    print(f"1. tenant b's 100 jobs done with {left:,} of tenant a's 20,000 left ({left / 200:.0f} %)")

    got_a, got_b = bench.weighted(a.seconds)
    share = got_a / max(got_a + got_b, 1)
    print(
        f"2. weights 3:1 over {a.seconds:g} s: a {got_a:,}, b {got_b:,} jobs: {got_a / max(got_b, 1):.2f}:1"
        f" (a's share {share:.3f}, 3:1 is 0.750; {abs(share - 0.75) / 0.75 * 100:.1f} % off)"
    )

    shared, alone = [], []
    for rep in range(a.repeat):
        for tenants in (100, 1) if rep % 2 == 0 else (1, 100):
            rate = bench.drain(tenants, a.jobs)
            (shared if tenants == 100 else alone).append(rate)
            print(f"   drain of {a.jobs:,} jobs over {tenants:3} tenant(s): {rate:,.0f} jobs/s")
    ratio = statistics.median(shared) / statistics.median(alone)
    print(
        f"3. drain over 100 tenants {statistics.median(shared):,.0f} jobs/s, over one"
        f" {statistics.median(alone):,.0f}: {ratio:.2f}x (medians of {a.repeat})"
    )


if __name__ == "__main__":
    main()
