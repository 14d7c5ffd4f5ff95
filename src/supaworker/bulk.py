"""Retry, cancel or delete many jobs at once: the ones chosen by id, or every one matching a filter.

A preview counts what an action would change, without writing; a run acts in batches of BULK_BATCH ids, one
statement each (retry_jobs.sql, cancel_jobs.sql, delete_jobs.sql), each batch its own transaction, so no
request holds many locks for long. A run after a preview passes the preview's `through_id`, so jobs created
in between are left alone. What a run reports is what changed: a job that moved on in the meantime (a
failed job retried by someone else, a pending one that completed) is not counted.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from .errors import InvalidJob
from .job_search import ACTIONS, BULK_BATCH, DEFAULT_CANCEL_REASON, BulkOutcome, JobFilter, JobSearch
from .store import Store

MAX_IDS = BULK_BATCH  # ids one request may name (a page of the list, or a selection on it)


def _actor(store: Store, action: str, reason: str | None) -> Callable[[list[int], psycopg.Connection], int]:
    if action == "retry":
        return lambda ids, conn: store.retry_jobs(ids, conn)
    if action == "cancel":
        return lambda ids, conn: store.cancel_jobs(ids, reason or DEFAULT_CANCEL_REASON, conn)
    return lambda ids, conn: store.delete_jobs(ids, conn)


def bulk_action(
    store: Store,
    action: str,
    *,
    ids: list[int] | None = None,
    flt: JobFilter | None = None,
    through_id: int | None = None,
    reason: str | None = None,
    preview: bool = False,
) -> BulkOutcome:
    """Previews or runs `action` on the jobs named by `ids`, or else on every job matching `flt`."""
    if action not in ACTIONS:
        raise InvalidJob(f"action must be one of {', '.join(ACTIONS)}, not {action!r}", field="action")
    search = JobSearch(store)
    act = None if preview else _actor(store, action, reason)
    if ids is None:
        return search.bulk(action, flt or JobFilter(), through_id=through_id, act=act)
    if not 1 <= len(ids) <= MAX_IDS:
        raise InvalidJob(f"ids must name 1 to {MAX_IDS} jobs", field="ids")
    eligible = search.eligible_ids(action, sorted(set(ids)))
    outcome = BulkOutcome(action, 0, len(eligible), True, max(ids))
    if act is None:
        outcome.count = len(eligible)
    elif eligible:
        with store.connection() as conn:
            outcome.count = act(eligible, conn)
        outcome.batches = 1
    return outcome
