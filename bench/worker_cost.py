"""What one no-op job costs supaworker: worker CPU and server CPU per job over a long drain.

    .venv/bin/python bench/worker_cost.py --jobs 100000 --prefetch 500 [--processes 1] [--concurrency 10]
    .venv/bin/python bench/worker_cost.py --jobs 20000 --compare-limit 500 --repeat 3
    .venv/bin/python bench/worker_cost.py --jobs 20000 --compare-handlers --repeat 3

Queues `--jobs` no-op jobs with `create_jobs` on a fresh database (`bench_worker_cost`), starts the worker
processes, and waits until every job is completed. Prints jobs/s (the database's clock: first start to last
completion), the worker processes' CPU per job (start-up included) and the server CPU per job (backends of
that database, as in the peer benchmark). Run it before and after a change to see what the change is worth;
it is the figure the side-by-side benchmark cannot give, because it does not measure the clients' CPU.

`--compare-limit N` drains the same queue with no limit and with a global max_running of N for the type, in
one run, interleaved (`--repeat` times each), and prints the medians and their ratio (limited / unlimited;
results also in bench/results/limit.md): what setting a limit costs a drain that stays under it.

`--compare-handlers` drains with an `async def` no-op handler, a plain `def` one (run in a thread) and a `def`
one registered `inline=True` (run on the event loop), interleaved, and prints what
each job cost besides the rate: the worker's context switches (all its threads) and the round trips the
worker made for it (`claim_jobs_v2` and `complete_jobs` calls, from pg_stat_user_functions); results also in
bench/results/def_handlers.md.
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
from supaworker import client as supaworker_client

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "peers"))
from measure import DbCpu, proc_stat  # noqa: E402

DB = "bench_worker_cost"
HANDLER_TYPES = {"async": "noop", "def": "noop_def", "inline": "noop_inline"}


@supaworker.handler("noop")
async def noop(job: supaworker.Job) -> None:
    return None


@supaworker.handler("noop_def")
def noop_def(job: supaworker.Job) -> None:
    return None


@supaworker.handler("noop_inline", inline=True)
def noop_inline(job: supaworker.Job) -> None:
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--prefetch", type=int, help="default: the worker's own")
    ap.add_argument(
        "--handler", choices=HANDLER_TYPES, default="async", help="the no-op handler's kind (inline: def, inline=True)"
    )
    ap.add_argument(
        "--limit", type=int, help="a global max_running for the type (the claim then takes its limits path)"
    )
    ap.add_argument("--compare-limit", type=int, metavar="N", help="drains without a limit and with max_running N")
    ap.add_argument("--compare-handlers", action="store_true", help="drains with async def, def and inline handlers")
    ap.add_argument("--repeat", type=int, default=3, help="drains of each kind with --compare-limit/-handlers")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    a = ap.parse_args()
    if a.compare_handlers:
        compare_handlers(a)
        return
    if not a.compare_limit:
        print(describe(a, a.limit, drain(a, a.limit)))
        return

    rates: dict[int | None, list[float]] = {None: [], a.compare_limit: []}
    for _ in range(a.repeat):
        for limit in rates:
            figures = drain(a, limit)
            print(describe(a, limit, figures), flush=True)
            rates[limit].append(figures["rate"])
    plain, limited = statistics.median(rates[None]), statistics.median(rates[a.compare_limit])
    summary = (
        f"# A limit set, same run\n\n`bench/worker_cost.py --jobs {a.jobs} --compare-limit {a.compare_limit}"
        f" --repeat {a.repeat}`: {a.jobs:,} no-op {a.handler} jobs, {a.processes} x concurrency {a.concurrency},"
        f" prefetch {a.prefetch or 'default'}, drains interleaved; medians (all runs).\n\n"
        "| drain | jobs/s |\n|---|---:|\n"
        f"| no limit | {plain:,.0f} ({', '.join(f'{r:,.0f}' for r in rates[None])}) |\n"
        f"| max_running {a.compare_limit} | {limited:,.0f} ({', '.join(f'{r:,.0f}' for r in rates[a.compare_limit])})"
        f" |\n\nratio limited / no limit: **{limited / plain:.2f}**\n"
    )
    (HERE / "results" / "limit.md").write_text(summary)
    print(summary)


def compare_handlers(a: argparse.Namespace) -> None:
    runs: dict[str, list[dict[str, float]]] = {"async": [], "def": [], "inline": []}
    for _ in range(a.repeat):
        for handler in runs:
            a.handler = handler
            figures = drain(a, None)
            print(describe(a, None, figures), flush=True)
            runs[handler].append(figures)

    def median(handler: str, key: str) -> float:
        return statistics.median(f[key] for f in runs[handler])

    rows = [
        ("jobs/s", "rate", ",.0f"),
        ("worker CPU, us/job", "worker_us", ".1f"),
        ("worker context switches / job", "switches", ".2f"),
        ("claims / 1,000 jobs", "claims", ".1f"),
        ("completion writes / 1,000 jobs", "completions", ".1f"),
        ("server CPU, us/job", "server_us", ".1f"),
    ]
    table = "".join(
        f"| {label} | {' | '.join(f'{median(kind, key):{fmt}}' for kind in runs)} |\n" for label, key, fmt in rows
    )
    summary = (
        f"# `def` and `async def` handlers, same run\n\n`bench/worker_cost.py --jobs {a.jobs} --processes {a.processes}"
        f" --compare-handlers"
        f" --repeat {a.repeat}`: {a.jobs:,} no-op jobs, {a.processes} x concurrency {a.concurrency}, prefetch"
        f" {a.prefetch or 'default'}, drains interleaved; medians.\n\n| | async def | def | def, inline=True |\n"
        f"|---|---:|---:|---:|\n{table}\n"
        f"ratio def / async def: **{median('def', 'rate') / median('async', 'rate'):.2f}**; def with inline=True /"
        f" async def: **{median('inline', 'rate') / median('async', 'rate'):.2f}**\n"
    )
    (HERE / "results" / "def_handlers.md").write_text(summary)
    print(summary)


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of a process so far."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def drain(a: argparse.Namespace, limit: int | None) -> dict[str, float]:
    """Queues the jobs on a fresh database, sets the limit, and drains them with new worker processes."""
    supaworker_client.close()  # its pool's connections are to the database dropped below
    with psycopg.connect(a.pg + "postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        admin.execute(f"ALTER DATABASE {DB} SET track_functions = 'pl'")
    dsn = a.pg + DB
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "LOG_LEVEL": "warning",
        "ENABLE_HEALTH_CHECK": "false",
        "SUPAWORKER_MAINTENANCE": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]),
    }
    subprocess.run([sys.executable, "-m", "supaworker", "migrate"], env=env, check=True, capture_output=True)
    os.environ["DATABASE_URL"] = dsn
    job_type = HANDLER_TYPES[a.handler]
    supaworker.create_jobs([{"type": job_type}] * a.jobs)
    if limit:
        supaworker.set_limits(job_type, max_running=limit)

    worker = [sys.executable, "-m", "supaworker", "worker", "--no-builtins", "--import", "worker_cost"]
    worker += ["--concurrency", str(a.concurrency)] + (["--prefetch", str(a.prefetch)] if a.prefetch else [])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE supaworker.jobs")
        pid, dbname = conn.execute("SELECT pg_backend_pid(), current_database()").fetchone()  # type: ignore[misc]
        server = DbCpu(proc_stat(pid)[0], dbname, exclude=pid)
        procs = [subprocess.Popen(worker, env=env) for _ in range(a.processes)]
        try:
            count = "SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'"
            while conn.execute(count).fetchone() != (a.jobs,):  # type: ignore[comparison-overlap]
                if any(p.poll() is not None for p in procs):
                    sys.exit("a worker exited before the queue was drained")
                time.sleep(0.1)
            worker_ticks = sum(proc_stat(p.pid)[1] for p in procs)
            switches = sum(context_switches(p.pid) for p in procs)
            server_s = server.read()
            rate, extra = conn.execute(
                "SELECT count(*) / extract(epoch FROM max(completed_at) - min(started_at)),"
                " sum(attempts) - count(*) FROM supaworker.jobs"
            ).fetchone()  # type: ignore[misc]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
            server.close()
        # The workers' sessions report their function calls when they end.
        time.sleep(0.6)
        calls = dict(
            conn.execute(
                "SELECT funcname, calls FROM pg_stat_user_functions"
                " WHERE funcname IN ('claim_jobs_v2', 'complete_jobs')"
            ).fetchall()
        )
    per_job = 1e6 / a.jobs
    return {
        "switches": switches / a.jobs,
        "claims": calls.get("claim_jobs_v2", 0) * 1000 / a.jobs,
        "completions": calls.get("complete_jobs", 0) * 1000 / a.jobs,
        "rate": float(rate),
        "worker_us": worker_ticks / os.sysconf("SC_CLK_TCK") * per_job,
        "server_us": server_s * per_job,
        "extra": float(extra),
    }


def describe(a: argparse.Namespace, limit: int | None, f: dict[str, float]) -> str:
    return (
        f"{a.jobs:,} {a.handler} jobs, {a.processes} x concurrency {a.concurrency}, prefetch {a.prefetch or 'default'}"
        f"{f', limit {limit}' if limit else ''}: "
        f"{f['rate']:,.0f} jobs/s, worker CPU {f['worker_us']:.1f} us/job, "
        f"server CPU {f['server_us']:.1f} us/job, extra attempts {f['extra']:.0f}"
    )


if __name__ == "__main__":
    main()
