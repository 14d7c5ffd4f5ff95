"""What a claim that names its types costs, with the latest schema and with the schema before a migration.

    .venv/bin/python bench/claim_types.py [--before 18]

Two fresh databases, one migrated to the latest schema and one to the schema before migration `--before`
(0017: claims under limits start where the free types begin; 0018: every claim naming its types does). In
each: 30,000 pending jobs spread over 1, 3 or 7 types, and no control, a pause on an unrelated queue, or a
limit on one of the types. Then two cases with a backlog ahead: one type's 30,000 jobs ahead of another's
15,000 with its limit reached (0017's case), and 30,000 jobs of a type the worker does not run ahead of its
15,000 (0018's case). Then 60 claims (each followed by its completion) by a worker naming its types. Prints
the median claim time per database, alternating them three times.
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
    t0), "full" (t0's limit reached, its backlog ahead) or "other" (a type not named, its backlog ahead)."""
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
        elif control == "limit":
            c.execute("SELECT supaworker.set_job_limits('t0', 100000, NULL, NULL)")
        elif control == "pause":
            c.execute("SELECT supaworker.set_job_paused('queue', 'elsewhere', true)")
        c.execute("VACUUM ANALYZE supaworker.jobs")
        wanted = [f"t{i}" for i in range(types)]
        times = []
        for i in range(60):
            start = time.perf_counter()
            rows = c.execute(
                "SELECT id, attempts FROM supaworker.claim_jobs_v2('w', %s, %s, 30, NULL, 10, %s)",
                (wanted, size, i * size),
            ).fetchall()
            times.append(time.perf_counter() - start)
            c.execute(
                "SELECT supaworker.complete_jobs('w', %s::bigint[], %s::int[], array_fill('{}'::jsonb, ARRAY[%s]))",
                ([r[0] for r in rows], [r[1] for r in rows], len(rows)),
            )
        return statistics.median(times) * 1000


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
    }
    cases = [(types, control, 250) for types in (1, 3, 7) for control in ("none", "pause", "limit")]
    cases += [(types, "none", 10) for types in (1, 7)] + [
        (2, "full", 250),
        (1, "other", 250),
        (1, "other", 10),
        (3, "other", 10),
    ]
    for types, control, size in cases:
        runs = [(db, claims(db, types, control, size)) for db in list(dbs) * 3]
        cells = ", ".join(f"{db.rsplit('_', 1)[1]} {ms:.2f}" for db, ms in runs)
        print(f"{types} type(s), {described[control]}: claim of {size}, median ms: {cells}", flush=True)
    with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
        for db in dbs:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
