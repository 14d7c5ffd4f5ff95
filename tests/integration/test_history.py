"""History (migration 0019): finished jobs move from jobs into job_history, whose partitions are dropped whole;
every reader of one job or one brief still finds a moved one."""

from __future__ import annotations

import json
import threading
from itertools import pairwise

import psycopg
import pytest
from fastapi.testclient import TestClient

import supaworker
from supaworker import BriefStatus
from supaworker.maintenance import HistoryConfig, HistoryKeeper, MaintenanceConfig, MaintenanceService
from supaworker.periodic import PeriodicRegistry
from supaworker.store import Store

from ..conftest import run_cli, subprocess_env
from ..support.api import AUTH, make_app

HOUR = 3600.0


def finish(conn: psycopg.Connection, ids: list[int], status: str, age: str, result: object = None) -> None:
    """Marks jobs finished `age` ago (as a worker's completion would, without one)."""
    conn.execute(
        "UPDATE supaworker.jobs SET status = %s::supaworker.job_status, completed_at = now() - %s::interval, "
        "started_at = now() - %s::interval, attempts = 1, result = %s::jsonb WHERE id = ANY(%s)",
        (status, age, age, json.dumps(result), ids),
    )


def where(conn: psycopg.Connection, ids: list[int]) -> dict[str, list[int]]:
    """Which table holds each of `ids`."""
    found: dict[str, list[int]] = {"jobs": [], "job_history": []}
    for table in found:
        rows = conn.execute(f"SELECT id FROM supaworker.{table} WHERE id = ANY(%s) ORDER BY id", (ids,))
        found[table] = [r[0] for r in rows]
    return found


def keeper(
    store: Store, after: float = HOUR, retention: float = 30 * 24 * HOUR, partition: float = 24 * HOUR
) -> HistoryKeeper:
    return HistoryKeeper(
        store, HistoryConfig(after_seconds=after, retention_seconds=retention, partition_seconds=partition)
    )


def test_finished_jobs_move_after_their_age_and_every_reader_still_finds_them(
    store: Store, conn: psycopg.Connection
) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 6, store=store)
    finish(conn, ids[0:3], "completed", "2 hours", result={"n": 1})
    finish(conn, ids[3:4], "failed", "2 hours")
    finish(conn, ids[4:5], "completed", "1 minute")  # finished, but not long enough ago
    assert keeper(store).run_once() == {"moved": 4, "partitions_dropped": 0, "analyzed": 0}
    assert where(conn, ids) == {"jobs": ids[4:], "job_history": ids[:4]}

    moved = supaworker.get_job(ids[0], store=store)
    assert (moved.id, moved.status, moved.result) == (ids[0], "completed", {"n": 1})
    assert supaworker.wait_for(ids[0], timeout=5, store=store) == {"n": 1}
    with pytest.raises(supaworker.JobFailed):
        supaworker.wait_for(ids[3], timeout=5, store=store)
    document = conn.execute("SELECT supaworker.get_job(%s)", (ids[1],)).fetchone()
    assert document is not None and document[0]["id"] == ids[1] and document[0]["depends_on"] == []
    assert keeper(store).run_once()["moved"] == 0  # nothing else is old enough


def test_a_finished_parent_stays_while_a_job_that_depends_on_it_is_unfinished(
    store: Store, conn: psycopg.Connection
) -> None:
    parent = supaworker.create_job("p", store=store).id
    child = supaworker.create_job("c", depends_on=[parent], store=store).id
    finish(conn, [parent], "completed", "2 hours", result={"from": "parent"})
    assert keeper(store).run_once()["moved"] == 0
    rows = conn.execute("SELECT type, result FROM supaworker.upstream_results(%s)", (child,)).fetchall()
    assert rows == [("p", {"from": "parent"})]  # the child can still be handed its parent's result
    finish(conn, [child], "completed", "2 hours")
    assert keeper(store).run_once()["moved"] == 2
    assert where(conn, [parent, child])["job_history"] == [parent, child]


def test_a_brief_stays_whole_until_its_last_step_finished_and_reads_the_same_once_moved(
    store: Store, conn: psycopg.Connection
) -> None:
    created = supaworker.create_brief_with_job(
        user_id="u1", query="q", media_type="audio", use_pipeline=True, store=store
    )
    steps = [s.id for s in created.brief.steps]
    finish(conn, steps[:-1], "completed", "3 hours", result={"step": "early"})
    assert keeper(store).run_once()["moved"] == 0  # its last step is still waiting
    finish(conn, steps[-1:], "completed", "2 hours", result={"step": "last"})
    before = supaworker.get_brief(created.brief.id, store=store)
    assert keeper(store).run_once()["moved"] == len(steps)
    assert where(conn, steps)["job_history"] == steps

    after = supaworker.get_brief(created.brief.id, store=store)
    assert after.status == BriefStatus.COMPLETED and after.result == {"step": "last"}
    assert [s.id for s in after.steps] == steps and after.steps_completed == len(steps)
    assert (after.completed_at, after.started_at) == (before.completed_at, before.started_at)
    listed = supaworker.list_briefs(user_id="u1", store=store)
    assert [(b.id, b.status) for b in listed] == [(created.brief.id, BriefStatus.COMPLETED)]
    document = conn.execute("SELECT supaworker.get_brief(%s)", (created.brief.id,)).fetchone()
    assert document is not None and [s["id"] for s in document[0]["steps"]] == steps


def partitions(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'supaworker.job_history'::regclass ORDER BY 1"
    )
    return [r[0] for r in rows]


def test_history_is_dropped_a_whole_partition_at_a_time_past_retention(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 6, store=store)
    for pair, age in zip((ids[0:2], ids[2:4], ids[4:6]), ("10 hours", "5 hours", "30 minutes"), strict=True):
        finish(conn, pair, "completed", age)
    hourly = keeper(store, after=0, retention=3 * HOUR, partition=HOUR)
    outcome = hourly.run_once()
    # Each pair is in an hour of its own; the two hours that ended over 3 hours ago are dropped at once.
    assert outcome == {"moved": 6, "partitions_dropped": 2, "analyzed": 1}
    assert where(conn, ids) == {"jobs": [], "job_history": ids[4:6]}
    (left,) = partitions(conn)
    assert left.startswith("job_history_")

    # A partition supaworker made is one of its own objects, secured like the others, and forgotten once dropped.
    owned = conn.execute(
        "SELECT count(*) FROM supaworker.owned_objects WHERE identity LIKE 'supaworker.job_history_%%'"
    ).fetchone()
    assert owned == (1,)
    security = conn.execute(
        "SELECT relrowsecurity, has_table_privilege('public', oid, 'SELECT') FROM pg_class WHERE relname = %s",
        (left,),
    ).fetchone()
    assert security == (True, False)
    assert store.history_partitions()[0]["name"] == left


def test_moving_history_while_workers_claim_and_complete_loses_and_repeats_nothing(
    db: str, conn: psycopg.Connection
) -> None:
    total = 3000
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 't' FROM generate_series(1, %s)", (total,))
    completed: list[int] = []
    errors: list[BaseException] = []
    claimers_done = threading.Event()

    def claim_and_complete(n: int) -> None:
        try:
            with psycopg.connect(db, autocommit=True) as c:
                while True:
                    rows = c.execute(
                        "SELECT id, attempts FROM supaworker.claim_jobs_v2(%s, ARRAY['t'], 25, 30)", (f"w{n}",)
                    ).fetchall()
                    if not rows:
                        return
                    ids, attempts = [r[0] for r in rows], [r[1] for r in rows]
                    c.execute(
                        "SELECT supaworker.complete_jobs(%s, %s, %s, %s)",
                        (f"w{n}", ids, attempts, [None] * len(ids)),
                    )
                    completed.extend(ids)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    def move() -> None:
        try:
            with psycopg.connect(db, autocommit=True) as c:
                while not claimers_done.is_set():
                    # One-second partitions: new ones are made while the claimers run.
                    c.execute("SELECT supaworker.archive_finished_jobs(0, 200, 1)")
        except BaseException as exc:
            errors.append(exc)

    claimers = [threading.Thread(target=claim_and_complete, args=(n,)) for n in range(4)]
    movers = [threading.Thread(target=move) for _ in range(2)]  # two leaders for a moment: SKIP LOCKED
    for t in [*claimers, *movers]:
        t.start()
    for t in claimers:
        t.join(120)
    claimers_done.set()
    for t in movers:
        t.join(120)
    assert not errors
    conn.execute("SELECT supaworker.archive_finished_jobs(0, %s, 1)", (total,))
    assert sorted(completed) == list(range(1, total + 1))  # each job completed exactly once
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM supaworker.jobs), count(*), count(DISTINCT id), "
        "count(*) FILTER (WHERE status = 'completed') FROM supaworker.job_history"
    ).fetchone()
    assert counts == (0, total, total, total)


def columns(conn: psycopg.Connection, relation: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (relation,),
    )
    return [(r[0], r[1]) for r in rows]


def test_history_and_its_view_have_the_columns_of_jobs_in_the_same_order(conn: psycopg.Connection) -> None:
    # A migration adding a column to jobs must add it here too: jobs move with INSERT ... SELECT *.
    jobs = columns(conn, "supaworker.jobs")
    assert columns(conn, "supaworker.job_history") == jobs
    assert columns(conn, "supaworker.jobs_with_history") == jobs


def test_the_leader_moves_jobs_instead_of_pruning_them_when_history_is_on(
    store: Store, conn: psycopg.Connection
) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 3, store=store)
    finish(conn, ids, "completed", "2 days")
    config = MaintenanceConfig(history=HistoryConfig(after_seconds=HOUR))
    done = MaintenanceService(store, "leader", config, periodic_registry=PeriodicRegistry()).tick()
    assert done["history"] == {"moved": 3, "partitions_dropped": 0, "analyzed": 0} and "pruned" not in done
    assert where(conn, ids)["job_history"] == ids


def test_the_cli_moves_and_lists_history_and_refuses_prune_options_with_history_on(
    db: str, store: Store, conn: psycopg.Connection
) -> None:
    ids = supaworker.create_jobs([{"type": "t"}] * 2, store=store)
    finish(conn, ids, "completed", "2 hours")
    env = subprocess_env(db, SUPAWORKER_HISTORY_AFTER_SECONDS="60")
    result = run_cli(db, "prune", env=env)
    assert result.returncode == 0 and "moved 2 finished jobs to history" in result.stdout, result.stderr
    listed = run_cli(db, "history", "--json", env=env)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1
    refused = run_cli(db, "prune", "--completed-after", "10", env=env)
    assert refused.returncode == 2 and "SUPAWORKER_HISTORY_RETENTION_SECONDS" in refused.stderr
    shown = run_cli(db, "show", str(ids[0]), env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "completed"


def test_the_rest_api_and_the_console_show_moved_jobs_and_briefs(store: Store, conn: psycopg.Connection) -> None:
    created = supaworker.create_brief_with_job(user_id="u2", query="q", media_type="text", store=store)
    (step,) = [s.id for s in created.brief.steps]
    finish(conn, [step], "completed", "2 hours", result={"summary": "moved"})
    assert keeper(store).run_once()["moved"] == 1
    with TestClient(make_app(store)) as api:
        job = api.get(f"/api/jobs/{step}", headers=AUTH)
        assert job.status_code == 200 and job.json()["job"]["result"] == {"summary": "moved"}
        brief = api.get(f"/api/briefs/{created.brief.id}", headers=AUTH)
        assert brief.status_code == 200 and brief.json()["brief"]["status"] == "completed"
        by_brief = api.get(f"/api/jobs?action=by_brief&brief_id={created.brief.id}", headers=AUTH).json()
        assert [j["id"] for j in by_brief["jobs"]] == [step]
    with TestClient(make_app(store, public_reads=True)) as console:
        job_page = console.get(f"/test-worker/jobs/{step}")
        assert job_page.status_code == 200 and "moved" in job_page.text
        brief_page = console.get(f"/test-worker/briefs/{created.brief.id}")
        assert brief_page.status_code == 200 and f"/test-worker/jobs/{step}" in brief_page.text


def test_a_moved_job_or_brief_cannot_be_retried_and_says_why(store: Store, conn: psycopg.Connection) -> None:
    job = supaworker.create_job("t", store=store).id
    created = supaworker.create_brief_with_job(user_id="u3", query="q", media_type="text", store=store)
    finish(conn, [job, *(s.id for s in created.brief.steps)], "failed", "2 hours")
    assert keeper(store).run_once()["moved"] == 2
    with pytest.raises(supaworker.InvalidTransition, match="has moved to history"):
        supaworker.retry_job(job, store=store)
    with pytest.raises(supaworker.InvalidTransition, match="moved to history"):
        supaworker.retry_brief(created.brief.id, store=store)
    assert where(conn, [job])["job_history"] == [job]  # and nothing came back to the queue
    # Its result would no longer reach a dependent: depending on it is refused, in Python and in SQL alike.
    with pytest.raises(supaworker.InvalidJob, match="finished and moved to history"):
        supaworker.create_job("child", depends_on=[job], store=store)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="finished and moved to history"):
        conn.execute("SELECT supaworker.create_job(type => 'child', depends_on => ARRAY[%s]::bigint[])", (job,))


def test_a_job_finished_at_minus_infinity_stays_and_the_others_move(store: Store, conn: psycopg.Connection) -> None:
    # Stored by plain SQL: it came first (the oldest), had no partition, and failed every move after it.
    odd, old = supaworker.create_jobs([{"type": "t"}] * 2, store=store)
    conn.execute("UPDATE supaworker.jobs SET status = 'completed', completed_at = '-infinity' WHERE id = %s", (odd,))
    finish(conn, [old], "completed", "2 hours")
    assert keeper(store).run_once()["moved"] == 1
    assert where(conn, [odd, old]) == {"jobs": [odd], "job_history": [old]}


def test_dropping_history_names_the_partitions_it_dropped(store: Store, conn: psycopg.Connection) -> None:
    ids = supaworker.create_jobs([{"type": "t"}], store=store)
    finish(conn, ids, "completed", "3 hours")
    assert store.archive_finished_jobs(0, 10, HOUR) == 1
    (name,) = partitions(conn)
    assert store.drop_history_partitions(HOUR) == [f"supaworker.{name}"]
    assert partitions(conn) == []


def test_a_new_partition_length_fills_the_gaps_between_the_old_partitions(
    store: Store, conn: psycopg.Connection
) -> None:
    first = supaworker.create_jobs([{"type": "t"}] * 2, store=store)
    finish(conn, first, "completed", "30 hours")
    assert store.archive_finished_jobs(0, 10, HOUR) == 2  # an hour's partition, 30 hours ago
    # Then a day's length: jobs around that hour and a day later go to ranges cut short where they would overlap.
    later = supaworker.create_jobs([{"type": "t"}] * 4, store=store)
    for job, age in zip(later, ("31 hours", "30 hours", "29 hours", "2 hours"), strict=True):
        finish(conn, [job], "completed", age)
    assert store.archive_finished_jobs(0, 10, 24 * HOUR) == 4
    assert where(conn, first + later)["jobs"] == []
    ranges = conn.execute("SELECT starts_at, ends_at FROM supaworker.history_ranges() ORDER BY 1").fetchall()
    assert all(a[1] <= b[0] for a, b in pairwise(ranges))  # none overlaps the next
    assert store.history_partitions()[0]["starts_at"] == ranges[0][0]


def test_history_moves_and_drops_through_a_transaction_pooler(db: str, store: Store, conn: psycopg.Connection) -> None:
    from tests.conftest import admin_url
    from tests.servers import PgBouncer

    ids = supaworker.create_jobs([{"type": "t"}] * 3, store=store)
    finish(conn, ids, "completed", "3 hours")
    bouncer = PgBouncer(admin_url()).start()
    try:
        env = subprocess_env(
            bouncer.url_for(db),
            SUPAWORKER_HISTORY_AFTER_SECONDS="60",
            SUPAWORKER_HISTORY_PARTITION_SECONDS="3600",
            SUPAWORKER_HISTORY_RETENTION_SECONDS="7200",
        )
        result = run_cli(None, "prune", env=env)
        # Moved into the partition of 3 hours ago, which is past the 2 hours' retention and dropped at once.
        assert result.returncode == 0, result.stderr
        assert "moved 3 finished jobs to history; dropped 1 partitions" in result.stdout
        assert where(conn, ids) == {"jobs": [], "job_history": []} and partitions(conn) == []
    finally:
        bouncer.stop()
