"""The application API: enqueue jobs, look them up, retry and cancel them.

Without `conn`, calls use a small pool on the configured database. With `conn` (a psycopg Connection)
they run inside the caller's own transaction: the job exists only if that transaction commits. With no
database URL but SUPABASE_URL (or SUPAWORKER_POSTGREST_URL) and the service-role key, `create_job` (and
`briefs.create_brief_with_job`) go through PostgREST to the same SQL functions (`supaworker.rpc`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Unpack, overload
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from . import validation
from .config import Settings, get_settings
from .db import probe, resolve_conninfo
from .dependencies import check_depends_on, check_parents, topological_order
from .errors import InvalidJob, InvalidTransition, JobNotFound
from .job import JobRecord
from .new_job import JOB_OPTIONS, JobOptions, NewJob
from .rules import KEY_MESSAGE, MAX_KEY_LENGTH, MAX_REASON_LENGTH
from .store import Store

_lock = threading.Lock()
_default_store: Store | None = None


def get_store(settings: Settings | None = None) -> Store:
    """The process-wide Store on the configured database (opened on first use)."""
    global _default_store
    with _lock:
        if _default_store is None:
            settings = settings or get_settings()
            profile = probe(resolve_conninfo(settings), settings.pooler_mode)
            pool = ConnectionPool(profile.conninfo, min_size=1, max_size=10, kwargs=profile.connect_kwargs, open=True)
            _default_store = Store(pool, settings.schema_name)
        return _default_store


def close() -> None:
    """Closes the default pool (tests and short scripts)."""
    global _default_store
    with _lock:
        if _default_store is not None and _default_store.pool is not None:
            _default_store.pool.close()
        _default_store = None


def _store_for(conn: psycopg.Connection | None, store: Store | None) -> Store:
    if store is not None:
        return store
    if conn is not None:
        return Store(None, get_settings().schema_name)
    return get_store()


def create_job(
    type: str,
    payload: Any = None,
    *,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
    **options: Unpack[JobOptions],
) -> JobRecord:
    """Enqueues one job and returns its row. `options` are those of `JobOptions`: priority, run_at or delay,
    max_attempts, timeout, brief_id, queue, unique_key and unique_for, depends_on.

    With `unique_key`, the database keeps one live job per key: while a job holding the key is waiting,
    pending, processing or completed (until pruned), a second create_job returns that job with
    `.duplicate` True and inserts nothing. A failed or cancelled holder gives the key up, and with
    `unique_for` (seconds) the key is held only that long after the holder was created.

    With `depends_on` (ids of existing jobs) it starts `waiting` and becomes runnable in the transaction that
    completes the last of them; if one fails for good it is cancelled with the reason. Unknown ids, and
    parents that already failed or were cancelled, are rejected (InvalidJob) before anything is written.
    """
    return enqueue(NewJob.build(type, payload, **options), conn=conn, store=store)


def enqueue(job: NewJob, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> JobRecord:
    """Writes one checked job (see `create_job`)."""
    if conn is None and store is None:
        settings = get_settings()
        if settings.uses_http:
            from . import rpc  # HTTP only: httpx stays out of processes that never use it

            return rpc.rpc_client_for(settings).create_job(job)
    s = _store_for(conn, store)
    check_briefs_exist(s, [job.brief_id], conn)
    if job.unique_key is not None:
        if job.depends_on:
            raise InvalidJob(
                "unique_key cannot be combined with depends_on (yet): give one or the other", field="unique_key"
            )
        return s.insert_unique_job(job, conn)
    if not job.depends_on:
        return s.insert_job(job, conn)
    parents = list(job.depends_on)
    with s.transaction(conn) as c:
        job = job.with_status(check_parents("the job", parents, s.lock_parent_jobs(parents, c)))
        record = s.insert_job(job, c)
        insert_dependencies(s, [(record.id, p) for p in parents], c)
    record.extra["depends_on"] = sorted(parents)
    return record


def check_briefs_exist(s: Store, brief_ids: Iterable[UUID | None], conn: psycopg.Connection | None) -> None:
    """Raises InvalidJob naming the first brief_id that is no brief (a job of a missing brief never shows)."""
    wanted = sorted({b for b in brief_ids if b is not None})
    if not wanted:
        return
    missing = set(wanted) - s.existing_brief_ids(wanted, conn)
    if missing:
        raise InvalidJob(f"brief_id {min(missing)} is no brief's id; create the brief first", field="brief_id")


def insert_dependencies(s: Store, pairs: list[tuple[int, int]], conn: psycopg.Connection) -> None:
    """Records dependency pairs; the database's own check (a cycle, a dead parent) becomes InvalidJob."""
    try:
        s.insert_job_dependencies(pairs, conn)
    except (psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation) as exc:
        raise InvalidJob(str(exc).splitlines()[0]) from None


@overload
def create_jobs(
    jobs: Iterable[Mapping[str, Any]],
    *,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
    return_records: Literal[False] = False,
) -> list[int]: ...


@overload
def create_jobs(
    jobs: Iterable[Mapping[str, Any]],
    *,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
    return_records: Literal[True],
) -> list[JobRecord]: ...


def create_jobs(
    jobs: Iterable[Mapping[str, Any]],
    *,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
    return_records: bool = False,
) -> list[int] | list[JobRecord]:
    """Enqueues many jobs in one round trip (COPY) and returns their ids, in order; with
    `return_records=True`, the JobRecords (as `create_job` returns one), read back in one more statement.

    Each item is a mapping with the keyword arguments of `create_job` (`type` required). An item may also
    have a `key` (a string unique in the batch), and its `depends_on` may name other items of the batch by
    key as well as existing jobs by id, so a whole graph is created at once (a cycle is rejected). Parents
    always get smaller ids than their children. All are validated before anything is written.
    """
    if not return_records:
        return _create_jobs(jobs, conn, store)
    s = _store_for(conn, store)
    with s.transaction(conn) as c:
        return s.get_jobs(_create_jobs(jobs, c, s), c)


def _create_jobs(jobs: Iterable[Mapping[str, Any]], conn: psycopg.Connection | None, store: Store | None) -> list[int]:
    items = list(jobs)
    s = _store_for(conn, store)
    if (conn is None or conn.autocommit) and not any(
        isinstance(job, Mapping) and ("key" in job or "depends_on" in job or job.get("brief_id")) for job in items
    ):
        # Validated while streamed into COPY: a bad job aborts the COPY, and with it the whole transaction,
        # so still nothing is written. (A caller's open transaction is validated first instead, below, so a
        # bad job never leaves that transaction aborted.)
        return s.insert_jobs((_bulk_row(index, job)[0] for index, job in enumerate(items)), conn, count=len(items))
    rows: list[NewJob] = []
    keys: list[str | None] = []
    seen_keys: set[str] = set()
    refs: list[list[int | str]] = []
    for index, job in enumerate(items):
        row, key, job_refs = _bulk_row(index, job)
        if key is not None:
            if key in seen_keys:
                raise InvalidJob(f"job #{index}: key {key!r} is used by more than one job")
            seen_keys.add(key)
        rows.append(row)
        keys.append(key)
        refs.append(job_refs)
    check_briefs_exist(s, [row.brief_id for row in rows], conn)
    if not any(refs):
        return s.insert_jobs(rows, conn)

    index_of = {key: i for i, key in enumerate(keys) if key is not None}
    edges: dict[int, list[int]] = {}
    for i, job_refs in enumerate(refs):
        for ref in job_refs:
            if isinstance(ref, str):
                if ref not in index_of:
                    raise InvalidJob(f"job #{i} depends on {ref!r}, which is no job's key in this batch")
                edges.setdefault(i, []).append(index_of[ref])
    order = topological_order(keys, edges)
    external = sorted({ref for job_refs in refs for ref in job_refs if isinstance(ref, int)})
    with s.transaction(conn) as c:
        statuses = s.lock_parent_jobs(external, c) if external else {}
        for i, job_refs in enumerate(refs):
            if job_refs:
                ids = [ref for ref in job_refs if isinstance(ref, int)]
                status = check_parents(f"job #{i}", ids, statuses)
                rows[i] = rows[i].with_status("waiting" if i in edges else status)
        ids_in_order = s.insert_jobs([rows[i] for i in order], c)
        id_of = dict(zip(order, ids_in_order, strict=True))
        pairs = [
            (id_of[i], id_of[index_of[ref]] if isinstance(ref, str) else ref)
            for i, job_refs in enumerate(refs)
            for ref in job_refs
        ]
        insert_dependencies(s, pairs, c)
    return [id_of[i] for i in range(len(rows))]


def _bulk_row(index: int, job: Any) -> tuple[NewJob, str | None, list[int | str]]:
    """One item of create_jobs, validated: (the job, its batch key, its depends_on references)."""
    if not isinstance(job, Mapping) or "type" not in job:
        raise InvalidJob(f"job #{index}: each job must be a mapping with a 'type'")
    fields = dict(job)
    unknown = sorted(str(name) for name in fields if name not in JOB_OPTIONS | {"type", "payload", "key"})
    if unknown:
        raise InvalidJob(f"job #{index}: unknown field {unknown[0]!r}")
    key = fields.pop("key", None)
    try:
        if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH):
            raise InvalidJob(KEY_MESSAGE)
        job_refs = check_depends_on(fields.pop("depends_on", None), allow_keys=True)
        new = NewJob.build(**fields)
    except TypeError as exc:
        raise InvalidJob(f"job #{index}: {exc}") from None
    except InvalidJob as exc:
        raise InvalidJob(f"job #{index}: {exc}") from None
    if new.delay:
        raise InvalidJob(f"job #{index}: bulk jobs take run_at, not delay")
    if new.unique_key is not None:
        # COPY cannot return the existing job for a duplicate key; create_job can.
        raise InvalidJob(f"job #{index}: bulk jobs take no unique_key; use create_job for unique jobs")
    return new, key, job_refs


def get_job(job_id: int, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> JobRecord:
    validation.check_job_id(job_id)
    job = _store_for(conn, store).get_job(job_id, conn)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    return job


def retry_job(job_id: int, *, conn: psycopg.Connection | None = None, store: Store | None = None) -> str:
    """Puts a failed or cancelled job back in the queue; returns its new status."""
    validation.check_job_id(job_id)
    s = _store_for(conn, store)
    status = s.retry_job(job_id, conn)
    if status is None:
        job = s.get_job(job_id, conn)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        if job.status in ("failed", "cancelled"):
            parents = s.lock_parent_jobs(job.extra.get("depends_on") or [], conn)
            dead = sorted(p for p, st in parents.items() if st in ("failed", "cancelled"))
            if dead:
                raise InvalidTransition(
                    f"job {job_id} depends on job {dead[0]}, which is {parents[dead[0]]}: retry job {dead[0]} "
                    "instead (its cancelled dependents come back with it)"
                )
        if s.moved_job_ids([job_id], conn):
            raise InvalidTransition(f"job {job_id} is {job.status} and has moved to history: it cannot be retried")
        raise InvalidTransition(f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried")
    return status


def cancel_job(
    job_id: int,
    reason: str = "cancelled by request",
    *,
    conn: psycopg.Connection | None = None,
    store: Store | None = None,
) -> str:
    """Cancels a job that has not finished, and every unfinished job that depends on it (directly or not)."""
    validation.check_job_id(job_id)
    validation.check_text("reason", reason, max_length=MAX_REASON_LENGTH)
    s = _store_for(conn, store)
    status = s.cancel_job(job_id, reason, conn)
    if status is None:
        job = s.get_job(job_id, conn)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        raise InvalidTransition(f"job {job_id} is already {job.status}")
    return status
