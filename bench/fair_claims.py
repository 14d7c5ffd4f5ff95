"""What a fair-share claim costs as more tenants wait, with the latest schema and with the schema before a
migration.

    .venv/bin/python bench/fair_claims.py [--before 20]

Two fresh databases, one migrated to the latest schema and one to the schema before migration `--before`
(0020: claims take turns round the tenants instead of reading every waiting tenant's key and sharing each
claim among all of them). In each: 50,000 pending jobs of 1, 100 or 5,000 tenants (10 each for 5,000). Then
100 claims of 10 or of 250 in one session, each followed by its completion, as a worker makes them. Prints
the median claim time per database, alternating them three times (medians of the three medians).
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

import supaworker
from claim_types import SERVER, make


def claims(db: str, tenants: int, size: int) -> float:
    """The median time, in ms, of 100 claims of `size` with 50,000 jobs over `tenants` waiting."""
    with psycopg.connect(SERVER + db, autocommit=True) as c:
        c.execute("TRUNCATE supaworker.jobs CASCADE")
        per = max(10, 50_000 // tenants)
        jobs = [{"type": "t", "fairness_key": f"tenant-{t:04}"} for t in range(tenants) for _ in range(per)]
        supaworker.create_jobs(jobs, conn=c)
        c.execute("VACUUM ANALYZE supaworker.jobs")
        times = []
        for i in range(100):
            start = time.perf_counter()
            rows = c.execute(
                "SELECT id, attempts FROM supaworker.claim_jobs_v2('w', ARRAY['t'], %s, 30, NULL, 10, %s)",
                (size, i * size),
            ).fetchall()
            times.append(time.perf_counter() - start)
            c.execute(
                "SELECT supaworker.complete_jobs('w', %s::bigint[], %s::int[], array_fill('{}'::jsonb, ARRAY[%s]))",
                ([r[0] for r in rows], [r[1] for r in rows], len(rows)),
            )
        return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=int, default=20, help="compare with the schema before this migration")
    before = parser.parse_args().before
    dbs = {f"bench_fair_claims_{before - 1:04d}": before, "bench_fair_claims_latest": None}
    for db, version in dbs.items():
        make(db, version)
    cases = [(tenants, size) for tenants in (1, 100, 5000) for size in (10, 250)]
    results: dict[tuple[str, int, int], list[float]] = {}
    for rep in range(3):
        order = list(dbs) if rep % 2 == 0 else list(reversed(dbs))
        for tenants, size in cases:
            for db in order:
                results.setdefault((db, tenants, size), []).append(claims(db, tenants, size))
    names = list(dbs)
    print(f"median claim time, ms (medians of 3 alternating runs): {names[0]} | {names[1]}")
    for tenants, size in cases:
        old, new = (statistics.median(results[(db, tenants, size)]) for db in names)
        print(f"  {tenants:>5} tenant(s), claims of {size:>3}: {old:6.2f} | {new:6.2f}  ({old / new:4.1f}x)")
    with psycopg.connect(SERVER + "postgres", autocommit=True) as admin:
        for db in dbs:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
