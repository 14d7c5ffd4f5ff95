"""Job dependencies on a real database, driven by hand (claim/complete/fail as a worker would)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

import supaworker
from supaworker import InvalidJob, InvalidTransition, JobStatus
from supaworker.store import Store


def status(conn: psycopg.Connection, job_id: int) -> str:
    return conn.execute("SELECT status::text FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()[0]


def run(conn: psycopg.Connection, job_id: int, result: object = None) -> None:
    """Claims exactly this job and completes it, as a worker would."""
    claimed = conn.execute(
        "SELECT id FROM supaworker.claim_jobs('w', ARRAY[(SELECT type FROM supaworker.jobs WHERE id = %s)], 100)",
        (job_id,),
    ).fetchall()
    assert (job_id,) in claimed, f"job {job_id} was not runnable"
    others = [c[0] for c in claimed if c[0] != job_id]
    if others:
        conn.execute("SELECT supaworker.release_jobs('w', %s, (SELECT array_agg(attempts) FROM supaworker.jobs "
                     "WHERE id = ANY(%s)))", (others, others))  # fmt: skip
    conn.execute("SELECT supaworker.complete_job(%s, 'w', %s)", (job_id, psycopg.types.json.Jsonb(result)))


def fail_for_good(conn: psycopg.Connection, job_id: int, error: str = "boom") -> None:
    conn.execute("SELECT supaworker.claim_jobs('w', ARRAY[(SELECT type FROM supaworker.jobs WHERE id = %s)], 1)",
                 (job_id,))  # fmt: skip
    assert conn.execute("SELECT supaworker.fail_job(%s, 'w', %s, NULL, 5, 60, false)", (job_id, error)).fetchone() == (
        "failed",
    )


def test_job_with_unfinished_parent_waits_then_runs_when_it_completes(store: Store, conn: psycopg.Connection) -> None:
    parent = supaworker.create_job("a", store=store)
    child = supaworker.create_job("b", depends_on=[parent.id], store=store)
    assert child.status is JobStatus.WAITING
    assert child.extra["depends_on"] == [parent.id]
    assert supaworker.get_job(child.id, store=store).extra["depends_on"] == [parent.id]
    run(conn, parent.id)
    assert status(conn, child.id) == "pending"


def test_job_whose_parents_all_completed_starts_pending(store: Store, conn: psycopg.Connection) -> None:
    parent = supaworker.create_job("a", store=store)
    run(conn, parent.id)
    child = supaworker.create_job("b", depends_on=[parent.id], store=store)
    assert child.status is JobStatus.PENDING


def test_fan_in_waits_for_every_parent(store: Store, conn: psycopg.Connection) -> None:
    parents = [supaworker.create_job("part", {"i": i}, store=store).id for i in range(3)]
    join = supaworker.create_job("join", depends_on=parents, store=store)
    for i, parent in enumerate(parents):
        assert status(conn, join.id) == "waiting", f"runnable after {i} of 3 parents"
        run(conn, parent)
    assert status(conn, join.id) == "pending"


def test_fan_out_releases_every_dependent_at_once(store: Store, conn: psycopg.Connection) -> None:
    root = supaworker.create_job("root", store=store)
    children = [supaworker.create_job("leaf", {"i": i}, depends_on=[root.id], store=store).id for i in range(4)]
    run(conn, root.id)
    assert {status(conn, c) for c in children} == {"pending"}


def test_permanent_failure_cancels_dependents_with_the_reason(store: Store, conn: psycopg.Connection) -> None:
    root = supaworker.create_job("root", store=store)
    mid = supaworker.create_job("mid", depends_on=[root.id], store=store)
    leaf = supaworker.create_job("leaf", depends_on=[mid.id], store=store)
    fail_for_good(conn, root.id, "disk full")
    for job_id in (mid.id, leaf.id):
        job = supaworker.get_job(job_id, store=store)
        assert job.status is JobStatus.CANCELLED
        assert f"dependency {root.id} failed: disk full" in (job.last_error or "")
    # Retrying the failed parent brings the whole chain back, waiting for it.
    assert supaworker.retry_job(root.id, store=store) == "pending"
    assert (status(conn, mid.id), status(conn, leaf.id)) == ("waiting", "waiting")
    run(conn, root.id)
    run(conn, mid.id)
    run(conn, leaf.id)


def test_retrying_a_dependent_of_a_failed_job_is_refused_with_the_parent_named(
    store: Store, conn: psycopg.Connection
) -> None:
    root = supaworker.create_job("root", store=store)
    child = supaworker.create_job("child", depends_on=[root.id], store=store)
    fail_for_good(conn, root.id)
    with pytest.raises(InvalidTransition, match=f"depends on job {root.id}, which is failed: retry job {root.id}"):
        supaworker.retry_job(child.id, store=store)
    assert status(conn, child.id) == "cancelled"


@pytest.mark.parametrize("final", ["failed", "cancelled"])
def test_depending_on_a_dead_job_is_rejected_and_nothing_is_written(
    store: Store, conn: psycopg.Connection, final: str
) -> None:
    parent = supaworker.create_job("a", store=store)
    if final == "failed":
        fail_for_good(conn, parent.id)
    else:
        supaworker.cancel_job(parent.id, store=store)
    with pytest.raises(InvalidJob, match=f"job {parent.id} is {final}"):
        supaworker.create_job("b", depends_on=[parent.id], store=store)
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (1,)


def test_unknown_parent_is_rejected(store: Store, conn: psycopg.Connection) -> None:
    known = supaworker.create_job("a", store=store)
    with pytest.raises(InvalidJob, match="unknown job id"):
        supaworker.create_job("b", depends_on=[known.id, 424242], store=store)
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (1,)


@pytest.mark.parametrize(
    ("depends_on", "message"),
    [
        ("5", "list of job ids"),
        ([True], "job ids"),
        ([0], "job ids"),
        (["key"], "integers"),
        ([1.5], "job ids"),
    ],
)
def test_bad_depends_on_values_are_rejected(store: Store, depends_on: object, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        supaworker.create_job("b", depends_on=depends_on, store=store)  # type: ignore[arg-type]


def test_batch_graph_with_keys_runs_in_dependency_order(store: Store, conn: psycopg.Connection) -> None:
    outside = supaworker.create_job("outside", store=store)
    ids = supaworker.create_jobs(
        [
            {"type": "join", "key": "join", "depends_on": ["left", "right", outside.id]},
            {"type": "left", "key": "left", "depends_on": ["root"]},
            {"type": "right", "key": "right", "depends_on": ["root"]},
            {"type": "root", "key": "root"},
        ],
        store=store,
    )
    join, left, right, root = ids
    # Parents get smaller ids than their children, whatever the order given.
    assert root < left < join and root < right < join
    assert [status(conn, i) for i in ids] == ["waiting", "waiting", "waiting", "pending"]
    run(conn, root)
    assert (status(conn, left), status(conn, right), status(conn, join)) == ("pending", "pending", "waiting")
    run(conn, left)
    run(conn, right)
    assert status(conn, join) == "waiting"
    run(conn, outside.id)
    assert status(conn, join) == "pending"


def test_batch_with_a_cycle_is_rejected_and_nothing_is_written(store: Store, conn: psycopg.Connection) -> None:
    with pytest.raises(InvalidJob, match="dependency cycle: 'a' -> 'b' -> 'c' -> 'a'"):
        supaworker.create_jobs(
            [
                {"type": "t", "key": "a", "depends_on": ["b"]},
                {"type": "t", "key": "b", "depends_on": ["c"]},
                {"type": "t", "key": "c", "depends_on": ["a"]},
            ],
            store=store,
        )
    with pytest.raises(InvalidJob, match="dependency cycle"):
        supaworker.create_jobs([{"type": "t", "key": "self", "depends_on": ["self"]}], store=store)
    with pytest.raises(InvalidJob, match="no job's key"):
        supaworker.create_jobs([{"type": "t", "key": "a", "depends_on": ["nope"]}], store=store)
    with pytest.raises(InvalidJob, match="used by more than one job"):
        supaworker.create_jobs([{"type": "t", "key": "a"}, {"type": "t", "key": "a"}], store=store)
    assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (0,)


def test_database_refuses_a_cycle_made_in_plain_sql(store: Store, conn: psycopg.Connection) -> None:
    a = supaworker.create_job("a", store=store)
    b = supaworker.create_job("b", depends_on=[a.id], store=store)
    c = supaworker.create_job("c", depends_on=[b.id], store=store)
    with pytest.raises(psycopg.errors.CheckViolation, match="dependency cycle"):
        conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (a.id, c.id))
    with pytest.raises(psycopg.errors.CheckViolation, match="self"):
        conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (a.id, a.id))


def test_database_sets_status_of_a_job_given_parents_in_plain_sql(store: Store, conn: psycopg.Connection) -> None:
    parent = supaworker.create_job("a", store=store)
    with conn.transaction():
        child = conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('b') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (child, parent.id))
    assert status(conn, child) == "waiting"
    run(conn, parent.id)
    assert status(conn, child) == "pending"
    other = supaworker.create_job("x", store=store)
    conn.execute("SELECT supaworker.claim_jobs('w', ARRAY['b'], 1)")
    with pytest.raises(psycopg.errors.CheckViolation, match="has not started"):
        conn.execute("INSERT INTO supaworker.job_dependencies VALUES (%s, %s)", (child, other.id))


def test_parent_completing_while_child_is_being_created_never_strands_the_child(db: str, store: Store) -> None:
    """The child's transaction locks the parent: the completion either commits first (child starts pending)
    or waits and then sees the child (and unblocks it). Never a waiting child of a completed parent."""
    for _ in range(20):
        parent = supaworker.create_job("p", store=store)
        with psycopg.connect(db, autocommit=True) as worker:
            worker.execute("SELECT supaworker.claim_jobs('w', ARRAY['p'], 1)")
            with psycopg.connect(db) as app:
                child = supaworker.create_job("c", depends_on=[parent.id], conn=app)
                done = threading.Event()

                def complete(parent_id: int = parent.id, done: threading.Event = done) -> None:
                    worker.execute("SELECT supaworker.complete_job(%s, 'w')", (parent_id,))
                    done.set()

                t = threading.Thread(target=complete)
                t.start()
                time.sleep(0.02)
                assert not done.is_set(), "completion must wait for the child's transaction"
                app.commit()
                t.join(5)
            assert supaworker.get_job(child.id, store=store).status is JobStatus.PENDING


def test_a_job_never_starts_before_the_parents_it_waited_for_completed(conn: psycopg.Connection) -> None:
    # A worker's claim can share a transaction with statements sent before it (its completions and starts,
    # in one pipeline), and the parents' completions may commit in between. The claim stamped started_at with
    # the start of that transaction, so a child could show as started before a parent completed.
    first = supaworker.create_job("parent", conn=conn)
    second = supaworker.create_job("parent", conn=conn)
    child = supaworker.create_job("child", depends_on=[first.id, second.id], conn=conn)
    conn.execute("SELECT supaworker.claim_jobs('w', ARRAY['parent'], 2)")
    with psycopg.connect(conn.info.dsn) as completer, psycopg.connect(conn.info.dsn) as claimer:
        completer.execute("SELECT 1")  # a worker's transaction that will complete the second parent begins
        claimer.execute("SELECT 1")  # then another worker's pipeline begins
        conn.execute("SELECT supaworker.complete_job(%s, 'w')", (first.id,))
        completer.execute("SELECT supaworker.complete_job(%s, 'w')", (second.id,))  # the child is released
        completer.commit()
        claimed = claimer.execute("SELECT id FROM supaworker.claim_jobs('w2', ARRAY['child'], 1)").fetchall()
        claimer.commit()
    assert claimed == [(child.id,)]
    started, completed = conn.execute(
        "SELECT (SELECT started_at FROM supaworker.jobs WHERE id = %s), "
        "(SELECT max(completed_at) FROM supaworker.jobs WHERE type = 'parent')",
        (child.id,),
    ).fetchone()
    assert started >= completed
