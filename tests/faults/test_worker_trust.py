"""A worker never hurts a job that did nothing wrong: crashes charge only jobs whose handler began, a worker
never deadlocks with itself, a cut-off worker stops its jobs before anyone else is given them, and an
outage of the database is not mistaken for the death of every worker.

Real worker processes on a private PostgreSQL; `tracked` jobs record when their handler began
(public.test_starts) and when it finished (public.test_effects), so each job's attempts can be checked
against what really ran.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from supaworker import Registry
from supaworker.worker.protocol import ClaimRequest
from tests.faults.conftest import FAST_ENV
from tests.faults.harness import Fleet, WorkerProcess, enqueue_effects, report, status_counts, worker_env
from tests.faults.proxy import FreezableProxy, SilentServer
from tests.servers import PgBouncer, PrivateCluster
from tests.support.waiting import wait_until
from tests.support.worker import make_worker

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def charged_without_starting(url: str, ids: list[int]) -> dict[int, int]:
    """Per job: attempts charged beyond the handler starts recorded for it."""
    rows = query(
        url,
        """SELECT j.id, j.attempts - (SELECT count(*) FROM public.test_starts s WHERE s.job_id = j.id)
             FROM supaworker.jobs j WHERE j.id = ANY (%s)""",
        (ids,),
    )
    return {job_id: extra for job_id, extra in rows if extra > 0}


def drained(url: str) -> bool:
    counts = status_counts(url)
    return counts["pending"] + counts["processing"] + counts["waiting"] == 0


def deadlocks(url: str) -> int:
    (n,) = query(url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")[0]
    return int(n)


def exited(worker: WorkerProcess) -> bool:
    return worker.proc.poll() is not None


@pytest.mark.parametrize("where", ["first", "claimed-ahead"])
def test_a_job_that_kills_its_worker_charges_no_job_that_never_started(fault_db: str, fleet: Fleet, where: str) -> None:
    # First in the queue, the poison goes straight to the free slot and is charged by the claim itself.
    # Behind 150 others it is claimed ahead, and may kill its worker before its start is recorded: it is
    # then handed back uncharged once, and waits for the record on its next run.
    ordinary = enqueue_effects(fault_db, 150 if where == "claimed-ahead" else 300, max_attempts=3,
                               job_type="tracked", sleep=0.01)  # fmt: skip
    [(poison,)] = query(
        fault_db,
        "INSERT INTO supaworker.jobs (type, priority, max_attempts) VALUES ('suicide', %s, 3) RETURNING id",
        (-1 if where == "first" else 0,),
    )
    if where == "claimed-ahead":
        ordinary += enqueue_effects(fault_db, 150, max_attempts=3, job_type="tracked", sleep=0.01)
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    # One slot: every job but the poison is only ever claimed ahead when it dies, so none may be charged.
    # (With more slots, the jobs running beside the poison die with it and are charged like it.)
    args = ["-c", "1", "--prefetch", "500", "--lease-seconds", "2"]
    crashes = 0
    worker = fleet.start(env, *args, name="w0")
    while True:
        wait_until(lambda w=worker: exited(w) or drained(fault_db), fleet.explain("a crash or the drain"))
        if not exited(worker):
            break
        assert worker.proc.returncode == -signal.SIGKILL, worker.log_text()
        crashes += 1
        assert crashes <= 6, f"the poison job ran more than twice its 3 attempts\n{fleet.logs()}"
        time.sleep(1)  # what a supervisor does
        worker = fleet.start(env, *args, name=f"w{crashes}")
    [(status, attempts, last_error)] = query(
        fault_db, "SELECT status::text, attempts, last_error FROM supaworker.jobs WHERE id = %s", (poison,)
    )
    assert (status, attempts) == ("failed", 3), last_error
    assert crashes == 3 if where == "first" else 3 <= crashes <= 6
    assert "died while running the job" in last_error
    assert charged_without_starting(fault_db, ordinary) == {}
    assert query(fault_db, "SELECT status::text, count(*) FROM supaworker.jobs WHERE id = ANY (%s) GROUP BY 1",
                 (ordinary,)) == [("completed", 300)]  # fmt: skip
    assert query(fault_db, "SELECT count(*) FROM supaworker.jobs WHERE id = ANY (%s) AND attempts > 1",
                 (ordinary,)) == [(0,)]  # fmt: skip
    report(f"poison-crash-loop-{where}", crashes=crashes, ordinary_completed=300, ordinary_charged=0)


def test_killed_workers_prefetched_jobs_come_back_uncharged(fault_db: str, fleet: Fleet) -> None:
    ids = enqueue_effects(fault_db, 102, max_attempts=3, job_type="tracked", sleep=0.5)
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    args = ["-c", "2", "--prefetch", "100", "--lease-seconds", "2"]
    for kill in range(3):
        worker = fleet.start(env, *args, name=f"k{kill}")
        # Killed once both its slots' handlers have begun (and sleep), while it holds its prefetch: never
        # between the claim and a handler's first line, where a job is charged before it could record.
        wait_until(
            lambda w=worker: query(
                fault_db,
                """SELECT (SELECT count(*) FROM public.test_starts WHERE pid = %s) >= 2
                      AND (SELECT count(*) FROM supaworker.jobs WHERE status = 'processing') >= 50""",
                (w.pid,),
            )[0][0],
            fleet.explain("the worker to start two jobs and hold its prefetch"),
        )
        worker.signal(signal.SIGKILL)
        worker.proc.wait(10)
    survivor = fleet.start(env, "-c", "20", "--lease-seconds", "2", name="survivor")
    wait_until(lambda: drained(fault_db), fleet.explain("the drain"), timeout=120)
    assert survivor.proc.poll() is None
    assert query(fault_db, "SELECT status::text, count(*) FROM supaworker.jobs GROUP BY 1") == [("completed", 102)]
    extra = charged_without_starting(fault_db, ids)
    assert extra == {}, extra  # each kill hit sleeping handlers, never a job at its start
    report("prefetch-kill", kills=3, failed=0, charged_without_starting=0)


def test_many_workers_drain_without_deadlocks_or_rescuing_themselves(fault_db: str, fleet: Fleet) -> None:
    # Jobs that finish in random order: a completion batch then lists its rows in another order than the
    # heartbeat of the same worker locks them in.
    enqueue_effects(fault_db, 20_000, job_type="jitter")
    before = deadlocks(fault_db)
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    for _ in range(4):
        fleet.start(env, "-c", "8", "--lease-seconds", "1")  # a heartbeat every 0.33 s beside the completions
    wait_until(lambda: drained(fault_db), fleet.explain("the drain"), timeout=180)
    assert deadlocks(fault_db) == before, fleet.logs()
    rescues = [e for e in fleet.events() if e.get("msg", "").startswith(("job rescued", "jobs a dead worker"))]
    assert rescues == [], rescues[:5]
    assert status_counts(fault_db) == {"completed": 20_000}
    report("drain-4x8", jobs=20_000, deadlocks=0, rescues=0)


def test_an_outage_longer_than_the_lease_charges_no_live_job(
    cluster: PrivateCluster, fault_db: str, fleet: Fleet
) -> None:
    ids = enqueue_effects(fault_db, 12, max_attempts=3, job_type="slow_async", sleep=8)
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    for _ in range(3):
        fleet.start(env, "-c", "4", "--lease-seconds", "2")
    fleet.wait_started()
    wait_until(lambda: query(fault_db, "SELECT count(*) FROM public.test_starts")[0][0] == 12, "every job to start")
    cluster.stop("immediate")
    time.sleep(3)  # every lease (2 s) runs out while the server is down
    cluster.start()
    wait_until(lambda: drained(fault_db), fleet.explain("the drain"), timeout=120)
    rows = query(fault_db, "SELECT status::text, attempts FROM supaworker.jobs WHERE id = ANY (%s)", (ids,))
    assert rows == [("completed", 1)] * 12, (rows, fleet.logs())
    rescues = [e for e in fleet.events() if e.get("msg") == "job rescued from a dead worker"]
    assert rescues == [], rescues[:5]
    report("outage-3s-lease-2s", jobs=12, rescued=0, charged=0)


def test_an_outage_behind_pgbouncer_charges_no_live_job(cluster: PrivateCluster, fault_db: str, fleet: Fleet) -> None:
    # Behind PgBouncer a server restart of 3 s is refused for its `server_login_retry` (15 s) more, with its own
    # words. Taken for a partition, it fenced every worker and stopped and charged every running job.
    bouncer = PgBouncer(cluster.url).start()
    try:
        ids = enqueue_effects(fault_db, 12, max_attempts=3, job_type="slow_async", sleep=8)
        env = worker_env(bouncer.url_for(fault_db), fault_db, **FAST_ENV)
        for _ in range(3):
            fleet.start(env, "-c", "4", "--lease-seconds", "2")
        fleet.wait_started()
        wait_until(lambda: query(fault_db, "SELECT count(*) FROM public.test_starts")[0][0] == 12, "every job to start")
        cluster.stop("immediate")
        time.sleep(3)
        cluster.start()
        wait_until(lambda: drained(fault_db), fleet.explain("the drain"), timeout=120)
        rows = query(fault_db, "SELECT status::text, attempts FROM supaworker.jobs WHERE id = ANY (%s)", (ids,))
        assert rows == [("completed", 1)] * 12, (rows, fleet.logs())
        assert "server_login_retry" in fleet.full_logs(), "PgBouncer never refused: the outage was not seen through it"
        fenced = [e for e in fleet.events() if e.get("msg", "").startswith("lost the database")]
        assert fenced == [], fenced
    finally:
        for worker in fleet.workers:  # before their pooler goes: a stop with nothing to reach takes a lease more
            worker.stop()
        bouncer.stop()
    report("outage-behind-pgbouncer-lease-2s", jobs=12, fenced=0, charged=0)


def _silence_after_down(
    cluster: PrivateCluster, url: str, fleet: Fleet, *, jobs: int, sleep: float, lease: float
) -> tuple[list[int], WorkerProcess, SilentServer]:
    """`jobs` jobs of `sleep` seconds running on one worker with `lease`; then the server stops, the worker
    finds it down, and a server that never answers takes its port (close it, then start the cluster)."""
    ids = enqueue_effects(url, jobs, max_attempts=3, job_type="slow_async", sleep=sleep)
    w = fleet.start(worker_env(url, url, **FAST_ENV), "-c", str(jobs), "--lease-seconds", str(lease))
    wait_until(lambda: query(url, "SELECT count(*) FROM public.test_starts")[0][0] == jobs, "every job to start")
    cluster.stop("immediate")
    wait_until(lambda: '"msg": "database down' in w.log_text(), fleet.explain("the worker to see the server down"))
    return ids, w, SilentServer(cluster.port)


def test_a_server_silent_as_it_comes_back_charges_no_live_job(
    cluster: PrivateCluster, fault_db: str, fleet: Fleet
) -> None:
    # Found under load: a probe that timed out right after the worker had found the server down fenced it, and
    # its running jobs were stopped and charged. A server seen down that then does not answer is taken as still
    # down for 0.8 of a lease after it was last seen so (the rescuers wait longer than that).
    ids, w, silent = _silence_after_down(cluster, fault_db, fleet, jobs=4, sleep=25, lease=6)
    try:
        # A probe every third of the lease (2 s) after the one that found the server down: the next lands here,
        # is answered by nothing, and fails when this closes, 2.5 s after it opened (before 0.8 of the lease).
        time.sleep(2.5)
        assert silent.accepted >= 1, "no connection reached the silent server"
    finally:
        silent.close()
    cluster.start()
    wait_until(lambda: drained(fault_db), fleet.explain("the drain"), timeout=90)
    assert '"msg": "lost the database' not in w.log_text(), fleet.logs()
    rows = query(fault_db, "SELECT status::text, attempts FROM supaworker.jobs WHERE id = ANY (%s)", (ids,))
    assert rows == [("completed", 1)] * 4, (rows, fleet.logs())
    report("silent-after-down-lease-6s", jobs=4, fenced=0, charged=0)


def test_a_server_seen_down_that_stays_silent_still_fences_the_worker(
    cluster: PrivateCluster, fault_db: str, fleet: Fleet
) -> None:
    # The other side of the test above: silence that outlasts 0.8 of a lease after the server was last seen
    # down may be a partition that began as the server came back, and the worker fences itself as ever.
    _, w, silent = _silence_after_down(cluster, fault_db, fleet, jobs=1, sleep=60, lease=3)
    try:
        wait_until(lambda: '"msg": "lost the database' in w.log_text(), fleet.explain("the worker to fence itself"))
    finally:
        silent.close()
        cluster.start()


def test_a_worker_that_dies_during_an_outage_is_still_rescued_soon_after(
    cluster: PrivateCluster, fault_db: str, fleet: Fleet
) -> None:
    # The grace that spares live workers after an outage must not spare a dead one for long.
    ids = enqueue_effects(fault_db, 4, max_attempts=3, job_type="slow_async", sleep=8)
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    victim = fleet.start(env, "-c", "4", "--lease-seconds", "2", name="victim")
    wait_until(lambda: query(fault_db, "SELECT count(*) FROM public.test_starts")[0][0] == 4, "every job to start")
    survivor = fleet.start(env, "-c", "4", "--lease-seconds", "2", name="survivor")
    fleet.wait_started()
    cluster.stop("immediate")
    victim.signal(signal.SIGKILL)
    victim.proc.wait(10)
    time.sleep(3)
    cluster.start()
    back = time.monotonic()
    started_by_survivor = "SELECT count(DISTINCT job_id) FROM public.test_starts WHERE pid = %s"
    wait_until(
        lambda: query(fault_db, started_by_survivor, (survivor.pid,))[0][0] == 4,
        fleet.explain("the survivor to run the dead worker's jobs"),
        timeout=30,
    )
    took = time.monotonic() - back
    # The leases ran out during the outage; what is left is the grace after it (one lease, 2 s), the survivor's
    # reconnection, its rescue interval (0.5 s) and its claim: 2-2.5 s here, a few seconds of slack for a busy
    # machine.
    assert took < 10, (took, fleet.logs())
    wait_until(lambda: drained(fault_db), fleet.explain("the drain"), timeout=60)
    rows = query(fault_db, "SELECT status::text, attempts FROM supaworker.jobs WHERE id = ANY (%s)", (ids,))
    assert rows == [("completed", 2)] * 4, rows  # the attempt that died with its worker is charged
    report("dead-in-outage-lease-2s", jobs=4, rescued_after_restart_s=round(took, 1))


@pytest.fixture
def proxy(cluster: PrivateCluster) -> Iterator[FreezableProxy]:
    p = FreezableProxy("127.0.0.1", cluster.port)
    yield p
    p.close()


async def test_completions_sent_with_start_records_survive_a_server_crash(
    cluster: PrivateCluster, fault_db: str
) -> None:
    # A worker writes its finished jobs' completions, its start records and its next claim in one transaction.
    # The start record alone may commit without waiting for the disk; the completions may not: a crash right
    # after the worker was told they were written must not lose them (the jobs would run again, charged).
    # With the WAL writer slowed, an asynchronous commit is still only in shared memory when the server dies.
    ids = enqueue_effects(fault_db, 3, job_type="noop")
    with psycopg.connect(cluster.url, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
        admin.execute("SELECT pg_reload_conf()")
    worker = make_worker(fault_db, Registry(), lease_seconds=60)
    try:
        await worker.store.open()
        claimed = await worker.store.claim_jobs("w1", ClaimRequest(3, 60, start=3))
        assert sorted(job.id for job in claimed) == ids
        done, _ = await worker.store.write_and_claim_jobs(
            "w1", (ids, [1, 1, 1], [None, None, None]), claimed[-1]._claim_seq, ClaimRequest(1, 60)
        )
        assert done == set(ids)
        cluster.stop("immediate")
    finally:
        await worker.store.close()
        cluster.start()
        with psycopg.connect(cluster.url, autocommit=True) as admin:
            admin.execute("ALTER SYSTEM RESET wal_writer_delay")
            admin.execute("SELECT pg_reload_conf()")
    assert status_counts(fault_db) == {"completed": 3}


def test_a_cut_off_worker_stops_its_jobs_before_another_is_given_them(
    fault_db: str, fleet: Fleet, proxy: FreezableProxy
) -> None:
    [job_id] = enqueue_effects(fault_db, 1, max_attempts=3, job_type="slow_async", sleep=20)
    behind = proxy.url_for(fault_db)
    # Through the proxy the server's port differs from the one connected to, which looks like a pooler.
    env = worker_env(behind, fault_db, SUPAWORKER_POOLER_MODE="session", **FAST_ENV)
    cut = fleet.start(env, "-c", "2", "--lease-seconds", "5", name="cut")
    fleet.wait_started()
    wait_until(lambda: query(fault_db, "SELECT count(*) FROM public.test_starts")[0][0] == 1, "the job to start")
    proxy.freeze()
    frozen_at = time.monotonic()
    healthy = fleet.start(worker_env(fault_db, fault_db, **FAST_ENV), "-c", "2", "--lease-seconds", "5", name="ok")
    wait_until(
        lambda: '"msg": "lost the database' in cut.log_text(), fleet.explain("the cut-off worker to fence itself")
    )
    fenced_after = time.monotonic() - frozen_at
    wait_until(
        lambda: query(fault_db, "SELECT count(*) FROM public.test_starts")[0][0] == 2,
        fleet.explain("the healthy worker to take the job over"),
    )
    taken_after = time.monotonic() - frozen_at
    assert fenced_after < taken_after, (fenced_after, taken_after)
    time.sleep(3)
    proxy.thaw()
    wait_until(lambda: '"msg": "database reachable again' in cut.log_text(), fleet.explain("recovery"))
    # Back on its feet: it claims and runs new work by itself.
    healthy.stop()
    more = enqueue_effects(fault_db, 5, job_type="effect")
    wait_until(
        lambda: query(fault_db, "SELECT count(*) FROM supaworker.jobs WHERE id = ANY (%s) AND status = 'completed'",
                      (more,))[0][0] == 5,
        fleet.explain("the recovered worker to drain new jobs"),
    )  # fmt: skip
    wait_until(lambda: drained(fault_db), fleet.explain("the slow job to finish"), timeout=60)
    # The first attempt ended when the worker lost the database; the job ran to completion once.
    assert query(fault_db, "SELECT count(*) FROM public.test_effects WHERE job_id = %s", (job_id,)) == [(1,)]
    report("frozen-link", lease_s=5, fenced_after_s=round(fenced_after, 1), taken_over_after_s=round(taken_after, 1))
