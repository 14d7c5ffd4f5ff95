"""What each console page costs the server with 10,000 and with 1,000,000 jobs in the table, in one run.

    .venv/bin/python bench/console_pages.py [--small 10000] [--large 1000000] [--rounds 7] [--out console]

Fills two fresh databases (`bench_console_small`, `bench_console_large`) with the same mix, generated in SQL
(`INSERT ... SELECT generate_series`): over the last two days, 82 % completed, 6 % failed, 2 % cancelled,
6 % pending (a third of them scheduled later), 2 % waiting, a constant 40 processing; 8 types (one rare),
3 queues, a brief (of 40 users) for every fifth job, failures with tracebacks. Then serves both with the
API and dashboard in this process (the change feed sampling as in production, the queues page's one-reading
cache off so every request pays for its sample) and times each page's request, interleaved between the two
databases, `--rounds` times after two warm-ups. Prints and writes bench/results/<out>.json and .md: the
median milliseconds per page for each size and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from supaworker.api import ApiSettings, create_app  # noqa: E402
from supaworker.dashboard import add_dashboard  # noqa: E402
from supaworker.dashboard.queue_stats import QueueStatsReader  # noqa: E402
from supaworker.migrate import migrate  # noqa: E402
from supaworker.store import Store  # noqa: E402

SCHEMA = "supaworker"
TYPES = ["analysis", "asset_prep", "video_generation", "image_processing", "text_analysis", "render", "email"]

FILL = """
INSERT INTO supaworker.briefs (id, user_id, title, query, media_type, pipeline, created_at)
SELECT md5('brief' || b)::uuid, 'user-' || (b %% 40), 'Brief ' || b, 'Make a video about topic ' || b,
       (ARRAY['video', 'image', 'audio', 'text'])[1 + b %% 4], '{analysis,render}',
       now() - make_interval(secs => 172800.0 * (%(n)s - b * 5) / %(n)s)
  FROM generate_series(1, %(n)s / 5) b;

INSERT INTO supaworker.jobs (type, queue, status, priority, payload, result, attempts, max_attempts, run_at,
                             last_error, errors, worker_id, lease_expires_at, brief_id, created_at, started_at,
                             completed_at, progress)
SELECT t.type, t.queue, t.status::supaworker.job_status, i %% 3,
       jsonb_build_object('i', i, 'query', 'make a video about topic ' || i, 'options', jsonb_build_object('w', 640)),
       CASE WHEN t.status = 'completed' THEN jsonb_build_object('ok', true, 'bytes', i) END,
       CASE WHEN t.status IN ('completed', 'processing') THEN 1 WHEN t.status = 'failed' THEN 3
            WHEN t.status = 'cancelled' THEN 1 ELSE 0 END,
       3,
       t.created + CASE WHEN t.status = 'pending' AND i %% 3 = 0 THEN interval '3 days' ELSE interval '0' END,
       CASE WHEN t.status = 'failed'
            THEN 'TimeoutError: job timed out after 30s' || E'\\nTraceback (most recent call last):\\n  line ' || i
            WHEN t.status = 'cancelled' THEN 'cancelled by request' END,
       CASE WHEN t.status = 'failed'
            THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'error', 'TimeoutError', 'at', t.created,
                                                      'worker_id', 'worker-1-1'))
            ELSE '[]'::jsonb END,
       CASE WHEN t.status IN ('processing', 'completed', 'failed')
            THEN 'worker-' || (100 + i %% 4) || '-1753344000000' END,
       CASE WHEN t.status = 'processing' THEN now() + interval '25 seconds' END,
       CASE WHEN i %% 5 = 0 THEN md5('brief' || (i / 5))::uuid END,
       t.created,
       CASE WHEN t.status IN ('processing', 'completed', 'failed', 'cancelled')
            THEN t.created + interval '2 seconds' END,
       CASE WHEN t.status IN ('completed', 'failed', 'cancelled')
            THEN t.created + make_interval(secs => 2 + i %% 17) END,
       CASE WHEN t.status = 'processing' THEN i %% 100 END
  FROM generate_series(1, %(n)s) i
 CROSS JOIN LATERAL (
   SELECT CASE WHEN i %% 997 = 0 THEN 'rare_report' ELSE (ARRAY[{types}])[1 + i %% 7] END AS type,
          (ARRAY['default', 'media', 'email'])[1 + i %% 3] AS queue,
          CASE WHEN i > %(n)s - 40 THEN 'processing'
               WHEN i %% 100 < 82 THEN 'completed' WHEN i %% 100 < 88 THEN 'failed'
               WHEN i %% 100 < 90 THEN 'cancelled' WHEN i %% 100 < 96 THEN 'pending'
               ELSE 'waiting' END AS status,
          now() - make_interval(secs => 172800.0 * (%(n)s - i) / %(n)s) - interval '20 seconds' AS created
 ) t;

INSERT INTO supaworker.periodic_jobs (name, cron, type)
VALUES ('nightly', '0 3 * * *', 'render'), ('hourly', '0 * * * *', 'email');
"""


def fill(admin_url: str, pg: str, name: str, n: int) -> str:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = pg + name
    migrate(url, SCHEMA)
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in FILL.split(";\n\n"):
            types = ", ".join(f"'{t}'" for t in TYPES)
            conn.execute(statement.replace("{types}", types), {"n": n})
        conn.execute("VACUUM ANALYZE supaworker.jobs")
        conn.execute("VACUUM ANALYZE supaworker.briefs")
        count = conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0]
    print(f"{name}: {count:,} jobs in {time.monotonic() - started:.0f} s", flush=True)
    return url


def pages(conn: psycopg.Connection) -> dict[str, str]:
    """The pages timed, with ids that exist in this database."""
    failed = conn.execute("SELECT max(id) FROM supaworker.jobs WHERE status = 'failed'").fetchone()[0]
    brief = conn.execute("SELECT id FROM supaworker.briefs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    return {
        "overview": "/test-worker",
        "jobs": "/test-worker/panels/jobs",
        "jobs: failed": "/test-worker/panels/jobs?status=failed",
        "jobs: failed of a type, older half": "/test-worker/panels/jobs?status=failed&type=render&before="
        + str(max(failed // 2, 1)),
        "jobs: completed of a type": "/test-worker/panels/jobs?status=completed&type=email",
        "jobs: rare type, error text": "/test-worker/panels/jobs?type=rare_report&error=timed%20out",
        "jobs: user, pending": "/test-worker/panels/jobs?user_id=user-7&status=pending",
        "jobs: created in an hour": "/test-worker/panels/jobs?created_after="
        + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 36 * 3600))
        + "&created_before="
        + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 35 * 3600)),
        "job": f"/test-worker/panels/jobs/{failed}",
        "briefs": "/test-worker/panels/briefs",
        "briefs: failed": "/test-worker/panels/briefs?status=failed",
        "brief": f"/test-worker/panels/briefs/{brief}",
        "queues": "/test-worker/panels/queues",
        "periodic": "/test-worker/panels/periodic",
        "workers": "/test-worker/panels/workers",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default="console")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    a = ap.parse_args()

    sizes = {"small": a.small, "large": a.large}
    urls = {size: fill(a.pg + "postgres", a.pg, f"bench_console_{size}", n) for size, n in sizes.items()}
    settings = ApiSettings(api_keys="bench", public_reads=True)
    clients, pools, paths = {}, [], {}
    for size, url in urls.items():
        pool = ConnectionPool(url, min_size=2, max_size=4, kwargs={"autocommit": True}, open=True)
        pools.append(pool)
        store = Store(pool, SCHEMA)
        app = create_app(store, settings, listen_conninfo=None)
        add_dashboard(app)
        app.state.queue_stats_reader = QueueStatsReader(store, max_age_seconds=0)
        clients[size] = TestClient(app).__enter__()
        with psycopg.connect(url) as conn:
            paths[size] = pages(conn)
    time.sleep(2)  # the change feed's first samples
    timings: dict[str, dict[str, list[float]]] = {name: {s: [] for s in sizes} for name in paths["small"]}
    for round_no in range(a.rounds + 2):
        for name in timings:
            for size in sizes:
                started = time.perf_counter()
                response = clients[size].get(paths[size][name])
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{name} ({size}): {response.status_code} {response.text[:300]}")
                if round_no >= 2:
                    timings[name][size].append(elapsed)
    rows = []
    for name, by_size in timings.items():
        small, large = statistics.median(by_size["small"]), statistics.median(by_size["large"])
        rows.append({"page": name, "small_ms": round(small, 2), "large_ms": round(large, 2),
                     "ratio": round(large / small, 2)})  # fmt: skip
    for client in clients.values():
        client.__exit__(None, None, None)
    for pool in pools:
        pool.close()
    result = {"small_jobs": a.small, "large_jobs": a.large, "rounds": a.rounds, "pages": rows}
    out = HERE / "results"
    (out / f"{a.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Console pages: median server time of {a.rounds} requests per page (after 2 warm-ups), "
        f"{a.small:,} vs {a.large:,} jobs, interleaved in one run.",
        "",
        f"| page | {a.small:,} jobs (ms) | {a.large:,} jobs (ms) | ratio |",
        "|---|---:|---:|---:|",
        *(f"| {r['page']} | {r['small_ms']} | {r['large_ms']} | {r['ratio']} |" for r in rows),
        "",
    ]
    (out / f"{a.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
