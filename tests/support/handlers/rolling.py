"""Handlers that the previous release's worker and this release's both load, `--import
tests.support.handlers.rolling` (tests/migration/test_rolling_upgrade.py).

They use only what the previous release already had (`supaworker.handler`; a Job's `id`, `attempt`,
`worker_id` and `payload`). Each run inserts a row into `public.rolling_runs` (made by the test) in a
transaction of its own, naming the release that ran it ($ROLLING_RELEASE), so runs are counted whatever the
jobs table says about them.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

import supaworker


@supaworker.handler("rolling_record")
def rolling_record(job: supaworker.Job) -> dict[str, Any]:
    release = os.environ["ROLLING_RELEASE"]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.rolling_runs (job_id, attempt, worker_id, release, enqueued_by)"
            " VALUES (%s, %s, %s, %s, %s)",
            (job.id, job.attempt, job.worker_id, release, job.payload["by"]),
        )
    time.sleep(float(job.payload.get("sleep", 0)))
    return {"ran_by": release}
