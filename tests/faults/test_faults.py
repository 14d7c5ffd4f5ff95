"""Fault injection with real worker processes on a real (private) PostgreSQL.

Each test says what it injected, how long recovery took, and how many jobs were lost (must be 0),
re-executed (at-least-once: only jobs in flight at the fault may run again) and completed twice (must be 0).
Run with `-s` to see the `FAULT ...` lines, or set SUPAWORKER_FAULT_REPORT=FILE to collect them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from tests.conftest import REPO
from tests.faults.conftest import FAST_ENV
from tests.faults.harness import Fleet, enqueue_effects, report, status_counts, tally, worker_env
from tests.servers import PrivateCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

LEASE = ["--lease-seconds", "2"]
FRESH_JOBS = 30  # enqueued after each fault: what the workers must run to show they recovered
# What PostgreSQL says when no connection slot is left for an ordinary role.
REFUSED = re.compile(r"too many clients|remaining connection slots are reserved")


def completed(url: str) -> int:
    return status_counts(url)["completed"]


def wait_for_progress_after(url: str, fleet: Fleet, what: str, baseline: int) -> float:
    """Seconds until the completed count rises above `baseline` (the first job finished after a fault)."""
    began = time.monotonic()
    logs = fleet.explain(what)
    wait_until(lambda: completed(url) > baseline, lambda: f"{logs()}\nfrom {baseline} completed: {status_counts(url)}")
    return round(time.monotonic() - began, 2)


def recovery_after_fault(url: str, fleet: Fleet, what: str) -> float:
    """Seconds until the first of FRESH_JOBS jobs enqueued now, after a fault, completes. Only a worker that
    recovered can run them, and a backlog drained while the test looked away cannot pass for a stalled fleet."""
    began = time.monotonic()
    fresh = enqueue_effects(url, FRESH_JOBS, sleep=0.01)
    logs = fleet.explain(what)

    def done() -> int:
        with psycopg.connect(url) as conn:
            query = "SELECT count(*) FROM supaworker.jobs WHERE id = ANY (%s) AND status = 'completed'"
            return conn.execute(query, (fresh,)).fetchone()[0]  # type: ignore[index]

    wait_until(done, lambda: f"{logs()}\n{status_counts(url)}")
    return round(time.monotonic() - began, 2)


def drained(url: str) -> bool:
    counts = status_counts(url)
    return counts["pending"] + counts["processing"] + counts["waiting"] == 0


def assert_nothing_lost(url: str, fleet: Fleet, jobs: int) -> None:
    result = tally(url, fleet)
    assert (result.jobs, result.completed, result.lost, result.completed_twice) == (jobs, jobs, 0, 0), result.line()
    assert status_counts(url)["processing"] == 0, "a job was left stuck in processing"


def test_postgres_restart_mid_run(cluster: PrivateCluster, fault_db: str, fleet: Fleet) -> None:
    enqueue_effects(fault_db, 600, sleep=0.01)
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    for _ in range(3):
        fleet.start(env, *LEASE, "--concurrency", "5")
    fleet.wait_started()
    wait_until(lambda: completed(fault_db) >= 100, fleet.explain("work to get going"))

    injected = time.monotonic()
    cluster.restart("fast")  # every connection of every worker is cut
    downtime = round(time.monotonic() - injected, 2)
    recovery = recovery_after_fault(fault_db, fleet, "progress after the restart")
    wait_until(lambda: drained(fault_db), fleet.explain("the queue to drain after the restart"))

    assert_nothing_lost(fault_db, fleet, 600 + FRESH_JOBS)
    result = tally(fault_db, fleet)
    assert all(w.proc.poll() is None for w in fleet.workers), f"a worker died instead of reconnecting\n{fleet.logs()}"
    assert "failed, retrying" in fleet.full_logs(), "the workers did not notice the restart"
    report("postgres-restart", injected="pg_ctl restart -m fast", downtime_s=downtime, recovery_s=recovery,
           **vars(result))  # fmt: skip


def test_worker_connections_terminated(fault_db: str, fleet: Fleet) -> None:
    enqueue_effects(fault_db, 600, sleep=0.01)
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    for _ in range(3):
        fleet.start(env, *LEASE, "--concurrency", "5")
    fleet.wait_started()
    wait_until(lambda: completed(fault_db) >= 100, fleet.explain("work to get going"))

    killed = 0
    recoveries = []
    for _ in range(3):  # several rounds: the replacement connections must survive being killed too
        with psycopg.connect(fault_db, autocommit=True) as admin:
            killed += admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND application_name <> 'effects'"
            ).fetchone()[0]  # type: ignore[index]
        recoveries.append(recovery_after_fault(fault_db, fleet, f"progress after round {len(recoveries) + 1}"))
    wait_until(lambda: drained(fault_db), fleet.explain("the queue to drain"))

    assert killed >= 9, f"only {killed} worker connections were terminated"
    assert_nothing_lost(fault_db, fleet, 600 + 3 * FRESH_JOBS)
    assert all(w.proc.poll() is None for w in fleet.workers), f"a worker died instead of reconnecting\n{fleet.logs()}"
    report("terminate-backends", injected=f"pg_terminate_backend x{killed} in 3 rounds",
           recovery_s=max(recoveries), **vars(tally(fault_db, fleet)))  # fmt: skip


def test_frozen_worker_is_fenced_out_when_it_resumes(fault_db: str, fleet: Fleet) -> None:
    # One job blocks the loop (its late completion reaches the database), two run in threads (the resumed
    # heartbeat learns they were taken and drops them): both ways a late outcome must be refused.
    with psycopg.connect(fault_db, autocommit=True) as conn:
        conn.execute("INSERT INTO supaworker.jobs (type, payload, priority) VALUES ('stall', '{\"sleep\": 1.5}', -1)")
    ids = [*enqueue_effects(fault_db, 2, sleep=1.5), 1]
    env = worker_env(fault_db, fault_db, **FAST_ENV)
    victim = fleet.start(env, *LEASE, "--concurrency", "3", name="frozen")
    victim_pattern = f"worker-{victim.pid}-%"

    def held_by_victim() -> int:
        with psycopg.connect(fault_db) as conn:
            return conn.execute(
                "SELECT count(*) FROM supaworker.jobs WHERE status = 'processing' AND worker_id LIKE %s",
                (victim_pattern,),
            ).fetchone()[0]  # type: ignore[index]

    wait_until(lambda: held_by_victim() == 3, fleet.explain("the victim to hold all 3 jobs"))
    victim.signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    fleet.start(env, *LEASE, "--concurrency", "3", name="rescuer")
    wait_until(lambda: completed(fault_db) == 3, fleet.explain("the rescuer to finish the frozen jobs"))
    rescued_in = round(time.monotonic() - frozen_at, 2)

    victim.signal(signal.SIGCONT)  # its handlers wake up finished and try to record their outcomes

    def victim_gave_up() -> set[int]:
        refused = {
            e["job_id"]
            for e in victim.events()
            if e.get("msg", "").startswith(("job completion rejected", "job lost", "job failure rejected"))
        }
        return refused if refused >= set(ids) else set()

    wait_until(victim_gave_up, fleet.explain("the resumed worker to log its refused outcomes"))
    wait_until(lambda: tally(fault_db, fleet).executions == 6, fleet.explain("the resumed worker's handlers to finish"))
    result = tally(fault_db, fleet)
    with psycopg.connect(fault_db) as conn:
        owners = conn.execute("SELECT DISTINCT worker_id LIKE %s FROM supaworker.jobs", (victim_pattern,)).fetchall()
    assert owners == [(False,)], "a job's final completion belongs to the frozen worker"
    assert (result.completed, result.lost, result.completed_twice) == (3, 0, 0), result.line()
    rejected = [e["job_id"] for e in victim.events() if e.get("msg", "").startswith("job completion rejected")]
    assert 1 in rejected, "the frozen worker's late completion of the loop-blocking job was not rejected"
    report("sigstop", injected="SIGSTOP 1 worker past its 2s lease, then SIGCONT", rescued_and_finished_s=rescued_in,
           late_completions_rejected=len(rejected), **vars(result))  # fmt: skip


def _hog_connections(url: str) -> list[psycopg.Connection]:
    """Opens connections until the server refuses more (only superuser-reserved slots stay free)."""
    hogs: list[psycopg.Connection] = []
    while True:
        try:
            hogs.append(psycopg.connect(url, autocommit=True))
        except psycopg.OperationalError as exc:
            assert "too many clients" in str(exc) or "reserved" in str(exc), exc
            return hogs
        assert len(hogs) < 500, "the server never refused a connection"


def test_exhausted_connections_give_clear_errors_and_recover(fault_db: str, fleet: Fleet) -> None:
    # The worker and the hogs log in as an ordinary role: the superuser-reserved slots stay for the test.
    with psycopg.connect(fault_db, autocommit=True) as admin:
        admin.execute("DO $$ BEGIN CREATE ROLE sw_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("GRANT ALL ON SCHEMA supaworker TO sw_app")
        admin.execute("GRANT ALL ON ALL TABLES IN SCHEMA supaworker TO sw_app")
        admin.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA supaworker TO sw_app")
        # A worker role of one's own needs a policy (or BYPASSRLS) on the RLS-enabled tables.
        for table in ("jobs", "job_dependencies"):
            admin.execute(f"CREATE POLICY sw_app_all ON supaworker.{table} TO sw_app USING (true) WITH CHECK (true)")
    app_url = psycopg.conninfo.make_conninfo(fault_db, user="sw_app")
    enqueue_effects(fault_db, 200, job_type="noop")
    w = fleet.start(worker_env(app_url, fault_db, **FAST_ENV), *LEASE, "--concurrency", "4")
    fleet.wait_started()
    wait_until(lambda: completed(fault_db) >= 200, fleet.explain("the first batch"))

    # Freeze the worker, cut its connections, and take every free slot before it can reconnect.
    w.signal(signal.SIGSTOP)
    with psycopg.connect(fault_db, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'sw_app'")
    hogs = _hog_connections(app_url)
    enqueue_effects(fault_db, 200, job_type="noop")
    w.signal(signal.SIGCONT)
    injected = time.monotonic()
    try:
        # A new command gets a one-line error and the configuration exit code, not a traceback.
        cli = subprocess.run(
            [sys.executable, "-m", "supaworker", "enqueue", "noop"],
            env=worker_env(app_url, fault_db), capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
        assert cli.returncode == 3, cli.stderr
        assert REFUSED.search(cli.stderr) and "Traceback" not in cli.stderr, cli.stderr
        # The running worker says what is wrong, and keeps trying.
        wait_until(lambda: REFUSED.search(w.log_text()), fleet.explain("the worker to report the refusal"))
        assert w.proc.poll() is None, f"the worker gave up\n{fleet.logs()}"
        stalled = completed(fault_db)
    finally:
        for hog in hogs:
            hog.close()
    freed = time.monotonic()
    recovery = wait_for_progress_after(fault_db, fleet, "progress once connections are free", stalled)
    wait_until(lambda: drained(fault_db), fleet.explain("the queue to drain"))

    counts = status_counts(fault_db)
    assert counts == {"completed": 400}, counts
    listen_warnings = w.log_text().count("LISTEN unavailable")
    assert listen_warnings == 1, f"LISTEN failures must be logged once, not {listen_warnings} times"
    report("exhausted-connections", injected=f"{len(hogs)} idle connections filling max_connections",
           exhausted_for_s=round(freed - injected, 2), recovery_after_release_s=recovery, jobs=400, lost=0,
           completed=counts["completed"])  # fmt: skip


PIN_SECONDS = float(os.environ.get("SUPAWORKER_FAULT_PIN_SECONDS", "20"))
WINDOW_SECONDS = 4.0
BACKLOG = 5000


def _rate(url: str, seconds: float) -> float:
    """Completions per second over the next `seconds` (a measurement, never asserted against a speed)."""
    before, began = completed(url), time.monotonic()
    time.sleep(seconds)
    return round((completed(url) - before) / (time.monotonic() - began), 1)


def test_queue_keeps_working_while_a_long_transaction_pins_the_vacuum_horizon(fault_db: str, fleet: Fleet) -> None:
    stop = threading.Event()

    def keep_backlog() -> None:  # jobs keep flowing in, as in production
        while not stop.is_set():
            if status_counts(fault_db)["pending"] < BACKLOG:
                enqueue_effects(fault_db, BACKLOG, job_type="noop")
            stop.wait(0.2)

    producer = threading.Thread(target=keep_backlog, daemon=True)
    producer.start()
    try:
        for _ in range(2):
            fleet.start(worker_env(fault_db, fault_db, **FAST_ENV), "--concurrency", "20")
        fleet.wait_started()
        wait_until(lambda: completed(fault_db) > 1000, fleet.explain("work to get going"))
        baseline = _rate(fault_db, WINDOW_SECONDS)
        with psycopg.connect(fault_db) as pin:
            pin.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            pin.execute("SELECT txid_current(), count(*) FROM supaworker.jobs")  # an xid and a snapshot, held
            pinned_early = _rate(fault_db, WINDOW_SECONDS)
            time.sleep(max(0.0, PIN_SECONDS - 3 * WINDOW_SECONDS))
            pinned_late = _rate(fault_db, WINDOW_SECONDS)
            with psycopg.connect(fault_db, autocommit=True) as admin:
                dead = admin.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'").fetchone()[0]  # type: ignore[index]
                admin.execute("VACUUM supaworker.jobs")  # cannot remove what the pinned snapshot may still see
                kept = admin.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'").fetchone()[0]  # type: ignore[index]
            pin.rollback()
        after = _rate(fault_db, WINDOW_SECONDS)
    finally:
        stop.set()
        producer.join(30)
    assert pinned_late > 0, "the queue stopped while the vacuum horizon was pinned"
    assert kept > 0, "the long transaction did not pin the horizon: the test injected nothing"
    drop = round(100 * (1 - pinned_late / baseline), 1) if baseline else None
    report("vacuum-horizon", injected=f"REPEATABLE READ transaction with an xid held {PIN_SECONDS:g}s",
           baseline_jobs_per_s=baseline, pinned_first_window=pinned_early, pinned_last_window=pinned_late,
           drop_pct=drop, dead_tuples=dead, dead_tuples_vacuum_could_not_remove=kept, after_release=after,
           completed=completed(fault_db))  # fmt: skip
