"""The console's job search and bulk actions on a real database: every filter, paging across search windows
that finds each match exactly once, and bulk retry / cancel / delete that change exactly what the preview
counted, in batches, and nothing newer than the preview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from supaworker.bulk import bulk_action
from supaworker.errors import InvalidJob
from supaworker.job_search import JobFilter, JobSearch
from supaworker.store import Store

MIX = """
INSERT INTO supaworker.jobs (type, queue, status, last_error, completed_at, created_at)
SELECT CASE WHEN i %% 3 = 0 THEN 'render' ELSE 'analysis' END,
       CASE WHEN i %% 2 = 0 THEN 'media' ELSE 'default' END,
       CASE WHEN i %% 5 = 0 THEN 'failed' WHEN i %% 5 = 1 THEN 'completed' ELSE 'pending' END::supaworker.job_status,
       CASE WHEN i %% 5 = 0 THEN 'TimeoutError: took ' || i || ' s' END,
       CASE WHEN i %% 5 IN (0, 1) THEN now() END,
       now() - make_interval(mins => %(n)s - i)
  FROM generate_series(1, %(n)s) i
"""


def all_pages(search: JobSearch, flt: JobFilter, limit: int = 4) -> list[int]:
    seen: list[int] = []
    before = None
    for _ in range(1000):
        page = search.page(flt, before_id=before, limit=limit)
        seen += [r["id"] for r in page.rows]
        if page.next_before is None:
            return seen
        before = page.next_before
    raise AssertionError("paging did not end")


def expected(conn: psycopg.Connection, where: str, params: tuple = ()) -> list[int]:
    query = f"SELECT id FROM supaworker.jobs WHERE {where} ORDER BY id DESC"
    return [r[0] for r in conn.execute(query, params or None)]


@pytest.mark.parametrize("window", [7, 10_000])
def test_every_filter_pages_through_each_match_once(store: Store, conn: psycopg.Connection, window: int) -> None:
    conn.execute(MIX, {"n": 60})
    search = JobSearch(store, window=window)
    cases = [
        (JobFilter(), "true"),
        (JobFilter(status="failed"), "status = 'failed'"),
        (JobFilter(status="pending", type="render"), "status = 'pending' AND type = 'render'"),
        (JobFilter(status="completed"), "status = 'completed'"),
        (JobFilter(type="render", queue="media"), "type = 'render' AND queue = 'media'"),
        (JobFilter(error="TIMEOUTerror: took 1"), "last_error ILIKE '%%timeouterror: took 1%%'"),
        (
            JobFilter(created_after=datetime.now(UTC) - timedelta(minutes=10)),
            "created_at >= now() - interval '10 minutes'",
        ),
    ]
    for flt, where in cases:
        assert all_pages(search, flt) == expected(conn, where), flt


def test_brief_and_user_filters_find_their_jobs(store: Store, conn: psycopg.Connection) -> None:
    conn.execute(MIX, {"n": 10})
    brief = conn.execute(
        "INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline)"
        " VALUES ('ada', 'q', 'text', '{analysis}') RETURNING id"
    ).fetchone()[0]
    conn.execute("UPDATE supaworker.jobs SET brief_id = %s WHERE id IN (2, 5, 7)", (brief,))
    search = JobSearch(store, window=3)
    assert all_pages(search, JobFilter(brief_id=brief)) == [7, 5, 2]
    assert all_pages(search, JobFilter(user_id="ada", status="failed")) == [5]
    assert all_pages(search, JobFilter(user_id="nobody")) == []


def test_a_page_that_ran_out_of_window_says_where_it_stopped(store: Store, conn: psycopg.Connection) -> None:
    conn.execute(MIX, {"n": 30})
    page = JobSearch(store, window=10).page(JobFilter(type="render", queue="media"), limit=50)
    assert [r["id"] for r in page.rows] == [30, 24]
    assert page.searched_to == page.next_before == 21
    assert "10 newest jobs" in page.scope


def test_bad_filters_name_the_field() -> None:
    for values, field in [
        ({"status": "done"}, "status"),
        ({"brief_id": "nope"}, "brief_id"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"type": "x" * 129}, "type"),
        ({"error": "a\x00b"}, "error"),
        ({"queue": 5}, "queue"),
    ]:
        with pytest.raises(InvalidJob) as caught:
            JobFilter.parse(values)
        assert caught.value.field == field, values
    assert JobFilter.parse({"created_before": "2030-01-01T00:00"}).created_before == datetime(2030, 1, 1, tzinfo=UTC)
    assert JobFilter.parse({"status": "", "type": "  "}) == JobFilter()


def test_bulk_retry_changes_exactly_what_the_preview_counted_and_nothing_newer(
    store: Store, conn: psycopg.Connection
) -> None:
    conn.execute(MIX, {"n": 1500})  # 300 failed: batches of 500 ids within windows of candidates
    flt = JobFilter(status="failed", type="render")
    preview = bulk_action(store, "retry", flt=flt, preview=True)
    assert preview.count == 100 and preview.complete
    failed_render = set(expected(conn, "status = 'failed' AND type = 'render'"))
    conn.execute(MIX, {"n": 15})  # newer failed render jobs, created after the preview
    newer = set(expected(conn, "status = 'failed' AND type = 'render'")) - failed_render
    run = bulk_action(store, "retry", flt=flt, through_id=preview.through_id)
    assert run.count == 100
    assert set(expected(conn, "status = 'failed' AND type = 'render'")) == newer
    retried = conn.execute(
        "SELECT count(*) FROM supaworker.jobs WHERE id = ANY(%s) AND status = 'pending'", (list(failed_render),)
    ).fetchone()[0]
    assert retried == 100
    assert bulk_action(store, "retry", flt=flt, through_id=preview.through_id, preview=True).count == 0


def test_bulk_cancel_and_delete_by_ids_change_only_jobs_in_their_states(store: Store, conn: psycopg.Connection) -> None:
    conn.execute(MIX, {"n": 10})  # 1, 6 completed; 5, 10 failed; the rest pending
    assert bulk_action(store, "cancel", ids=[1, 2, 3, 5], preview=True).count == 2
    assert bulk_action(store, "cancel", ids=[1, 2, 3, 5]).count == 2
    assert expected(conn, "status = 'cancelled'") == [3, 2]
    # A finished parent that an unfinished job depends on is kept: the child reads its result.
    conn.execute("INSERT INTO supaworker.job_dependencies (job_id, depends_on) VALUES (4, 6)")
    assert bulk_action(store, "delete", ids=[1, 2, 4, 6, 10], preview=True).count == 3
    assert bulk_action(store, "delete", ids=[1, 2, 4, 6, 10]).count == 3
    assert expected(conn, "true") == [9, 8, 7, 6, 5, 4, 3]


def test_bulk_rejects_an_unknown_action_and_too_many_ids(store: Store) -> None:
    with pytest.raises(InvalidJob) as caught:
        bulk_action(store, "explode", ids=[1])
    assert caught.value.field == "action"
    with pytest.raises(InvalidJob) as caught:
        bulk_action(store, "retry", ids=list(range(1, 502)))
    assert caught.value.field == "ids"
