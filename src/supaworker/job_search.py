"""Finding jobs by status, type, queue, brief, user, error text and creation time, and acting on every match.

The console's job list and the bulk endpoints share one search, bounded on any table: it never examines more
than a window of candidate jobs per step, and every way in is an index.

- A brief (or a user's newest briefs) narrows the candidates to their jobs (jobs_brief_idx).
- failed, cancelled and waiting jobs are walked newest first through an index in id order
  (jobs_unsuccessful_id_idx, jobs_waiting_idx): every one is reachable however many there are.
- pending, processing and completed jobs are read through their status's own index when there are at most
  SEARCH_WINDOW of them (then all are candidates); a status with more is common enough to be found by the
  widest way in, the primary key walked backwards a window at a time.

A page lists the matches among one window's candidates; when the window holds fewer matches than a page,
the page says how far down it searched and the next page goes on from there (`next_before`). Bulk actions
walk the same windows (at most BULK_SCAN_ROWS candidates per request) and act on the matches in batches of
BULK_BATCH ids, one statement each, never one request per job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from .errors import InvalidJob
from .rules import MAX_BIGINT, MAX_TYPE_LENGTH, MAX_USER_ID_LENGTH
from .states import JobStatus
from .store import Store
from .validation import text_problem

SEARCH_WINDOW = 10_000  # candidate jobs examined per page at most
FIRST_CHUNK = 250  # candidates examined first; each further chunk is four times larger
PAGE_LIMIT = 50
PAGE_LIMIT_MAX = 200
TEXT_CHARS = 240  # payload and error text cut to this in lists (the job page shows them whole)
USER_BRIEFS_LIMIT = 100  # a user's newest briefs searched
BULK_BATCH = 500  # ids per statement of a bulk action
BULK_MAX_JOBS = 10_000  # jobs one bulk request acts on at most
BULK_SCAN_ROWS = 100_000  # candidate jobs one bulk request examines at most
ACTIONS = ("retry", "cancel", "delete")
DEFAULT_CANCEL_REASON = "cancelled by an operator (bulk)"

_ID_ORDERED = {"failed": "search_job_ids_unsuccessful", "cancelled": "search_job_ids_unsuccessful"}
_TEXT_LIMITS = {"type": MAX_TYPE_LENGTH, "queue": MAX_TYPE_LENGTH, "user_id": MAX_USER_ID_LENGTH, "error": 200}


def parse_time(field_name: str, value: str) -> datetime:
    """An ISO 8601 date-time; one without a zone (what a browser's datetime-local sends) is UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidJob(
            f"{field_name} must be an ISO 8601 date-time such as 2030-01-01T00:00:00Z, not {value!r}", field=field_name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not datetime(1, 1, 2, tzinfo=UTC) <= moment <= datetime(9999, 12, 30, tzinfo=UTC):
        raise InvalidJob(f"{field_name} must be between the years 1 and 9999", field=field_name)
    return moment


@dataclass(frozen=True)
class JobFilter:
    """What to look for; None means any. `error` matches part of the last error, ignoring case."""

    status: str | None = None
    type: str | None = None
    queue: str | None = None
    brief_id: UUID | None = None
    user_id: str | None = None
    error: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> JobFilter:
        """From query parameters or a JSON object; blank means any. Raises InvalidJob naming the bad field."""
        fields: dict[str, Any] = {}
        for name in ("status", "type", "queue", "brief_id", "user_id", "error", "created_after", "created_before"):
            value = values.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if not isinstance(value, str):
                raise InvalidJob(f"{name} must be a string", field=name)
            problem = text_problem(value)
            if problem:
                raise InvalidJob(f"{name} {problem}", field=name)
            if name == "status":
                if value not in JobStatus.__members__.values():
                    raise InvalidJob(f"status must be one of {', '.join(JobStatus)}, not {value!r}", field=name)
            elif name == "brief_id":
                try:
                    fields[name] = UUID(value.strip())
                except ValueError:
                    raise InvalidJob(f"brief_id must be a UUID, not {value!r}", field=name) from None
                continue
            elif name.startswith("created_"):
                fields[name] = parse_time(name, value)
                continue
            elif len(value) > _TEXT_LIMITS[name]:
                raise InvalidJob(f"{name} must be at most {_TEXT_LIMITS[name]} characters", field=name)
            fields[name] = value
        return cls(**fields)

    def to_query(self) -> dict[str, str]:
        """The filter as query parameters (for links), only the fields set."""
        out = {}
        for name, value in asdict(self).items():
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    @property
    def is_empty(self) -> bool:
        return not self.to_query()


@dataclass
class SearchPage:
    """One page of matches, newest first."""

    rows: list[dict[str, Any]]
    next_before: int | None  # the next page starts below this id; None: nothing further
    searched_to: int | None  # the page holds fewer matches than asked: jobs from here down are not yet searched
    scope: str  # what the search reads, in words


@dataclass
class BulkOutcome:
    """What a bulk action found (preview) or did (run)."""

    action: str
    count: int  # jobs that match and would change (preview) / that changed (run)
    matched: int  # jobs that matched when they were looked at
    complete: bool  # every candidate was examined (not stopped by BULK_MAX_JOBS or BULK_SCAN_ROWS)
    through_id: int  # jobs with higher ids were not considered (a run after a preview acts on the same range)
    searched_to: int | None = None  # when not complete: jobs below this id were not examined
    batches: int = 0
    limits: dict[str, int] = field(
        default_factory=lambda: {"max_jobs": BULK_MAX_JOBS, "scan_rows": BULK_SCAN_ROWS, "batch": BULK_BATCH}
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobSearch:
    """The search over one Store; each call borrows one connection for all its statements."""

    def __init__(self, store: Store, *, window: int = SEARCH_WINDOW) -> None:
        self.store = store
        self.window = window

    def page(self, flt: JobFilter, *, before_id: int | None = None, limit: int = PAGE_LIMIT) -> SearchPage:
        before = before_id if before_id is not None else MAX_BIGINT
        rows: list[dict[str, Any]] = []
        examined, chunk, cursor = 0, FIRST_CHUNK, before
        with self.store.connection() as conn:
            brief_ids = self._brief_ids(flt, conn)
            # Candidates are read and examined in growing chunks: a filter that matches often fills the page
            # from the first few hundred, and only a rare one pays for the whole window.
            while True:
                scan = min(chunk, self.window - examined)
                ids, exhausted, scope = self._candidates(flt, cursor, brief_ids, conn, scan)
                start, part_size = 0, FIRST_CHUNK
                while start < len(ids) and len(rows) <= limit:
                    part = ids[start : start + part_size]
                    params = self._params(flt, brief_ids, part, cursor, limit + 1 - len(rows), TEXT_CHARS)
                    rows += self.store.search_jobs(params, conn)
                    cursor, start, part_size = part[-1], start + len(part), part_size * 4
                examined += len(ids)
                if len(rows) > limit:
                    return SearchPage(rows[:limit], rows[limit - 1]["id"], None, scope)
                if exhausted or not ids:
                    return SearchPage(rows, None, None, scope)
                if examined >= self.window:
                    return SearchPage(rows, cursor, cursor, scope)
                chunk *= 4

    def bulk(
        self,
        action: str,
        flt: JobFilter,
        *,
        through_id: int | None = None,
        act: Callable[[list[int], psycopg.Connection], int] | None = None,
    ) -> BulkOutcome:
        """Counts (act None) or acts on every job matching `flt` that `action` would change, newest first,
        among jobs up to `through_id` (default: the newest now)."""
        with self.store.connection() as conn:
            top = through_id if through_id is not None else self.store.max_job_id(conn)
            outcome = BulkOutcome(action, 0, 0, True, top)
            brief_ids = self._brief_ids(flt, conn)
            before = min(top, MAX_BIGINT - 1) + 1
            examined = 0
            while True:
                ids, exhausted, _ = self._candidates(flt, before, brief_ids, conn)
                examined += len(ids)
                cursor = before
                while True:
                    room = BULK_MAX_JOBS - outcome.matched
                    params = self._params(flt, brief_ids, ids, cursor, min(BULK_BATCH, room), 0)
                    batch = self.store.search_job_ids_for_action({**params, "action": action}, conn)
                    if not batch:
                        break
                    outcome.matched += len(batch)
                    outcome.count += act(batch, conn) if act is not None else len(batch)
                    outcome.batches += 1
                    cursor = batch[-1]
                    if outcome.matched >= BULK_MAX_JOBS:
                        outcome.complete = False
                        outcome.searched_to = cursor
                        return outcome
                    if len(batch) < BULK_BATCH:
                        break
                if exhausted or not ids:
                    return outcome
                before = ids[-1]
                if examined >= BULK_SCAN_ROWS:
                    outcome.complete = False
                    outcome.searched_to = before
                    return outcome

    def eligible_ids(self, action: str, ids: list[int]) -> list[int]:
        """Which of `ids` the action would change."""
        params = self._params(JobFilter(), None, ids, MAX_BIGINT, len(ids), 0)
        return self.store.search_job_ids_for_action({**params, "action": action})

    # -- the ways in ---------------------------------------------------------------------------------
    def _brief_ids(self, flt: JobFilter, conn: psycopg.Connection) -> list[UUID] | None:
        if flt.brief_id is not None:
            return [flt.brief_id]
        if flt.user_id is not None:
            return self.store.search_user_brief_ids(flt.user_id, USER_BRIEFS_LIMIT, conn)
        return None

    def _candidates(
        self,
        flt: JobFilter,
        before: int,
        brief_ids: list[UUID] | None,
        conn: psycopg.Connection,
        scan: int | None = None,
    ) -> tuple[list[int], bool, str]:
        """Ids to examine below `before`, newest first (at most `scan` of them from an index in id order, all
        of a set no bigger than the window); whether they are all there is below `before`; the scope in words."""
        scan = scan or self.window
        if brief_ids is not None:
            found = self.store.search_job_ids_of_briefs(brief_ids, self.window, conn)
            if len(found) <= self.window:
                who = "this brief" if flt.brief_id is not None else f"the user's newest {USER_BRIEFS_LIMIT:,} briefs"
                return sorted((i for i in found if i < before), reverse=True), True, f"every job of {who}"
        elif flt.status in _ID_ORDERED or flt.status == "waiting":
            if flt.status == "waiting":
                ids = self.store.search_job_ids_waiting(before, scan, conn)
            else:
                ids = self.store.search_job_ids_unsuccessful(flt.status, before, scan, conn)
            return ids, len(ids) < scan, f"every {flt.status} job"
        elif flt.status is not None:
            found = self.store.search_job_ids_in_status(flt.status, self.window, conn)
            if len(found) <= self.window:
                return sorted((i for i in found if i < before), reverse=True), True, f"every {flt.status} job"
        ids = self.store.search_job_ids_recent(before, scan, conn)
        return ids, len(ids) < scan, f"the {self.window:,} newest jobs at a time"

    @staticmethod
    def _params(
        flt: JobFilter, brief_ids: list[UUID] | None, ids: list[int], before: int, limit: int, text_chars: int
    ) -> dict[str, Any]:
        return {
            "ids": ids,
            "before_id": before,
            "status": flt.status,
            "type": flt.type,
            "queue": flt.queue,
            "brief_ids": brief_ids,
            "error": flt.error,
            "created_after": flt.created_after,
            "created_before": flt.created_before,
            "limit": limit,
            "text_chars": text_chars,
            "action": None,  # a bulk action's search names it
        }
