"""The worker's statements reach their rows by primary key even when the statistics are stale, as they
nearly always are on a queue: ANALYZE saw every job pending, nothing processing, no worker.

The plans are read with auto_explain from inside the SQL functions, as the worker calls them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

BATCH = 300


@pytest.fixture
def stale(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 't' FROM generate_series(1, 3000)")
    conn.execute("ANALYZE supaworker.jobs")  # every job pending: "no job is processing"
    yield conn


def explained(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> tuple[str, list[tuple]]:
    """The plan of the UPDATE of jobs that `query` runs inside a function, and the rows `query` returns."""
    plans, rows = all_plans(conn, query, params)
    [update] = [plan for plan in plans if "Update on jobs" in plan]
    return update, rows


def all_plans(
    conn: psycopg.Connection, query: str, params: tuple[object, ...] = (), *, analyze: bool = False
) -> tuple[list[str], list[tuple]]:
    """The plan of every statement `query` runs, nested ones included (with what each node did when
    `analyze`), and the rows it returns."""
    found: list[str] = []
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute(f"SET auto_explain.log_analyze = {'on' if analyze else 'off'}")
    conn.execute(f"SET auto_explain.log_buffers = {'on' if analyze else 'off'}")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET client_min_messages = log")
    conn.add_notice_handler(lambda d: found.append(d.message_primary or ""))
    try:
        rows = conn.execute(query, params).fetchall()
    finally:
        conn.execute("SET auto_explain.log_min_duration = -1")
        conn.execute("RESET client_min_messages")
    return [plan.split("plan:", 1)[1] for plan in found if "plan:" in plan], rows


def claim(conn: psycopg.Connection) -> list[tuple[int, int]]:
    return conn.execute("SELECT id, attempts FROM supaworker.claim_jobs('w', NULL, %s, 30)", (BATCH,)).fetchall()


def assert_by_primary_key(plan: str) -> None:
    assert "Index Scan using jobs_pkey" in plan or "Index Cond: (id = " in plan, plan
    assert "Seq Scan on jobs" not in plan and "jobs_lease_idx" not in plan, plan


def test_claim_joins_the_picked_jobs_by_primary_key(stale: psycopg.Connection) -> None:
    plans, claimed = all_plans(stale, "SELECT id FROM supaworker.claim_jobs('w', NULL, %s, 30)", (BATCH,))
    [pick] = [plan for plan in plans if "LockRows" in plan]
    [update] = [plan for plan in plans if "Update on jobs" in plan]
    assert "jobs_claim_idx" in pick and "Seq Scan" not in pick, pick
    assert "jobs_pkey" in update and "Seq Scan on jobs j" not in update, update
    assert len(claimed) == BATCH


@pytest.mark.parametrize("control", ["limit", "pause"])
def test_claim_with_a_limit_or_a_pause_never_jit_compiles(stale: psycopg.Connection, control: str) -> None:
    # enable_seqscan = off prices a disabled plan above jit_above_cost: without jit = off on the function,
    # every claim compiled itself (hundreds of ms each).
    stale.execute("SET jit = on")
    if control == "limit":
        stale.execute("SELECT supaworker.set_job_limits('t', 500, NULL, NULL)")
    else:
        stale.execute("INSERT INTO supaworker.job_controls (scope, name, paused) VALUES ('type', 'other', true)")
    plans, claimed = all_plans(stale, "SELECT id FROM supaworker.claim_jobs('w', NULL, %s, 30)", (BATCH,))
    assert plans and len(claimed) == BATCH
    jitted = [plan for plan in plans if "JIT:" in plan]
    assert not jitted, jitted[0]


def test_claim_under_limits_without_a_rate_does_no_rate_bookkeeping(stale: psycopg.Connection) -> None:
    # The rate windows' UPDATE (with its count of the claimed jobs by type) is for types with a rate limit.
    stale.execute("SELECT supaworker.set_job_limits('t', 500, NULL, NULL)")
    stale.execute("SELECT supaworker.set_job_paused('queue', 'elsewhere', true)")
    plans, claimed = all_plans(stale, "SELECT id FROM supaworker.claim_jobs('w', NULL, %s, 30)", (BATCH,))
    assert len(claimed) == BATCH
    assert not [plan for plan in plans if "Update on job_controls" in plan], plans
    stale.execute("SELECT supaworker.set_job_limits('t', 1000, 10000, 60)")
    plans, claimed = all_plans(stale, "SELECT id FROM supaworker.claim_jobs('w', NULL, %s, 30)", (BATCH,))
    assert len(claimed) == BATCH and [plan for plan in plans if "Update on job_controls" in plan]


@pytest.mark.parametrize("control", ["limit", "pause"])
@pytest.mark.parametrize("wanted", [["t", "u"], ["u", "t", "v"]])
def test_a_limited_types_backlog_is_not_walked_to_claim_other_types(
    stale: psycopg.Connection, wanted: list[str], control: str
) -> None:
    # A worker of several types (a worker always names its types), one of them limited (or paused) with a
    # backlog: the claim found the others' jobs by walking every pending job of that type first (4-10 ms a
    # claim with 20,000 queued).
    if control == "limit":
        stale.execute("SELECT supaworker.set_job_limits('t', 1, NULL, NULL)")
        stale.execute("SELECT id FROM supaworker.claim_jobs('w0', ARRAY['t'], 1, 30)")  # the limit is reached
    else:
        stale.execute("SELECT supaworker.set_job_paused('type', 't', true)")
    stale.execute("INSERT INTO supaworker.jobs (type) VALUES ('u')")  # behind the pending 't' jobs
    plans, claimed = all_plans(
        stale, "SELECT type FROM supaworker.claim_jobs('w', %s, %s, 30)", (wanted, BATCH), analyze=True
    )
    assert claimed == [("u",)]
    removed = [int(n) for plan in plans for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
    assert max(removed, default=0) < 100, plans


@pytest.mark.parametrize(
    ("types", "queues", "expected"),
    [
        (["u"], None, [("u",)]),
        (["u", "v"], None, [("u",)]),
        (["v", "u", "w"], None, [("u",)]),
        (None, ["later"], [("u",)]),
        (["t", "u"], ["later", "other"], [("u",)]),
        (["t"], ["later"], []),
    ],
)
@pytest.mark.parametrize("control", [None, "pause", "limit"])
def test_a_claim_does_not_walk_the_backlog_of_types_and_queues_it_does_not_run(
    stale: psycopg.Connection,
    types: list[str] | None,
    queues: list[str] | None,
    expected: list[tuple[str]],
    control: str | None,
) -> None:
    # A worker names its types (by default those it has handlers for) and may name its queues. Another type's
    # or queue's backlog ahead of them in claim order was walked row by row by every claim (52-60 ms a claim
    # of 10 behind 300,000 such jobs), with or without a pause or a limit in force.
    if control == "pause":
        stale.execute("SELECT supaworker.set_job_paused('type', 'v', true)")
    elif control == "limit":
        stale.execute("SELECT supaworker.set_job_limits('u', 100, NULL, NULL)")
    stale.execute("INSERT INTO supaworker.jobs (type, queue) VALUES ('u', 'later')")  # behind the 't' jobs
    plans, claimed = all_plans(
        stale, "SELECT type FROM supaworker.claim_jobs(%s, %s, %s, 30, %s)", ("w", types, BATCH, queues), analyze=True
    )
    assert claimed == expected
    removed = [int(n) for plan in plans for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
    assert max(removed, default=0) < 100, plans


@pytest.mark.parametrize(("types", "queues"), [(["u"], None), (["u", "v"], None), (["u"], ["default"])])
def test_a_fair_share_claim_does_not_walk_the_backlog_of_types_it_does_not_run(
    conn: psycopg.Connection, types: list[str], queues: list[str] | None
) -> None:
    # Several tenants waiting: the claim reads tenant by tenant, and each tenant's backlog of other types
    # ahead of the claim's was walked (75 ms a claim of 10 behind 300,000 such jobs).
    conn.execute("INSERT INTO supaworker.jobs (type, fairness_key) SELECT 't', 'a' FROM generate_series(1, 20000)")
    conn.execute("INSERT INTO supaworker.jobs (type, fairness_key) VALUES ('u', 'a'), ('u', 'b')")
    conn.execute("INSERT INTO supaworker.jobs (type, fairness_key) SELECT 't', 'c' FROM generate_series(1, 50)")
    conn.execute("ANALYZE supaworker.jobs")
    claim = "SELECT type FROM supaworker.claim_jobs('w', %s, %s, 30, %s)"
    with conn.transaction(force_rollback=True):
        conn.execute(claim, (types, BATCH, queues))  # a session's first claim plans its statements (many pages)
    plans, claimed = all_plans(conn, claim, (types, BATCH, queues), analyze=True)
    assert claimed == [("u",), ("u",)]
    # Walking the 20,000 jobs reads over a thousand pages (index or table); finding the two, a few dozen, and
    # about 200 in all with the session's first shared claim drawing the tenant it starts at (the warm-up's
    # place in the round was rolled back with it). The claim's own plan is the last; its first node counts the
    # pages of every statement inside it.
    root = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", plans[-1])
    assert root is not None, plans[-1]
    pages = int(root[1]) + int(root[2] or 0)
    assert pages < 300, plans


def test_claims_naming_their_types_or_queues_take_them_in_claim_order(conn: psycopg.Connection) -> None:
    # Priorities, run_at, queues and ids interleave the types; each claim takes the next jobs it may take, in
    # the order a claim of everything would take them, whichever of the claim's paths it goes through.
    for types, queues in ((["a"], None), (["b", "c"], None), (None, ["q2"]), (["a", "c"], ["q1"]), (["b"], ["q2"])):
        conn.execute("TRUNCATE supaworker.jobs CASCADE")
        conn.execute(
            """INSERT INTO supaworker.jobs (type, queue, priority, run_at)
               SELECT (ARRAY['a', 'b', 'c'])[1 + g % 3], (ARRAY['q1', 'q2'])[1 + g % 7 % 2], (g * 7) % 5,
                      now() - (g % 11) * interval '1 second'
                 FROM generate_series(1, 600) g"""
        )
        expected = [
            row[0]
            for row in conn.execute(
                """SELECT id FROM supaworker.jobs
                    WHERE status = 'pending' AND (%(t)s::text[] IS NULL OR type = ANY (%(t)s))
                      AND (%(q)s::text[] IS NULL OR queue = ANY (%(q)s))
                    ORDER BY priority, run_at, id""",
                {"t": types, "q": queues},
            )
        ]
        got: list[int] = []
        claim = "SELECT id FROM supaworker.claim_jobs('w', %s, 7, 30, %s) ORDER BY claim_seq"
        while batch := [r[0] for r in conn.execute(claim, (types, queues))]:
            got += batch
        assert expected and got == expected, (types, queues)


def test_hot_functions_pin_jit_off(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'supaworker' AND p.proname = ANY (%s)
              AND NOT coalesce('jit=off' = ANY (p.proconfig), false)""",
        (
            [
                "claim_jobs",
                "claim_jobs_v2",
                "complete_jobs",
                "fail_job",
                "heartbeat_jobs",
                "release_jobs",
                "record_job_starts",
                "update_job_progress",
                "rescue_expired_jobs_v2",
                "rescue_expired_jobs_v3",
            ],
        ),
    ).fetchall()
    assert rows == []


def test_complete_finds_each_job_of_the_batch_by_primary_key(stale: psycopg.Connection) -> None:
    claimed = claim(stale)
    ids, attempts = [i for i, _ in claimed], [a for _, a in claimed]
    plan, done = explained(
        stale, "SELECT * FROM supaworker.complete_jobs('w', %s, %s, %s)", (ids, attempts, [Jsonb(None)] * len(ids))
    )
    assert_by_primary_key(plan)
    assert len(done) == BATCH
    assert stale.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'").fetchone() == (BATCH,)


def test_heartbeat_and_release_find_their_jobs_by_primary_key(stale: psycopg.Connection) -> None:
    claimed = claim(stale)
    ids, attempts = [i for i, _ in claimed], [a for _, a in claimed]
    plan, renewed = explained(stale, "SELECT * FROM supaworker.heartbeat_jobs('w', %s, 30)", (ids,))
    assert_by_primary_key(plan)
    assert len(renewed) == BATCH
    plan, released = explained(stale, "SELECT * FROM supaworker.release_jobs('w', %s, %s)", (ids, attempts))
    assert_by_primary_key(plan)
    assert len(released) == BATCH


def test_fail_finds_its_job_by_primary_key(stale: psycopg.Connection) -> None:
    claimed = claim(stale)
    job_id, attempt = claimed[0]
    plan, status = explained(stale, "SELECT supaworker.fail_job(%s, 'w', 'boom', %s)", (job_id, attempt))
    assert_by_primary_key(plan)
    assert status == [("pending",)]
