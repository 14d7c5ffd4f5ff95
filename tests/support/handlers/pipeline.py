"""Small handlers for the pipeline tests, loaded by worker subprocesses with `--import`.

Each records what it saw (its attempt and the upstream steps) and obeys directives in the job's `query`
(or `test`) payload field: `fail:TYPE` fails that step for good, `fail-once:TYPE` fails its first attempt
for good (a retry then succeeds), `slow:TYPE=SECONDS` sleeps first.
"""

from __future__ import annotations

import re
import time
from typing import Any

import supaworker
from supaworker import Job, UnrecoverableError
from supaworker.pipelines import JOB_TYPES

TEST_TYPES = ("part", "join", "leaf")


def _directives(job: Job) -> str:
    payload = job.payload if isinstance(job.payload, dict) else {}
    return f"{payload.get('query', '')} {payload.get('test', '')}"


def record(job: Job) -> dict[str, Any]:
    text = _directives(job)
    slow = re.search(rf"slow:{job.type}=([\d.]+)", text)
    if slow:
        time.sleep(float(slow.group(1)))
    if f"fail:{job.type}" in text.split():
        raise UnrecoverableError(f"{job.type} was told to fail")
    if f"fail-once:{job.type}" in text.split() and job.attempt == 1:
        raise UnrecoverableError(f"{job.type} was told to fail once")
    return {
        "step": job.type,
        "job_id": job.id,
        "attempt": job.attempt,
        "upstream": sorted(job.upstream),
        "upstream_ids": sorted(job.upstream_by_id),
        "upstream_steps": {t: r.get("job_id") for t, r in job.upstream.items() if isinstance(r, dict)},
    }


for _type in (*JOB_TYPES, *TEST_TYPES):
    supaworker.handler(_type)(record)
