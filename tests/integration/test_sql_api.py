"""The SQL API of migration 0008 (create_job, create_jobs, create_brief_with_job, get_job, get_brief,
list_briefs, cancel_job, cancel_brief), called as plain SQL: it accepts and rejects exactly what the Python API
does, with the same messages and fields, one list of cases for both."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

import supaworker
from supaworker import pipelines, rules
from supaworker.briefs import cancel_brief, create_brief_with_job, get_brief, list_briefs
from supaworker.errors import InvalidJob
from supaworker.store import Store

# The type PostgreSQL passes each create_job argument as (named notation: only the given ones are sent).
JOB_ARGUMENT_TYPES = {
    "type": "text",
    "payload": "jsonb",
    "priority": "bigint",
    "run_at": "timestamptz",
    "delay": "float8",
    "max_attempts": "bigint",
    "timeout": "float8",
    "brief_id": "uuid",
    "queue": "text",
    "unique_key": "text",
    "unique_for": "float8",
    "depends_on": "bigint[]",
}
BRIEF_ARGUMENT_TYPES = {
    "user_id": "text",
    "title": "text",
    "description": "text",
    "query": "text",
    "media_type": "text",
    "use_pipeline": "boolean",
    "steps": "text[]",
    "options": "jsonb",
    "priority": "bigint",
    "max_attempts": "bigint",
    "queue": "text",
}
CANCELLED = "<a cancelled job's id>"
EXISTING = "<an existing job's id>"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def nested_empty(depth: int, container: type = list) -> Any:
    """`depth` containers inside each other around nothing: the shortest document of that depth."""
    value: Any = container()
    for _ in range(depth - 1):
        value = [value] if container is list else {"a": value}
    return value


# create_job keyword arguments that every way in refuses, each with the field the error names.
REJECTED_JOBS: list[tuple[dict[str, Any], str | None]] = [
    ({"type": ""}, "type"),
    ({"type": "   "}, "type"),
    ({"type": "\u3000\t"}, "type"),
    ({"type": "t" * 129}, "type"),
    ({"type": None}, "type"),
    ({"type": "t", "queue": ""}, "queue"),
    ({"type": "t", "queue": "q" * 129}, "queue"),
    ({"type": "t", "queue": None}, "queue"),
    ({"type": "t", "payload": nested(65)}, "payload"),
    ({"type": "t", "payload": {"a": nested(64)}}, "payload"),
    ({"type": "t", "payload": nested_empty(65)}, "payload"),
    ({"type": "t", "payload": nested_empty(66)}, "payload"),
    ({"type": "t", "payload": nested_empty(65, dict)}, "payload"),
    ({"type": "t", "priority": 2**31}, "priority"),
    ({"type": "t", "priority": -(2**31) - 1}, "priority"),
    ({"type": "t", "priority": None}, "priority"),
    ({"type": "t", "max_attempts": 0}, "max_attempts"),
    ({"type": "t", "max_attempts": 2**31}, "max_attempts"),
    ({"type": "t", "max_attempts": None}, "max_attempts"),
    ({"type": "t", "timeout": 0}, "timeout"),
    ({"type": "t", "timeout": -1.5}, "timeout"),
    ({"type": "t", "timeout": float("inf")}, "timeout"),
    ({"type": "t", "timeout": float("nan")}, "timeout"),
    ({"type": "t", "timeout": 30 * 86_400 + 1}, "timeout"),
    ({"type": "t", "run_at": datetime(2030, 1, 1, tzinfo=UTC), "delay": 1}, "delay"),
    ({"type": "t", "run_at": datetime(1969, 12, 31, 23, 59, tzinfo=UTC)}, "run_at"),
    ({"type": "t", "run_at": datetime(9999, 1, 1, tzinfo=UTC)}, "run_at"),
    ({"type": "t", "delay": -1}, "delay"),
    ({"type": "t", "delay": float("inf")}, "delay"),
    ({"type": "t", "delay": 100 * 365 * 86_400 + 1}, "delay"),
    ({"type": "t", "unique_key": ""}, "unique_key"),
    ({"type": "t", "unique_key": "k" * 513}, "unique_key"),
    ({"type": "t", "unique_for": 10}, "unique_for"),
    ({"type": "t", "unique_key": "k", "unique_for": 0}, "unique_for"),
    ({"type": "t", "unique_key": "k", "unique_for": 100 * 365 * 86_400 + 1}, "unique_for"),
    ({"type": "t", "brief_id": uuid.UUID(int=12345)}, "brief_id"),
    ({"type": "t", "depends_on": [0]}, "depends_on"),
    ({"type": "t", "depends_on": [-5]}, "depends_on"),
    ({"type": "t", "depends_on": [None]}, "depends_on"),
    ({"type": "t", "depends_on": list(range(1, 1002))}, "depends_on"),
    ({"type": "t", "depends_on": [987654321]}, "depends_on"),
    ({"type": "t", "depends_on": [EXISTING, 987654321, 987654322]}, "depends_on"),
    ({"type": "t", "depends_on": [CANCELLED]}, "depends_on"),
    ({"type": "t", "depends_on": [EXISTING], "unique_key": "k"}, "unique_key"),
]

# ... and arguments every way in accepts, with what the job then holds.
ACCEPTED_JOBS: list[dict[str, Any]] = [
    {"type": "analysis"},
    {"type": " x ", "payload": {"video_url": "https://example.com/v.mp4"}, "priority": -(2**31)},
    {"type": "t", "payload": nested(64), "priority": 2**31 - 1, "max_attempts": 2**31 - 1, "queue": "q" * 128},
    {"type": "t", "payload": nested_empty(64)},
    {"type": "t", "payload": nested_empty(64, dict)},
    {"type": "t", "payload": [1, "two", None, True, 2.5], "timeout": 30 * 86_400, "delay": 0},
    {"type": "t", "payload": "just text", "run_at": datetime(1970, 1, 1, tzinfo=UTC)},
    {"type": "t", "run_at": datetime(9998, 12, 31, 23, 59, tzinfo=UTC), "delay": None},
    {"type": "t", "delay": 100 * 365 * 86_400},
    {"type": "t", "unique_key": "  ", "unique_for": 60},
    {"type": "t", "depends_on": [EXISTING, EXISTING]},
]


def stem(message: str) -> str:
    """A message without the value it echoes (Python writes `repr(value)`, SQL the value's own text)."""
    return message.rsplit(", not ", 1)[0]


def call(conn: psycopg.Connection, function: str, types: dict[str, str], kwargs: dict[str, Any]) -> Any:
    """`SELECT supaworker.<function>(name => value, ...)` with only the arguments given."""
    params = {name: Jsonb(value) if types[name] == "jsonb" else value for name, value in kwargs.items()}
    args = ", ".join(f"{name} => %({name})s::{types[name]}" for name in kwargs)
    return conn.execute(f"SELECT supaworker.{function}({args})", params).fetchone()[0]  # type: ignore[index]


def sql_error(conn: psycopg.Connection, function: str, types: dict[str, str], kwargs: dict[str, Any]) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        call(conn, function, types, kwargs)
    return caught.value


@pytest.fixture
def ids(store: Store) -> dict[str, int]:
    existing = supaworker.create_job("parent", store=store).id
    cancelled = supaworker.create_job("parent", store=store).id
    supaworker.cancel_job(cancelled, store=store)
    return {EXISTING: existing, CANCELLED: cancelled}


def with_ids(kwargs: dict[str, Any], ids: dict[str, int]) -> dict[str, Any]:
    if "depends_on" in kwargs and kwargs["depends_on"] is not None:
        return {**kwargs, "depends_on": [ids.get(ref, ref) for ref in kwargs["depends_on"]]}
    return kwargs


def case_id(case: Any) -> str:
    kwargs = case[0] if isinstance(case, tuple) else case
    return json.dumps(kwargs, default=str)[:60]


@pytest.mark.parametrize("case", REJECTED_JOBS, ids=case_id)
def test_sql_create_job_rejects_what_create_job_rejects_with_the_same_error(
    case: tuple[dict[str, Any], str | None], store: Store, conn: psycopg.Connection, ids: dict[str, int]
) -> None:
    kwargs, field = case
    kwargs = with_ids(kwargs, ids)
    with pytest.raises(InvalidJob) as python:
        supaworker.create_job(store=store, **kwargs)
    error = sql_error(conn, "create_job", JOB_ARGUMENT_TYPES, kwargs)
    assert error.sqlstate == "22023", error
    assert (error.diag.column_name, error.diag.message_detail) == (field, f"field: {field}" if field else None)
    assert (python.value.field, stem(str(python.value))) == (field, stem(error.diag.message_primary or ""))
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (2,)  # only the fixture's


@pytest.mark.parametrize("kwargs", ACCEPTED_JOBS, ids=case_id)
def test_sql_create_job_accepts_what_create_job_accepts_and_stores_the_same_job(
    kwargs: dict[str, Any], store: Store, conn: psycopg.Connection, ids: dict[str, int]
) -> None:
    kwargs = with_ids(kwargs, ids)
    if "unique_key" in kwargs:
        kwargs = {**kwargs, "unique_key": kwargs["unique_key"] + "-python"}
    python = supaworker.create_job(store=store, **kwargs).to_dict()
    if "unique_key" in kwargs:
        kwargs = {**kwargs, "unique_key": kwargs["unique_key"].replace("-python", "-sql")}
    sql = call(conn, "create_job", JOB_ARGUMENT_TYPES, kwargs)
    same = ("type", "queue", "status", "priority", "payload", "max_attempts", "timeout_seconds", "brief_id")
    assert {k: sql[k] for k in same} == json.loads(json.dumps({k: python[k] for k in same}, default=str))
    assert sql["depends_on"] == sorted(set(kwargs.get("depends_on") or []))
    assert sql["duplicate"] is False
    python_delay = datetime.fromisoformat(str(python["run_at"])) - datetime.fromisoformat(str(python["created_at"]))
    sql_delay = datetime.fromisoformat(sql["run_at"]) - datetime.fromisoformat(sql["created_at"])
    assert abs(python_delay - sql_delay) < timedelta(seconds=5)


def test_sql_create_job_reads_naturally_with_named_arguments(conn: psycopg.Connection) -> None:
    job = conn.execute(
        "SELECT supaworker.create_job(type => 'analysis', payload => '{\"video_url\": \"v\"}')"
    ).fetchone()
    assert job is not None
    assert job[0]["type"] == "analysis" and job[0]["payload"] == {"video_url": "v"} and job[0]["status"] == "pending"
    assert supaworker.get_job(job[0]["id"], conn=conn).payload == {"video_url": "v"}


def test_sql_create_job_returns_the_live_holder_of_a_unique_key(conn: psycopg.Connection) -> None:
    first = call(conn, "create_job", JOB_ARGUMENT_TYPES, {"type": "t", "unique_key": "order-1"})
    second = call(conn, "create_job", JOB_ARGUMENT_TYPES, {"type": "t", "unique_key": "order-1"})
    assert (second["id"], second["duplicate"], first["duplicate"]) == (first["id"], True, False)


def test_sql_create_job_with_depends_on_waits_for_its_parent(conn: psycopg.Connection, ids: dict[str, int]) -> None:
    child = call(conn, "create_job", JOB_ARGUMENT_TYPES, {"type": "t", "depends_on": [ids[EXISTING]]})
    assert (child["status"], child["depends_on"]) == ("waiting", [ids[EXISTING]])


def test_sql_create_job_commits_only_with_the_callers_transaction(db: str) -> None:
    with psycopg.connect(db) as conn:
        job = call(conn, "create_job", JOB_ARGUMENT_TYPES, {"type": "t"})
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM supaworker.jobs WHERE id = %s", (job["id"],)).fetchone() == (0,)
        job = call(conn, "create_job", JOB_ARGUMENT_TYPES, {"type": "t"})
    with psycopg.connect(db) as other:
        assert other.execute("SELECT status::text FROM supaworker.jobs WHERE id = %s", (job["id"],)).fetchone() == (
            "pending",
        )


# create_jobs batches every way in refuses (the message names the job and is the same everywhere).
REJECTED_BATCHES: list[list[Any]] = [
    [{"type": "a"}, {"type": ""}],
    [{"type": "a"}, "not a job"],
    [{"payload": {}}],
    [{"type": "a", "metadata": {"x": 1}}],
    [{"type": "a", "priority": "5"}],
    [{"type": "a", "priority": 1.5}],
    [{"type": "a", "priority": True}],
    [{"type": "a", "max_attempts": 0}],
    [{"type": "a", "queue": 7}],
    [{"type": "a", "payload": nested(65)}],
    [{"type": "a", "payload": nested_empty(65)}],
    [{"type": "a", "delay": 5}],
    [{"type": "a", "unique_key": "k"}],
    [{"type": "a", "key": "k"}, {"type": "b", "key": "k"}],
    [{"type": "a", "key": ""}],
    [{"type": "a", "depends_on": ["nobody"]}],
    [{"type": "a", "depends_on": [0]}],
    [{"type": "a", "depends_on": "1"}],
    [{"type": "a", "key": "a", "depends_on": ["b"]}, {"type": "b", "key": "b", "depends_on": ["a"]}],
    [{"type": "a", "depends_on": [987654321]}],
    [{"type": "a", "brief_id": "not-a-uuid"}],
    [{"type": "a", "brief_id": str(uuid.UUID(int=7))}],
]


@pytest.mark.parametrize("batch", REJECTED_BATCHES, ids=case_id)
def test_sql_create_jobs_rejects_what_create_jobs_rejects_with_the_same_message(
    batch: list[Any], store: Store, conn: psycopg.Connection
) -> None:
    with pytest.raises(InvalidJob) as python:
        supaworker.create_jobs(batch, store=store)
    with pytest.raises(psycopg.Error) as sql:
        conn.execute("SELECT supaworker.create_jobs(%s)", (Jsonb(batch),))
    assert sql.value.sqlstate == "22023"
    assert (stem(sql.value.diag.message_primary or ""), sql.value.diag.column_name) == (
        stem(str(python.value)),
        python.value.field,
    )
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (0,)


def test_sql_create_jobs_makes_a_graph_with_parents_before_children(conn: psycopg.Connection, store: Store) -> None:
    existing = supaworker.create_job("e", store=store).id
    batch = [
        {"type": "child", "key": "c", "depends_on": ["p", existing]},
        {"type": "parent", "key": "p", "payload": {"n": 1}, "run_at": "2030-01-01T00:00:00Z"},
        {"type": "alone", "priority": 3},
    ]
    child, parent, alone = conn.execute("SELECT supaworker.create_jobs(%s)", (Jsonb(batch),)).fetchone()[0]
    assert parent < child
    jobs = {j: supaworker.get_job(j, store=store) for j in (child, parent, alone)}
    assert (jobs[child].status, sorted(jobs[child].extra["depends_on"])) == ("waiting", sorted([parent, existing]))
    assert (jobs[parent].status, jobs[parent].payload, jobs[parent].run_at.year) == ("pending", {"n": 1}, 2030)
    assert (jobs[alone].priority, jobs[alone].type) == (3, "alone")


BRIEF = {"user_id": "user-1", "title": "My Video Project", "query": "Generate a video about AI", "media_type": "video"}

# create_brief_with_job keyword arguments every way in refuses, with the field named.
REJECTED_BRIEFS: list[tuple[dict[str, Any], str | None]] = [
    ({**BRIEF, "user_id": ""}, "user_id"),
    ({**BRIEF, "user_id": "u" * 256}, "user_id"),
    ({**BRIEF, "user_id": None}, "user_id"),
    ({**BRIEF, "title": "t" * 501}, "title"),
    ({**BRIEF, "description": "d" * 20_001}, "description"),
    ({**BRIEF, "query": " \n "}, "query"),
    ({**BRIEF, "query": None}, "query"),
    ({**BRIEF, "media_type": "film"}, "media_type"),
    ({**BRIEF, "media_type": None}, "media_type"),
    ({**BRIEF, "use_pipeline": None}, "use_pipeline"),
    ({**BRIEF, "steps": []}, "steps"),
    ({**BRIEF, "steps": ["analysis", " "]}, "steps"),
    ({**BRIEF, "steps": ["s" * 129]}, "steps"),
    ({**BRIEF, "steps": ["analysis"] * 51}, "steps"),
    ({**BRIEF, "options": ["not", "a", "mapping"]}, "options"),
    ({**BRIEF, "options": {"deep": nested(64)}}, "options"),
    ({**BRIEF, "priority": 2**31}, "priority"),
    ({**BRIEF, "max_attempts": 0}, "max_attempts"),
    ({**BRIEF, "queue": ""}, "queue"),
]


def brief_counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM supaworker.briefs), (SELECT count(*) FROM supaworker.jobs),"
        " (SELECT count(*) FROM supaworker.job_dependencies)"
    ).fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("case", REJECTED_BRIEFS, ids=case_id)
def test_sql_create_brief_with_job_rejects_what_python_rejects_and_writes_nothing(
    case: tuple[dict[str, Any], str | None], store: Store, conn: psycopg.Connection
) -> None:
    kwargs, field = case
    with pytest.raises(InvalidJob) as python:
        create_brief_with_job(store=store, **kwargs)
    error = sql_error(conn, "create_brief_with_job", BRIEF_ARGUMENT_TYPES, kwargs)
    assert error.sqlstate == "22023"
    assert (error.diag.column_name, error.diag.message_detail) == (field, f"field: {field}" if field else None)
    assert (python.value.field, stem(str(python.value))) == (field, stem(error.diag.message_primary or ""))
    assert brief_counts(conn) == (0, 0, 0)


# list_briefs keyword arguments every way in refuses, with the field named.
REJECTED_LISTS: list[tuple[dict[str, Any], str]] = [
    ({"status": "done"}, "status"),
    ({"limit": 0}, "limit"),
    ({"limit": rules.MAX_LIST_LIMIT + 1}, "limit"),
    ({"user_id": ""}, "user_id"),
]


@pytest.mark.parametrize("case", REJECTED_LISTS, ids=case_id)
def test_sql_list_briefs_rejects_what_python_rejects_with_the_same_error(
    case: tuple[dict[str, Any], str], store: Store, conn: psycopg.Connection
) -> None:
    kwargs, field = case
    with pytest.raises(InvalidJob) as python:
        list_briefs(store=store, **kwargs)
    types = {"status": "text", "limit": "integer", "user_id": "text"}
    args = ", ".join(f'"{name}" => %({name})s::{types[name]}' for name in kwargs)
    with pytest.raises(psycopg.Error) as sql:
        conn.execute(f"SELECT supaworker.list_briefs({args})", kwargs)
    assert sql.value.sqlstate == "22023"
    assert (sql.value.diag.column_name, sql.value.diag.message_detail) == (field, f"field: {field}")
    assert (python.value.field, stem(str(python.value))) == (field, stem(sql.value.diag.message_primary or ""))


# A cancel's reason every way in refuses (client.cancel_job, briefs.cancel_brief, cancel_job(), cancel_brief()).
REJECTED_REASONS: list[str | None] = ["", " \t", "r" * (rules.MAX_REASON_LENGTH + 1), "r" * 100_000, None]


def reason_id(reason: str | None) -> str:
    return "None" if reason is None else f"{len(reason)} characters {reason[:2]!r}"


@pytest.mark.parametrize("reason", REJECTED_REASONS, ids=reason_id)
def test_sql_cancel_job_rejects_the_reason_python_rejects_and_cancels_nothing(
    reason: str | None, store: Store, conn: psycopg.Connection
) -> None:
    job_id = supaworker.create_job("t", store=store).id
    with pytest.raises(InvalidJob) as python:
        supaworker.cancel_job(job_id, reason, store=store)
    with pytest.raises(psycopg.Error) as sql:
        conn.execute("SELECT supaworker.cancel_job(%s, %s)", (job_id, reason))
    assert sql.value.sqlstate == "22023"
    assert (sql.value.diag.column_name, sql.value.diag.message_detail) == ("reason", "field: reason")
    assert (python.value.field, str(python.value)) == ("reason", sql.value.diag.message_primary)
    assert conn.execute("SELECT status::text FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone() == ("pending",)


@pytest.mark.parametrize("reason", REJECTED_REASONS, ids=reason_id)
def test_sql_cancel_brief_rejects_the_reason_python_rejects_and_cancels_nothing(
    reason: str | None, store: Store, conn: psycopg.Connection
) -> None:
    brief_id = create_brief_with_job(store=store, **BRIEF).brief.id
    with pytest.raises(InvalidJob) as python:
        cancel_brief(brief_id, reason, store=store)
    with pytest.raises(psycopg.Error) as sql:
        conn.execute("SELECT supaworker.cancel_brief(%s, %s)", (brief_id, reason))
    assert sql.value.sqlstate == "22023"
    assert (sql.value.diag.column_name, sql.value.diag.message_detail) == ("reason", "field: reason")
    assert (python.value.field, str(python.value)) == ("reason", sql.value.diag.message_primary)
    assert conn.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'cancelled'").fetchone() == (0,)


def test_sql_cancel_takes_a_reason_at_the_limit_as_python_does(store: Store, conn: psycopg.Connection) -> None:
    reason = "r" * rules.MAX_REASON_LENGTH
    python_job, sql_job = (supaworker.create_job("t", store=store).id for _ in range(2))
    assert supaworker.cancel_job(python_job, reason, store=store) == "cancelled"
    assert conn.execute("SELECT supaworker.cancel_job(%s, %s)::text", (sql_job, reason)).fetchone() == ("cancelled",)
    brief_id = create_brief_with_job(store=store, **BRIEF).brief.id
    assert conn.execute("SELECT supaworker.cancel_brief(%s, %s)", (brief_id, reason)).fetchone() == (1,)
    rows = conn.execute(
        "SELECT last_error FROM supaworker.jobs WHERE id = ANY (%s) OR brief_id = %s", ([python_job, sql_job], brief_id)
    ).fetchall()
    assert rows == [(reason,)] * 3


@pytest.mark.parametrize("media_type", pipelines.MEDIA_TYPES)
@pytest.mark.parametrize("use_pipeline", [False, True])
def test_sql_create_brief_with_job_makes_the_brief_python_makes(
    media_type: str, use_pipeline: bool, store: Store, conn: psycopg.Connection
) -> None:
    kwargs = {**BRIEF, "media_type": media_type, "use_pipeline": use_pipeline, "options": {"style": "noir"}}
    python = create_brief_with_job(store=store, **kwargs).brief
    sql = call(conn, "create_brief_with_job", BRIEF_ARGUMENT_TYPES, kwargs)
    brief, first = sql["brief"], sql["job"]
    assert brief["pipeline"] == python.pipeline == list(pipelines.steps_for(media_type, use_pipeline))
    assert (brief["status"], brief["steps_total"], brief["use_pipeline"]) == (
        "pending",
        len(python.steps),
        use_pipeline,
    )
    assert first == brief["steps"][0]
    for sql_step, python_step in zip(brief["steps"], python.steps, strict=True):
        assert (sql_step["type"], sql_step["status"]) == (python_step.type, str(python_step.status))
        assert sql_step["payload"] == {**python_step.payload, "brief_id": brief["id"]}
    chain = [[]] + [[step["id"]] for step in brief["steps"][:-1]]
    assert [step["depends_on"] for step in brief["steps"]] == chain


def test_sql_create_brief_with_job_runs_its_own_steps_with_options(conn: psycopg.Connection) -> None:
    sql = call(conn, "create_brief_with_job", BRIEF_ARGUMENT_TYPES,
               {**BRIEF, "steps": ["analysis", "storyboard"], "options": {"fps": 24}, "queue": "media"})  # fmt: skip
    steps = sql["brief"]["steps"]
    assert [(s["type"], s["queue"], s["payload"]["fps"]) for s in steps] == [
        ("analysis", "media", 24),
        ("storyboard", "media", 24),
    ]
    assert sql["brief"]["use_pipeline"] is True


def test_sql_create_brief_with_job_is_all_or_nothing_in_the_callers_transaction(db: str) -> None:
    with psycopg.connect(db) as conn:
        call(conn, "create_brief_with_job", BRIEF_ARGUMENT_TYPES, {**BRIEF, "use_pipeline": True})
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            call(conn, "create_brief_with_job", BRIEF_ARGUMENT_TYPES, {**BRIEF, "steps": ["analysis", ""]})
        conn.rollback()
        assert brief_counts(conn) == (0, 0, 0)


def test_sql_pipelines_are_python_pipelines(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT media_type, steps FROM supaworker.pipelines()").fetchall()
    assert {media: tuple(steps) for media, steps in rows} == pipelines.PIPELINES
    assert tuple(media for media, _ in rows) == pipelines.MEDIA_TYPES
    for media in pipelines.MEDIA_TYPES:
        for use in (False, True):
            got = conn.execute("SELECT supaworker.brief_steps(%s, %s)", (media, use)).fetchone()
            assert got is not None and tuple(got[0]) == pipelines.steps_for(media, use)


def test_sql_get_job_get_brief_and_list_briefs_read_what_python_reads(store: Store, conn: psycopg.Connection) -> None:
    made = create_brief_with_job(store=store, **BRIEF, use_pipeline=True)
    other = create_brief_with_job(store=store, **{**BRIEF, "user_id": "user-2"})
    brief = conn.execute("SELECT supaworker.get_brief(%s)", (made.brief.id,)).fetchone()[0]
    python = get_brief(made.brief.id, store=store)
    assert (brief["id"], brief["status"], [s["id"] for s in brief["steps"]]) == (
        str(python.id),
        str(python.status),
        [s.id for s in python.steps],
    )
    job = conn.execute("SELECT supaworker.get_job(%s)", (made.job.id,)).fetchone()[0]
    assert (job["id"], job["type"], job["brief_id"]) == (made.job.id, "analysis", str(made.brief.id))
    assert conn.execute("SELECT supaworker.get_job(987654321), supaworker.get_brief(gen_random_uuid())").fetchone() == (
        None,
        None,
    )
    mine = conn.execute("SELECT supaworker.list_briefs(user_id => 'user-1')").fetchone()[0]
    everyone = conn.execute('SELECT supaworker.list_briefs("limit" => 1)').fetchone()[0]
    assert [b["id"] for b in mine] == [str(made.brief.id)] and "steps" not in mine[0]
    assert [b["id"] for b in everyone] == [str(other.brief.id)]
    for bad in ("status => 'done'", '"limit" => 0', "user_id => ''"):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute(f"SELECT supaworker.list_briefs({bad})")


SQL_API = ("create_job", "create_jobs", "create_brief_with_job", "get_job", "get_brief", "list_briefs")


def test_sql_api_is_executable_by_the_service_role_only(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT p.proname, has_function_privilege('service_role', p.oid, 'EXECUTE'),"
        " has_function_privilege('anon', p.oid, 'EXECUTE'), has_function_privilege('authenticated', p.oid, 'EXECUTE'),"
        " coalesce(p.proacl::text, '') ~ '(^|[{,])=X' "
        "FROM pg_proc p WHERE p.pronamespace = 'supaworker'::regnamespace AND p.proname = ANY(%s)",
        (list(SQL_API),),
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(SQL_API)
    assert {r[1:] for r in rows} == {(True, False, False, False)}
    for role in ("anon", "authenticated"):
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT supaworker.create_job(type => 'x')")
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE service_role")
        job = conn.execute("SELECT supaworker.create_job(type => 'x')").fetchone()
        assert job is not None and job[0]["status"] == "pending"


# Any mix of create_job's arguments that psycopg can send (PostgreSQL text holds no NUL or lone surrogate:
# those never reach a SQL function), around every bound the checks draw.
SENDABLE_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=4)
TEXTS = SENDABLE_TEXT | st.sampled_from(["", " ", "\u3000\t", "\x1c", "t" * 128, "t" * 129, " t "])
SECONDS = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2, 3_200_000_000)
BOUNDS_32 = st.sampled_from([-(2**31) - 1, -(2**31), 0, 2**31 - 1, 2**31])
RUN_ATS = st.none() | st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
JOB_KWARGS = st.fixed_dictionaries(
    {"type": st.just("t") | st.just("t") | TEXTS},
    optional={
        "queue": st.just("q") | TEXTS,
        "payload": st.none()
        | st.sampled_from([{}, [], "x", nested(64), nested(65), {"a": nested(64)}, nested_empty(64), nested_empty(65)]),
        "priority": st.none() | st.integers(-(2**31) - 2, 2**31 + 1) | BOUNDS_32,
        "max_attempts": st.none() | st.integers(-2, 5) | BOUNDS_32,
        "timeout": SECONDS,
        "delay": SECONDS,
        "run_at": RUN_ATS,
        "unique_key": st.none() | st.sampled_from(["", "  ", "k", "k" * 512, "k" * 513]),
        "unique_for": SECONDS,
        "depends_on": st.none() | st.lists(st.sampled_from([None, -1, 0, 10**12, 10**12 + 1]), max_size=3),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kwargs=JOB_KWARGS)
def test_sql_create_job_accepts_exactly_what_create_job_accepts(db_conn: psycopg.Connection, kwargs: dict) -> None:
    try:
        supaworker.create_job(conn=db_conn, **kwargs)
        python: InvalidJob | None = None
    except InvalidJob as exc:
        python = exc
    finally:
        db_conn.rollback()
    try:
        call(db_conn, "create_job", JOB_ARGUMENT_TYPES, kwargs)
        sql: psycopg.Error | None = None
    except psycopg.Error as exc:
        sql = exc
    finally:
        db_conn.rollback()
    assert (python is None) == (sql is None), (kwargs, python, sql)
    event("accepted" if python is None else f"rejected: {python.field}")
    if python is not None and sql is not None:
        assert sql.sqlstate == "22023", sql
        assert (python.field, stem(str(python))) == (sql.diag.column_name, stem(sql.diag.message_primary or ""))


@pytest.fixture
def db_conn(db: str) -> Iterator[psycopg.Connection]:
    """One connection in a transaction that each example rolls back: nothing accumulates between examples."""
    with psycopg.connect(db) as c:
        yield c
