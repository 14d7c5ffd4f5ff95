"""What a claim under a limit costs as the number of backlogged types grows, with and without migration 0017.

    .venv/bin/python bench/claim_types.py

Two fresh databases, one migrated to the latest schema and one to the schema before 0017. In each: 30,000
pending jobs spread over 1, 3 or 7 types; either a limit on one of the types (0017's path) or a pause on an
unrelated queue (controls present, no type of the claim limited: the scan as before). Last, the case 0017 is
for: one type's 30,000 jobs ahead of another's 15,000, its limit reached. Then 60 claims of 250 (each
followed by its completion) by a worker naming every type. Prints the median claim
time per database, alternating them twice.
"""

from __future__ import annotations

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


def make(db: str, before_0017: bool) -> None:
    with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {db}")
    if not before_0017:
        migrate(SERVER + db, SCHEMA)
        return
    every = sql.migrations
    sql.migrations = lambda: [m for m in every() if m.version < 17]  # type: ignore[assignment]
    try:
        migrate(SERVER + db, SCHEMA)
    finally:
        sql.migrations = every  # type: ignore[assignment]


def claims(db: str, types: int, control: str) -> float:
    """The median claim time, in ms, with `control` "pause" (elsewhere), "limit" (on t0) or "full" (t0's
    limit reached, its backlog ahead)."""
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
        elif control == "limit":
            c.execute("SELECT supaworker.set_job_limits('t0', 100000, NULL, NULL)")
        else:
            c.execute("SELECT supaworker.set_job_paused('queue', 'elsewhere', true)")
        c.execute("VACUUM ANALYZE supaworker.jobs")
        wanted = [f"t{i}" for i in range(types)]
        times = []
        for i in range(60):
            start = time.perf_counter()
            rows = c.execute(
                "SELECT id, attempts FROM supaworker.claim_jobs_v2('w', %s, 250, 30, NULL, 10, %s)", (wanted, i * 250)
            ).fetchall()
            times.append(time.perf_counter() - start)
            c.execute(
                "SELECT supaworker.complete_jobs('w', %s::bigint[], %s::int[], array_fill('{}'::jsonb, ARRAY[%s]))",
                ([r[0] for r in rows], [r[1] for r in rows], len(rows)),
            )
        return statistics.median(times) * 1000


def main() -> None:
    dbs = {"bench_claim_types_0016": True, "bench_claim_types_0017": False}
    for db, before in dbs.items():
        make(db, before)
    described = {
        "pause": "a pause elsewhere",
        "limit": "a limit on t0",
        "full": "t0's 30,000 jobs ahead, its limit reached; 15,000 t1 jobs behind",
    }
    cases = [(types, control) for types in (1, 3, 7) for control in ("pause", "limit")] + [(2, "full")]
    for types, control in cases:
        runs = [(db, claims(db, types, control)) for db in list(dbs) * 2]
        cells = ", ".join(f"{db[-4:]} {ms:.2f}" for db, ms in runs)
        print(f"{types} type(s), {described[control]}: claim of 250, median ms: {cells}")
    with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
        for db in dbs:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
