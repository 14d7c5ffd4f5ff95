"""A month of history without slowing the queue (migration 0019, SUPAWORKER_HISTORY_*).

    .venv/bin/python bench/history.py --finished 30000000            # drains, then the retention of a day
    .venv/bin/python bench/history.py --soak 600                       # sizes over a 10-minute soak

Drains: three databases, made once each. `none` holds no finished job; `history` holds `--finished` finished
jobs in job_history, a day's partition each over 30 days (a million a day at the default); `jobs` holds as
many in the queue's table itself, as a month of jobs kept there (history off, pruning at 30 days) would.
Then, interleaved, `--repeat` times each: `--jobs` no-op jobs are queued, one worker process started with
default settings drains them, and the database's clock gives the rate; the server CPU per job is that of the
backends of that database (claim and completion statements). The drained jobs are deleted after each round.

Retention: in `history`, the oldest day's partition is dropped with drop_history_partitions() and timed; in
`jobs`, a day of finished jobs is deleted with one DELETE and timed: what pruning a day costs without history.

Soak: a fresh database, history on with jobs moved 5 s after they finish, 10-second partitions and a minute's
retention; a producer queues `--rate` jobs a second while one worker (its leader's maintenance on) runs them.
Every 15 s it samples the rows and the size on disk (tables and indexes) of jobs and of job_history.

Results go to bench/results/history.md (drains and retention) and bench/results/history-soak.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "peers"))
from measure import DbCpu, proc_stat  # noqa: E402

SETUPS = ("none", "history", "jobs")
MIB = 2**20
DAYS = 30
NOOP_MODULE = "worker_cost"  # its `noop` handler (async def) and `noop_def`


def env_for(dsn: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "LOG_LEVEL": "warning",
        "ENABLE_HEALTH_CHECK": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]),
        **extra,
    }


def fresh_database(pg: str, name: str) -> str:
    with psycopg.connect(pg + "postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    dsn = pg + name
    subprocess.run([sys.executable, "-m", "supaworker", "migrate"], env=env_for(dsn), check=True, capture_output=True)
    return dsn


# The finished jobs: ids far above the drains' own, spread evenly over the last 30 days.
FINISHED_ROWS = """
SELECT 1000000000000 + g, 'noop', 'default', 'completed'::supaworker.job_status, 0, '{}'::jsonb, NULL::jsonb,
       1, 3, t - interval '2 seconds', NULL::double precision, NULL::text, '[]'::jsonb, 'w', NULL::timestamptz,
       NULL::uuid, t - interval '2 seconds', t - interval '1 second', t, NULL::text, NULL::timestamptz,
       NULL::real, NULL::text, NULL::timestamptz, true, g, 0, ''
  FROM generate_series(1, %(rows)s) g,
       LATERAL (SELECT now() - interval '30 days' + ((g - 1)::double precision / %(rows)s) * interval '30 days' AS t) x
"""


def build(pg: str, setup: str, rows: int) -> str:
    dsn = fresh_database(pg, f"bench_history_{setup}")
    if setup == "none":
        return dsn
    began = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        if setup == "history":
            for day in range(DAYS + 1):
                conn.execute("SELECT supaworker.history_partition(now() - %s * interval '1 day', 86400)", (DAYS - day,))
            conn.execute("INSERT INTO supaworker.job_history " + FINISHED_ROWS, {"rows": rows})
            conn.execute("ANALYZE supaworker.job_history")
        else:
            conn.execute("INSERT INTO supaworker.jobs " + FINISHED_ROWS, {"rows": rows})
        conn.execute("VACUUM ANALYZE supaworker.jobs")
    print(f"{setup}: {rows:,} finished jobs written in {time.monotonic() - began:.0f} s", flush=True)
    return dsn


def drain(dsn: str, jobs: int, handler: str) -> dict[str, float]:
    """Queues `jobs` no-op jobs, drains them with one default worker, and deletes them again."""
    job_type = "noop" if handler == "async" else "noop_def"
    worker = [sys.executable, "-m", "supaworker", "worker", "--no-builtins", "--import", NOOP_MODULE]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO supaworker.jobs (type) SELECT %s FROM generate_series(1, %s)", (job_type, jobs))
        conn.execute("VACUUM ANALYZE supaworker.jobs")
        pid, dbname = conn.execute("SELECT pg_backend_pid(), current_database()").fetchone()  # type: ignore[misc]
        server = DbCpu(proc_stat(pid)[0], dbname, exclude=pid)
        # Maintenance off, as in bench/worker_cost.py: the leader's pruner would start on the month in `jobs`.
        proc = subprocess.Popen(worker, env=env_for(dsn, SUPAWORKER_MAINTENANCE="false"))
        try:
            # Through the partial indexes of pending and processing jobs: no walk of the finished ones.
            pending = "SELECT count(*) FROM supaworker.jobs WHERE status IN ('pending', 'processing')"
            while conn.execute(pending).fetchone() != (0,):
                if proc.poll() is not None:
                    sys.exit("the worker exited before the queue was drained")
                time.sleep(0.1)
            server_s = server.read()
            (rate,) = conn.execute(
                "SELECT count(*) / extract(epoch FROM max(completed_at) - min(started_at)) FROM supaworker.jobs"
                " WHERE id < 1000000000000"
            ).fetchone()  # type: ignore[misc]
        finally:
            proc.terminate()
            proc.wait()
            server.close()
        conn.execute("DELETE FROM supaworker.jobs WHERE id < 1000000000000")
        conn.execute("VACUUM supaworker.jobs")
    return {"rate": float(rate), "server_us": server_s * 1e6 / jobs}


def retention(dsns: dict[str, str]) -> dict[str, float]:
    """Seconds to drop history's oldest day, and to DELETE a day of finished jobs from jobs."""
    timings: dict[str, float] = {}
    count = "SELECT count(*) FROM supaworker.job_history"
    with psycopg.connect(dsns["history"], autocommit=True) as conn:
        before = conn.execute(count).fetchone()
        began = time.monotonic()
        # The oldest partition ended less than 29 days ago by the time of day: only it is past 29 days.
        dropped = conn.execute("SELECT supaworker.drop_history_partitions(%s)", ((DAYS - 1) * 86400,)).fetchall()
        timings["history"] = time.monotonic() - began
        after = conn.execute(count).fetchone()
        timings["history_rows"] = (before[0] - after[0]) if before and after else 0
        print(f"history: dropped {[d[0] for d in dropped]} ({timings['history_rows']:,} jobs) in"
              f" {timings['history']:.3f} s", flush=True)  # fmt: skip
    with psycopg.connect(dsns["jobs"], autocommit=True) as conn:
        began = time.monotonic()
        cur = conn.execute(
            "DELETE FROM supaworker.jobs WHERE status = 'completed' AND completed_at < now() - interval '29 days'"
        )
        timings["jobs"] = time.monotonic() - began
        timings["jobs_rows"] = cur.rowcount
        print(f"jobs: deleted {cur.rowcount:,} rows in {timings['jobs']:.3f} s", flush=True)
    return timings


def run_drains(a: argparse.Namespace) -> None:
    dsns = {setup: build(a.pg, setup, a.finished) for setup in SETUPS}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(a.repeat):
        for handler in a.handlers:
            for setup in SETUPS:
                figures = drain(dsns[setup], a.jobs, handler)
                results.setdefault((handler, setup), []).append(figures)
                print(f"{handler} {setup}: {figures['rate']:,.0f} jobs/s, server {figures['server_us']:.1f} us/job",
                      flush=True)  # fmt: skip
    timings = retention(dsns)
    lines = [
        "# A month of history and the queue, same run",
        "",
        f"`bench/history.py --finished {a.finished} --jobs {a.jobs} --repeat {a.repeat}`: {a.jobs:,} no-op jobs drained"
        f" by one worker with default settings, with no finished job (`none`), {a.finished:,} in job_history"
        f" (`history`, {DAYS} day partitions) or {a.finished:,} in jobs (`jobs`, history off); interleaved, medians"
        f" of {a.repeat} (all runs in brackets). Server CPU: backends of the database, per job.",
        "",
        "| handler | finished jobs | drain, jobs/s | ratio to none | server CPU, us/job | ratio to none |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for handler in a.handlers:
        base = results[(handler, "none")]
        base_rate = statistics.median(f["rate"] for f in base)
        base_cpu = statistics.median(f["server_us"] for f in base)
        for setup in SETUPS:
            runs = results[(handler, setup)]
            rate = statistics.median(f["rate"] for f in runs)
            cpu = statistics.median(f["server_us"] for f in runs)
            all_rates = ", ".join(f"{f['rate']:,.0f}" for f in runs)
            lines.append(
                f"| `{handler}` | {setup} | {rate:,.0f} ({all_rates}) | {rate / base_rate:.2f} | {cpu:.1f} |"
                f" {cpu / base_cpu:.2f} |"
            )
    lines += [
        "",
        "Retention of the oldest day (a thirtieth of the finished jobs):",
        "",
        f"- history: `drop_history_partitions()` dropped its partition ({timings['history_rows']:,.0f} jobs) in"
        f" {timings['history']:.3f} s;",
        f"- jobs: one `DELETE` of the finished jobs of the oldest day ({timings['jobs_rows']:,.0f}) took"
        f" {timings['jobs']:.1f} s, and left them as dead rows for vacuum.",
        "",
    ]
    (HERE / "results" / "history.md").write_text("\n".join(lines))
    print("\n".join(lines))


def sizes(conn: psycopg.Connection) -> tuple[int, int, int, int]:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM supaworker.jobs),
                  pg_total_relation_size('supaworker.jobs'),
                  (SELECT count(*) FROM supaworker.job_history),
                  coalesce((SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i
                             WHERE i.inhparent = 'supaworker.job_history'::regclass), 0)"""
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def soak(a: argparse.Namespace) -> None:
    dsn = fresh_database(a.pg, "bench_history_soak")
    history = {
        "SUPAWORKER_HISTORY_AFTER_SECONDS": "5",
        "SUPAWORKER_HISTORY_PARTITION_SECONDS": "10",
        "SUPAWORKER_HISTORY_RETENTION_SECONDS": "60",
    }
    worker = [sys.executable, "-m", "supaworker", "worker", "--no-builtins", "--import", NOOP_MODULE]
    proc = subprocess.Popen(worker, env=env_for(dsn, **history))
    stop = threading.Event()

    def produce() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            tick = 0.1
            while not stop.is_set():
                began = time.monotonic()
                conn.execute(
                    "INSERT INTO supaworker.jobs (type) SELECT 'noop' FROM generate_series(1, %s)",
                    (max(1, round(a.rate * tick)),),
                )
                time.sleep(max(0.0, tick - (time.monotonic() - began)))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    samples: list[tuple[float, int, int, int, int]] = []
    began = time.monotonic()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.monotonic() - began < a.soak:
                time.sleep(15)
                samples.append((time.monotonic() - began, *sizes(conn)))
                s = samples[-1]
                print(f"{s[0]:5.0f} s: jobs {s[1]:,} rows {s[2] / 2**20:.1f} MiB, history {s[3]:,} rows"
                      f" {s[4] / 2**20:.1f} MiB", flush=True)  # fmt: skip
                if proc.poll() is not None:
                    sys.exit("the worker exited during the soak")
            queued = conn.execute(
                "SELECT max(id), count(*) FILTER (WHERE status IN ('pending', 'processing')) FROM supaworker.jobs"
            ).fetchone()
    finally:
        stop.set()
        producer.join()
        proc.terminate()
        proc.wait()
    later = [s for s in samples if s[0] >= 120]  # after the first two minutes: history has reached its size
    totals = [s[2] + s[4] for s in later]
    lines = [
        "# Size over a soak with history on",
        "",
        f"`bench/history.py --soak {a.soak} --rate {a.rate}`: {a.rate} jobs/s queued for {a.soak} s and run by one"
        " worker with history on (`SUPAWORKER_HISTORY_AFTER_SECONDS=5`, `..._PARTITION_SECONDS=10`,"
        " `..._RETENTION_SECONDS=60`; the leader moves and drops every 30 s). Sizes are tables with their indexes.",
        "",
        "| time | jobs, rows | jobs, MiB | job_history, rows | job_history, MiB | both, MiB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {t:.0f} s | {jr:,} | {jb / MIB:.1f} | {hr:,} | {hb / MIB:.1f} | {(jb + hb) / MIB:.1f} |"
        for t, jr, jb, hr, hb in samples
    ]
    lines += [
        "",
        f"From 120 s on: both together between {min(totals) / 2**20:.1f} and {max(totals) / 2**20:.1f} MiB;"
        f" first half's largest {max(totals[: len(totals) // 2]) / 2**20:.1f} MiB, second half's"
        f" {max(totals[len(totals) // 2 :]) / 2**20:.1f} MiB. Jobs queued: {queued[0] if queued else 0:,}; left"
        f" unfinished at the end: {queued[1] if queued else 0:,}.",
        "",
    ]
    (HERE / "results" / "history-soak.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--finished", type=int, default=30_000_000, help="finished jobs in history / in jobs")
    ap.add_argument("--jobs", type=int, default=20_000, help="jobs per drain")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--handlers", nargs="+", choices=("async", "def"), default=["async", "def"])
    ap.add_argument("--soak", type=float, help="seconds of the soak instead of the drains")
    ap.add_argument("--rate", type=int, default=500, help="jobs queued a second during the soak")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    a = ap.parse_args()
    if a.soak:
        soak(a)
    else:
        run_drains(a)


if __name__ == "__main__":
    main()
