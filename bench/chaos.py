"""Chaos run: real workers killed at random and a PostgreSQL crash in the middle, then every job accounted for.

    .venv/bin/python bench/chaos.py [--jobs 20000] [--workers 4] [--seconds 300] [--out chaos]
                                    [--history] [--tenants 100]

On a private PostgreSQL cluster of its own (it is crashed with `pg_ctl stop -m immediate`), 4 workers
(`supaworker worker -c 10`, default prefetch, lease 5 s) drain `tracked` jobs (tests/support/handlers/faults.py: each
records when its handler began and when it finished). Every 2-5 s one worker, chosen at random, is SIGKILLed
and started again 1 s later; once half the jobs are done the server is crashed and started again.

It prints (and writes to bench/results/<out>.json and .md):
- lost: jobs not completed at the end (must be 0);
- run twice: jobs whose handler finished more than once (at least once: allowed, but each must have first
  finished on a worker that was killed before its completion was recorded);
- failed without a handler failure: the handler never fails here, so any failed job was failed by the queue
  (must be 0);
- charged without a recorded start: attempts charged beyond the handler starts the jobs recorded. A kill can
  land between the worker recording a start and the handler's first line (a job starting at that instant,
  charged like the running ones), so up to 10 (the concurrency) per kill are allowed; a prefetched job charged
  for its worker's death would show here by the hundred;
- deadlocks: pg_stat_database.deadlocks over the run, across the crash (must be 0).

With `--history`, finished jobs move to job_history (migration 0019) while all this goes on: the workers run
with SUPAWORKER_HISTORY_AFTER_SECONDS=0 and 2-second partitions, and a mover of its own runs
archive_finished_jobs() every 0.2 s on top of the leader's, across the kills and the crash; every figure is
then read from jobs_with_history. With `--tenants N` the jobs are dealt round N fairness keys, so every claim
takes turns round them (migration 0020).
Exit status 0 when all of that holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from tests.faults.harness import Fleet, enqueue_effects, prepare_effects, worker_env  # noqa: E402
from tests.servers import PrivateCluster  # noqa: E402

from supaworker.migrate import migrate  # noqa: E402

RESULTS = REPO / "bench" / "results"
JOBS = {False: "supaworker.jobs", True: "supaworker.jobs_with_history"}  # where the jobs are read, by --history
ENV = {
    "SUPAWORKER_RESCUE_INTERVAL_SECONDS": "1",
    "SUPAWORKER_RETRY_BASE_SECONDS": "0.5",
    "SUPAWORKER_RETRY_CAP_SECONDS": "5",
    "WORKER_POLL_INTERVAL_MS": "200",
}


def one(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    for _ in range(100):
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute(sql, params).fetchone()
                return row[0] if row else None
        except psycopg.OperationalError:
            time.sleep(0.2)  # the server may be recovering from the crash
    raise RuntimeError(f"database unreachable for: {sql}")


def deadlocks(url: str) -> int:
    return int(one(url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300, help="give up after this long")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default="chaos")
    parser.add_argument("--history", action="store_true", help="move finished jobs to job_history meanwhile")
    parser.add_argument("--tenants", type=int, default=1, help="deal the jobs round this many fairness keys")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    cluster = PrivateCluster(max_connections=200).init()
    fleet = Fleet()
    killed: dict[int, float] = {}  # pid -> when
    began = time.monotonic()
    try:
        url = cluster.create_database("chaos")
        migrate(url, "supaworker")
        prepare_effects(url)
        enqueue_effects(url, args.jobs, max_attempts=3, job_type="tracked", tenants=args.tenants, sleep=0.005)
        history = {"SUPAWORKER_HISTORY_AFTER_SECONDS": "0", "SUPAWORKER_HISTORY_PARTITION_SECONDS": "2"}
        env = worker_env(url, url, **ENV, **(history if args.history else {}))
        stop_moving, mover_errors = threading.Event(), list[str]()
        if args.history:
            threading.Thread(target=keep_moving, args=(url, stop_moving, mover_errors), daemon=True).start()
        worker_args = ["-c", "10", "--lease-seconds", "5"]
        for i in range(args.workers):
            fleet.start(env, *worker_args, name=f"w{i}")
        deadlocks_before, deadlocks_seen = deadlocks(url), 0
        crashed = False
        next_kill = time.monotonic() + rng.uniform(2, 5)
        restarts: list[tuple[float, str]] = []
        while time.monotonic() - began < args.seconds:
            done = one(url, f"SELECT count(*) FROM {JOBS[args.history]} WHERE status IN ('completed', 'failed')")
            if done >= args.jobs:
                break
            now = time.monotonic()
            if not crashed and done >= args.jobs // 2:
                deadlocks_seen += deadlocks(url) - deadlocks_before
                cluster.stop("immediate")
                time.sleep(2)
                cluster.start()
                deadlocks_before = deadlocks(url)  # statistics start over after a crash
                crashed = True
                print(f"{now - began:6.1f}s  crashed PostgreSQL (immediate stop, start after 2 s) at {done} done")
            if now >= next_kill:
                victim = rng.choice([w for w in fleet.workers if w.proc.poll() is None])
                victim.signal(signal.SIGKILL)
                victim.proc.wait(10)
                killed[victim.pid] = now
                restarts.append((now + 1, victim.name))
                print(f"{now - began:6.1f}s  SIGKILL {victim.name} (pid {victim.pid}) at {done} done")
                next_kill = now + rng.uniform(2, 5)
            for due, name in [r for r in restarts if r[0] <= now]:
                restarts.remove((due, name))
                fleet.start(env, *worker_args, name=f"{name}.")
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        deadlocks_seen += deadlocks(url) - deadlocks_before
        stop_moving.set()
        figures = account(url, args.jobs, killed, JOBS[args.history])
        figures.update(
            jobs=args.jobs,
            workers=args.workers,
            kills=len(killed),
            postgres_crashes=int(crashed),
            deadlocks=deadlocks_seen,
            seconds=round(elapsed, 1),
        )
        if args.history:
            figures["moved_to_history"] = one(url, "SELECT count(*) FROM supaworker.job_history")
            figures["history_partitions"] = one(url, "SELECT count(*) FROM supaworker.history_ranges()")
            figures["mover_errors"] = len(mover_errors)
            for error in sorted(set(mover_errors)):
                print(f"mover error: {error}")
    finally:
        fleet.stop_all()
        cluster.destroy()
    ok = (
        figures["lost"] == 0
        and figures["failed_without_handler_failure"] == 0
        and figures["charged_without_recorded_start"] <= 10 * figures["kills"]
        and figures["deadlocks"] == 0
        and figures["run_twice_not_on_a_killed_worker"] == 0
        and not figures.get("mover_errors")
    )
    figures["ok"] = ok
    write(args.out, figures)
    print(json.dumps(figures))
    return 0 if ok else 1


def keep_moving(url: str, stop: threading.Event, errors: list[str]) -> None:
    """A second mover of finished jobs beside the leader's, that outlives the crash; any other error is kept."""
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                while not stop.is_set():
                    conn.execute("SELECT supaworker.archive_finished_jobs(0, 500, 2)")
                    time.sleep(0.2)
        except psycopg.OperationalError:
            time.sleep(0.2)  # the crash
        except psycopg.Error as exc:
            errors.append(str(exc).strip())
            time.sleep(0.2)


def account(url: str, jobs: int, killed: dict[int, float], table: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        completed, failed = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')"
            f" FROM {table}"
        ).fetchone()  # type: ignore[misc]
        twice = conn.execute(
            """SELECT job_id, array_agg(pid ORDER BY at) FROM public.test_effects
                GROUP BY job_id HAVING count(*) > 1"""
        ).fetchall()
        charged = conn.execute(
            f"""SELECT coalesce(sum(greatest(0, j.attempts - s.n)), 0) FROM {table} j
                 JOIN (SELECT job_id, count(*) AS n FROM public.test_starts GROUP BY job_id) s ON s.job_id = j.id"""
        ).fetchone()[0]  # type: ignore[index]
        never = conn.execute(
            f"SELECT count(*) FROM {table} j WHERE j.attempts > 0"
            " AND NOT EXISTS (SELECT 1 FROM public.test_starts s WHERE s.job_id = j.id)"
        ).fetchone()[0]  # type: ignore[index]
    not_killed = [job_id for job_id, pids in twice if pids[0] not in killed]
    return {
        "completed": completed,
        "lost": jobs - completed,
        "run_twice": len(twice),
        "run_twice_not_on_a_killed_worker": len(not_killed),
        "failed_without_handler_failure": failed,
        "charged_without_recorded_start": int(charged) + int(never),
    }


def write(name: str, figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in figures.items())
    (RESULTS / f"{name}.md").write_text(
        "# Chaos run\n\n`.venv/bin/python bench/chaos.py` (see its docstring)\n\n| figure | value |\n|---|---:|\n"
        + rows
        + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
