"""What a claim that names its types costs, with the latest schema and with the schema before a migration.

    .venv/bin/python bench/claim_types.py [--before 18]

Two fresh databases, one migrated to the latest schema and one to the schema before migration `--before`
(0017: claims under limits start where the free types begin; 0018: every claim naming its types or queues
does). In each: 30,000 pending jobs spread over 1, 3 or 7 types, and no control, a pause on an unrelated
queue, or a limit on one of the types. Then cases with a backlog ahead: one type's 30,000 jobs ahead of
another's 15,000 with its limit reached (0017's case); 30,000 jobs of a type the worker does not run, or of
another queue than the one it names, ahead of its 15,000 (0018's cases). Then 60 claims (each followed by its
completion) by a worker naming its types. Prints the median claim time per database, alternating them three
times; last, bulk and single enqueue rates on each (what the claim indexes cost an enqueue).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import supaworker  # noqa: E402
from supaworker import sql  # noqa: E402
from supaworker.migrate import migrate  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432/"
SCHEMA = "supaworker"


def make(db: str, before: int | None) -> None:
    with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {db}")
    if before is None:
        migrate(SERVER + db, SCHEMA)
        return
    every = sql.migrations
    sql.migrations = lambda: [m for m in every() if m.version < before]  # type: ignore[assignment]
    try:
        migrate(SERVER + db, SCHEMA)
    finally:
        sql.migrations = every  # type: ignore[assignment]


def claims(db: str, types: int, control: str, size: int) -> float:
    """The median time, in ms, of a claim of `size` with `control` "none", "pause" (elsewhere), "limit" (on
    t0), "full" (t0's limit reached, its backlog ahead), "other" (a type not named, its backlog ahead), "named
    queue" (the claim names the queue of every job) or "queue" (another queue's backlog ahead)."""
    with psycopg.connect(SERVER + db, autocommit=True) as c:
        c.execute("TRUNCATE supaworker.jobs CASCADE")
        c.execute("DELETE FROM supaworker.job_controls")
        c.execute(
            "INSERT INTO supaworker.jobs (type) SELECT 't' || (g %% %s) FROM generate_series(1, 30000) g", (types,)
        )
        if control == "full":
            # t0's backlog ahead of everything, its limit reached: the claim can only take the others' jobs.
            c.execute("UPDATE supaworker.jobs SET type = 't0'")
            c.execute("INSERT INTO supaworker.jobs (type) SELECT 't1' FROM generate_series(1, 15000)")
            c.execute("SELECT supaworker.set_job_limits('t0', 1, NULL, NULL)")
            c.execute("SELECT id FROM supaworker.claim_jobs('other', ARRAY['t0'], 1, 3600)")
        elif control == "other":
            c.execute("UPDATE supaworker.jobs SET type = 'elsewhere'")
            c.execute("INSERT INTO supaworker.jobs (type) SELECT 't0' FROM generate_series(1, 15000)")
        elif control == "queue":
            c.execute("UPDATE supaworker.jobs SET queue = 'bulk'")
            c.execute("INSERT INTO supaworker.jobs (type) SELECT 't0' FROM generate_series(1, 15000)")
        elif control == "limit":
            c.execute("SELECT supaworker.set_job_limits('t0', 100000, NULL, NULL)")
        elif control == "pause":
            c.execute("SELECT supaworker.set_job_paused('queue', 'elsewhere', true)")
        c.execute("VACUUM ANALYZE supaworker.jobs")
        wanted = [f"t{i}" for i in range(types)]
        queues = ["default"] if control in ("queue", "named queue") else None
        times = []
        for i in range(60):
            start = time.perf_counter()
            rows = c.execute(
                "SELECT id, attempts FROM supaworker.claim_jobs_v2('w', %s, %s, 30, %s, 10, %s)",
                (wanted, size, queues, i * size),
            ).fetchall()
            times.append(time.perf_counter() - start)
            c.execute(
                "SELECT supaworker.complete_jobs('w', %s::bigint[], %s::int[], array_fill('{}'::jsonb, ARRAY[%s]))",
                ([r[0] for r in rows], [r[1] for r in rows], len(rows)),
            )
        return statistics.median(times) * 1000


def enqueue(db: str) -> tuple[float, float]:
    """Jobs/s of a bulk enqueue (create_jobs, 30,000) and of single enqueues (create_job, 1,000): what the
    claim indexes cost an enqueue."""
    with psycopg.connect(SERVER + db, autocommit=True) as c:
        c.execute("TRUNCATE supaworker.jobs CASCADE")
        jobs = [{"type": "t0", "payload": {"i": i}} for i in range(30_000)]
        start = time.perf_counter()
        supaworker.create_jobs(jobs, conn=c)
        bulk = len(jobs) / (time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(1000):
            supaworker.create_job("t0", {"i": i}, conn=c)
        return bulk, 1000 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=int, default=18, help="compare with the schema before this migration")
    before = parser.parse_args().before
    dbs = {f"bench_claim_types_{before - 1:04d}": before, "bench_claim_types_latest": None}
    for db, version in dbs.items():
        make(db, version)
    described = {
        "none": "no control",
        "pause": "a pause elsewhere",
        "limit": "a limit on t0",
        "full": "t0's 30,000 jobs ahead, its limit reached; 15,000 t1 jobs behind",
        "other": "30,000 jobs of a type not named ahead; 15,000 t0 jobs behind",
        "named queue": "no control, the claim names its queue",
        "queue": "30,000 jobs of another queue ahead; 15,000 t0 jobs of the queue named behind",
    }
    cases = [(types, control, 250) for types in (1, 3, 7) for control in ("none", "pause", "limit")]
    cases += [(types, "none", 10) for types in (1, 7)] + [
        (2, "full", 250),
        (1, "other", 250),
        (1, "other", 10),
        (3, "other", 10),
        (1, "named queue", 10),
        (3, "named queue", 10),
        (1, "queue", 10),
        (3, "queue", 250),
    ]
    for types, control, size in cases:
        runs = [(db, claims(db, types, control, size)) for db in list(dbs) * 3]
        cells = ", ".join(f"{db.rsplit('_', 1)[1]} {ms:.2f}" for db, ms in runs)
        print(f"{types} type(s), {described[control]}: claim of {size}, median ms: {cells}", flush=True)
    runs = [(db, enqueue(db)) for db in list(dbs) * 3]
    cells = ", ".join(f"{db.rsplit('_', 1)[1]} {bulk:,.0f} / {single:,.0f}" for db, (bulk, single) in runs)
    print(f"enqueue, jobs/s, bulk / single: {cells}")
    with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
        for db in dbs:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
