"""Fair shares across tenants: while several tenants have jobs queued, claims share the workers between them by
weight, in the claim itself; one tenant alone gets every slot; pauses, limits and priorities still hold."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest

import supaworker
from supaworker.errors import InvalidJob
from supaworker.migrate import migrate
from supaworker.registry import Registry
from supaworker.store import Store
from tests.integration.test_query_plans import all_plans
from tests.support.waiting import wait_until_async
from tests.support.worker import make_worker, running


def enqueue(conn: psycopg.Connection, tenant: str, n: int, job_type: str = "t") -> None:
    conn.execute(
        "INSERT INTO supaworker.jobs (type, fairness_key) SELECT %s, %s FROM generate_series(1, %s)",
        (job_type, tenant, n),
    )


def claim(conn: psycopg.Connection, limit: int, types: list[str] | None = None) -> list[str]:
    """The tenants of the jobs one claim took."""
    rows = conn.execute("SELECT fairness_key FROM supaworker.claim_jobs_v2('w', %s, %s, 30)", (types, limit)).fetchall()
    return [row[0] for row in rows]


def test_a_claim_shares_its_batch_by_weight(conn: psycopg.Connection) -> None:
    enqueue(conn, "a", 2000)
    enqueue(conn, "b", 2000)
    supaworker.set_fairness_weight("a", 3, conn=conn)
    for _ in range(20):
        assert Counter(claim(conn, 8)) == {"a": 6, "b": 2}


def test_claims_smaller_than_the_tenants_still_share_by_weight(conn: psycopg.Connection) -> None:
    # One job per claim: each claim picks a tenant at random in proportion to its weight.
    enqueue(conn, "a", 3000)
    enqueue(conn, "b", 3000)
    supaworker.set_fairness_weight("a", 3, conn=conn)
    taken = Counter(key for _ in range(2000) for key in claim(conn, 1))
    assert abs(taken["a"] / 2000 - 0.75) < 0.05, taken  # 5 standard deviations


def test_claims_take_turns_round_every_tenant_however_many_wait(conn: psycopg.Connection) -> None:
    # 1,500 tenants (more than the old per-claim cap of 1,000): a claim of 50 serves ten turns of 5, and the
    # session's next claim goes on from there, so 150 claims give every tenant exactly its 5.
    conn.execute(
        "INSERT INTO supaworker.jobs (type, fairness_key)"
        " SELECT 't', 'tenant-' || lpad(t::text, 4, '0') FROM generate_series(1, 1500) t, generate_series(1, 6)"
    )
    first = Counter(claim(conn, 50))
    assert len(first) == 10 and set(first.values()) == {5}, first
    taken = first + Counter(key for _ in range(149) for key in claim(conn, 50))
    assert len(taken) == 1500 and set(taken.values()) == {5}


def test_a_turn_cut_short_by_the_batch_goes_on_in_the_next_claim(conn: psycopg.Connection) -> None:
    # Weights 3:1 and claims of 5 (turns of 3 and 1): from a, a b a's first, then the rest of a's turn next claim;
    # from b (the session's first tenant is drawn), b a b.
    enqueue(conn, "a", 100)
    enqueue(conn, "b", 100)
    supaworker.set_fairness_weight("a", 3, conn=conn)
    claims = [Counter(claim(conn, 5)) for _ in range(4)]
    assert claims[0] in ({"a": 4, "b": 1}, {"a": 3, "b": 2})
    assert sum(claims, Counter()) == {"a": 15, "b": 5}


def test_a_tenant_whose_jobs_are_gone_hands_its_turn_on(conn: psycopg.Connection) -> None:
    tenants = ["a", "b", "c"]
    for tenant in tenants:
        enqueue(conn, tenant, 10)
    [first] = claim(conn, 1)
    after = tenants[(tenants.index(first) + 1) % 3]
    conn.execute("DELETE FROM supaworker.jobs WHERE fairness_key = %s AND status = 'pending'", (after,))
    assert claim(conn, 1) == [tenants[(tenants.index(first) + 2) % 3]]  # the one after it, round the end


def test_sessions_that_claim_once_each_do_not_all_start_at_the_first_tenant(db: str, conn: psycopg.Connection) -> None:
    # A pooler's or a short-lived session's first claim starts at a tenant drawn at random, not at the first.
    for tenant in range(10):
        enqueue(conn, f"tenant-{tenant}", 20)
    firsts = []
    for _ in range(40):
        with psycopg.connect(db, autocommit=True) as fresh:
            firsts += claim(fresh, 1)
    assert len(set(firsts)) >= 6, Counter(firsts)  # all 40 at one tenant before; 5 or fewer: p < 1e-9


def test_turns_go_round_any_tenant_key(conn: psycopg.Connection) -> None:
    # The session keeps the key whose turn it is as a text array: keys that need quoting in one come back whole.
    keys = ["", "a,b", 'q"uote', "back\\slash", "{brace}", "NULL", " spaced ", "ünïcode", "x" * 256]
    for key in keys:
        enqueue(conn, key, 3)
    in_key_order = conn.execute("SELECT array_agg(k ORDER BY k) FROM unnest(%s::text[]) k", (keys,)).fetchone()[0]
    taken = [key for _ in range(2 * len(keys)) for key in claim(conn, 1)]
    start = in_key_order.index(taken[0])  # the session's first tenant is drawn
    assert taken == (in_key_order[start:] + in_key_order[:start]) * 2


def test_turns_are_kept_per_session_and_per_schema(db: str, conn: psycopg.Connection) -> None:
    tenants = ["a", "b", "c", "d"]
    for tenant in tenants:
        enqueue(conn, tenant, 10)
    [first] = claim(conn, 1)

    def next_after(tenant: str) -> list[str]:
        return [tenants[(tenants.index(tenant) + 1) % len(tenants)]]

    with psycopg.connect(db, autocommit=True) as other:
        for _ in range(3):
            claim(other, 1)  # a session of its own goes round on its own
    migrate(db, "second_queue")
    conn.execute("INSERT INTO second_queue.jobs (type, fairness_key) VALUES ('t', 'a'), ('t', 'b')")
    assert conn.execute("SELECT fairness_key FROM second_queue.claim_jobs_v2('w', NULL, 1, 30)").fetchone()[0] in "ab"
    assert claim(conn, 1) == next_after(first)  # neither moved this session's place in this schema


def test_one_tenant_alone_gets_every_slot_and_an_empty_share_is_not_lost(conn: psycopg.Connection) -> None:
    enqueue(conn, "a", 500)
    assert Counter(claim(conn, 100)) == {"a": 100}
    enqueue(conn, "b", 3)  # fewer than its share of 50: the rest of the batch goes to a
    assert Counter(claim(conn, 100)) == {"a": 97, "b": 3}


def test_within_a_tenant_jobs_go_in_priority_order(conn: psycopg.Connection) -> None:
    enqueue(conn, "a", 50)
    enqueue(conn, "b", 50)
    conn.execute("INSERT INTO supaworker.jobs (type, fairness_key, priority) VALUES ('t', 'a', -5), ('t', 'b', -5)")
    rows = conn.execute("SELECT fairness_key, priority FROM supaworker.claim_jobs_v2('w', NULL, 2, 30)").fetchall()
    assert sorted(rows) == [("a", -5), ("b", -5)]


def test_pauses_and_limits_hold_beside_the_shares(conn: psycopg.Connection) -> None:
    enqueue(conn, "a", 100, "free")
    enqueue(conn, "b", 100, "free")
    enqueue(conn, "a", 100, "capped")
    enqueue(conn, "b", 100, "paused")
    supaworker.set_limits("capped", max_running=3, conn=conn)
    supaworker.pause(type="paused", conn=conn)
    taken = conn.execute("SELECT type, fairness_key FROM supaworker.claim_jobs_v2('w', NULL, 60, 30)").fetchall()
    by_type = Counter(t for t, _ in taken)
    assert by_type["paused"] == 0 and by_type["capped"] <= 3
    assert Counter(k for t, k in taken if t == "free") == {"a": 30, "b": 30}


def test_the_shared_claim_reads_by_index_and_never_jit_compiles(conn: psycopg.Connection) -> None:
    for tenant in range(100):
        enqueue(conn, f"tenant-{tenant:03}", 30)
    conn.execute("ANALYZE supaworker.jobs")
    conn.execute("SET jit = on")
    supaworker.set_limits("other", max_running=5, conn=conn)  # the controls path too
    plans, claimed = all_plans(conn, "SELECT id FROM supaworker.claim_jobs_v2('w', NULL, 200, 30)")
    assert len(claimed) == 200
    assert not [plan for plan in plans if "Seq Scan on jobs" in plan], plans
    assert not [plan for plan in plans if "JIT:" in plan]
    assert any("jobs_fair_claim_idx" in plan for plan in plans)


def test_a_tenant_key_is_checked_like_every_field(store: Store, conn: psycopg.Connection) -> None:
    with pytest.raises(InvalidJob, match="fairness_key must be at most 256 characters"):
        supaworker.create_job("t", fairness_key="x" * 257, store=store)
    with pytest.raises(InvalidJob, match="fairness_key must not contain a NUL"):
        supaworker.create_job("t", fairness_key="a\x00b", store=store)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="fairness_key must be at most 256"):
        conn.execute("SELECT supaworker.create_job(type => 't', fairness_key => repeat('x', 257))")
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (0,)
    with pytest.raises(InvalidJob, match="weight must be a whole number from 1 to 10000"):
        supaworker.set_fairness_weight("a", 0, store=store)


def test_every_way_in_names_the_tenant(store: Store, conn: psycopg.Connection) -> None:
    made = [
        supaworker.create_job("t", fairness_key="k1", store=store).id,
        supaworker.create_job("t", fairness_key="k2", unique_key="u", store=store).id,
        *supaworker.create_jobs([{"type": "t", "fairness_key": "k3"}], store=store),
        conn.execute("SELECT (supaworker.create_job(type => 't', fairness_key => 'k4')) ->> 'id'").fetchone()[0],
        *conn.execute('SELECT supaworker.create_jobs(\'[{"type": "t", "fairness_key": "k5"}]\')').fetchone()[0],
        supaworker.create_job("t", store=store).id,
    ]
    keys = dict(
        conn.execute("SELECT id, fairness_key FROM supaworker.jobs WHERE id = ANY (%s)", ([int(i) for i in made],))
    )
    assert [keys[int(i)] for i in made] == ["k1", "k2", "k3", "k4", "k5", ""]


def test_a_briefs_steps_share_as_its_user_unless_told_otherwise(store: Store, conn: psycopg.Connection) -> None:
    fields = {"query": "make a video", "media_type": "video", "use_pipeline": True}
    mine = supaworker.create_brief_with_job(user_id="user-1", **fields, store=store)
    theirs = supaworker.create_brief_with_job(user_id="user-2", fairness_key="team-b", **fields, store=store)
    sql = conn.execute(
        "SELECT supaworker.create_brief_with_job(user_id => 'user-3', query => 'q', media_type => 'text')"
    ).fetchone()[0]
    rows = conn.execute("SELECT brief_id, fairness_key FROM supaworker.jobs").fetchall()
    by_brief: dict[str, set[str]] = {}
    for brief_id, key in rows:
        by_brief.setdefault(str(brief_id), set()).add(key)
    assert by_brief[str(mine.brief.id)] == {"user-1"}
    assert by_brief[str(theirs.brief.id)] == {"team-b"}
    assert by_brief[sql["brief"]["id"]] == {"user-3"}


async def test_a_small_tenant_is_served_while_a_big_one_waits(db: str, store: Store) -> None:
    # Tenant a queues 20,000 jobs, then tenant b 100: b's all finish while a still has most of its own left.
    registry = Registry()

    async def work(job: supaworker.Job) -> None:
        await asyncio.sleep(0.0005)

    registry.register("work", work)
    supaworker.create_jobs([{"type": "work", "fairness_key": "a"}] * 20_000, store=store)
    with psycopg.connect(db, autocommit=True) as conn:
        done = "SELECT count(*) FROM supaworker.jobs WHERE status = 'completed' AND fairness_key = %s"
        async with running(make_worker(db, registry, concurrency=10)):
            await wait_until_async(lambda: conn.execute(done, ("a",)).fetchone()[0] >= 500, "a's first jobs")
            small = supaworker.create_jobs([{"type": "work", "fairness_key": "b"}] * 100, store=store)
            await wait_until_async(lambda: conn.execute(done, ("b",)).fetchone()[0] == 100, "b's 100 jobs")
            left = conn.execute(
                "SELECT count(*) FROM supaworker.jobs WHERE fairness_key = 'a' AND status <> 'completed'"
            ).fetchone()[0]
    assert len(small) == 100
    assert left > 10_000, left


def test_a_claim_of_any_size_with_the_heaviest_weight_takes_every_job(conn: psycopg.Connection) -> None:
    # A turn is weight x a tenth of the batch: 10,000 x 214,748,365 does not fit in an integer.
    enqueue(conn, "a", 5)
    enqueue(conn, "b", 5)
    supaworker.set_fairness_weight("a", 10_000, conn=conn)
    assert Counter(claim(conn, 2**31 - 1)) == {"a": 5, "b": 5}
