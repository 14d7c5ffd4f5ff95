"""Pure logic: the SQL catalogue, the handler registry, error text, log lines, job validation."""

from __future__ import annotations

import json
import logging
import os

import pytest

from supaworker import sql
from supaworker.errors import InvalidJob
from supaworker.log import JsonFormatter, TextFormatter
from supaworker.new_job import NewJob
from supaworker.registry import Registry
from supaworker.worker.executor import describe_error
from supaworker.worker.runner import new_worker_id


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in sql.migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_rendered_sql_quotes_the_schema_and_leaves_no_placeholders() -> None:
    queries = sql.Queries("My_Schema")
    assert '"My_Schema".claim_jobs' in queries.claim_jobs
    for migration in sql.migrations():
        assert "{{" not in sql.render(migration.text, "x")
    with pytest.raises(AttributeError, match="no query named 'nope'"):
        _ = queries.nope


def test_registry_knows_async_and_sync_handlers_and_last_registration_wins() -> None:
    registry = Registry()

    async def a(job: object) -> None: ...

    registry.register("t", lambda job: 1)
    registry.register("t", a, timeout=5)
    handler = registry.get("t")
    assert handler is not None and handler.is_async and handler.timeout_seconds == 5
    assert registry.types() == ["t"] and "t" in registry and len(registry) == 1
    with pytest.raises(ValueError, match="non-empty"):
        registry.register(" ", a)
    with pytest.raises(ValueError, match="positive"):
        registry.register("x", a, timeout=0)


def test_error_text_starts_with_type_and_message_then_the_traceback() -> None:
    try:
        raise KeyError("video_url")
    except KeyError as exc:
        text = describe_error(exc)
    first, *rest = text.splitlines()
    assert first == "KeyError: 'video_url'" and any("Traceback" in line for line in rest)


def record(**fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("supaworker.worker", logging.INFO, __file__, 1, "job completed", None, None)
    rec.__dict__.update(fields)
    return rec


def test_log_lines_carry_the_job_fields_as_text_or_json() -> None:
    text = TextFormatter().format(record(job_id=7, type="render", error="two words"))
    assert text.endswith('info supaworker.worker job completed job_id=7 type=render error="two words"')
    data = json.loads(JsonFormatter().format(record(job_id=7, attempt=2)))
    assert (data["msg"], data["level"], data["job_id"], data["attempt"]) == ("job completed", "info", 7, 2)


def test_new_job_fills_defaults_encodes_once_and_rejects_booleans_as_numbers() -> None:
    job = NewJob.build("t")
    assert (job.payload, job.payload_json, job.priority, job.max_attempts, job.queue) == ({}, "{}", 0, 3, "default")
    with pytest.raises(InvalidJob, match="priority"):
        NewJob.build("t", priority=True)
    with pytest.raises(InvalidJob, match="delay"):
        NewJob.build("t", delay=-1)
    with pytest.raises(TypeError, match="'prio'"):
        NewJob.build("t", prio=1)  # type: ignore[call-arg]


def test_worker_ids_made_in_the_same_millisecond_by_the_same_pid_differ() -> None:
    # Replicas of a container all run their worker as pid 1 and may start in the same millisecond: ids of
    # pid and time alone collided, and twins shared leases, start marks and rescues.
    ids = [new_worker_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"worker-{os.getpid()}-") for i in ids)  # what the supervisor's patterns match
    assert all(len(f"supaworker:{i}") <= 63 for i in ids)  # fits application_name (NAMEDATALEN - 1)
