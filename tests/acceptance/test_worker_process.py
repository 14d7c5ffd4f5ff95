"""One `supaworker worker` process: signals, the supervisor, the health endpoint, structured logs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import supaworker
from supaworker.handlers import BUILTIN_HANDLERS
from supaworker.store import Store
from supaworker.worker.stopping import STOP_SIGNAL
from tests.faults.proxy import FreezableProxy
from tests.support.worker import OTHER_COMMAND_MODULES

from ..conftest import drop_database
from .conftest import Workers, count_by_status, unfinished, wait_for

pytestmark = pytest.mark.acceptance


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> tuple[int, dict]:
    """Status and body; (0, {}) while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body)
        except ValueError:
            raise AssertionError(f"GET {url}: {err.code} with a body that is not JSON: {body[:500]!r}") from None
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


def job_status(db: str, job_id: int) -> str:
    with psycopg.connect(db) as c:
        return c.execute("SELECT status::text FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone()[0]


def test_sigterm_lets_running_jobs_finish_then_exits_zero(db: str, store: Store, workers: Workers) -> None:
    ids = supaworker.create_jobs([{"type": "record_sync", "payload": {"sleep": 1.0}}] * 3, store=store)
    proc = workers.start("--concurrency", "3", "--shutdown-grace", "20")
    wait_for(lambda: count_by_status(db).get("processing", 0) == 3, what="jobs to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert [job_status(db, i) for i in ids] == ["completed"] * 3
    assert "shutting down" in workers.log_text(0)


def test_sigterm_releases_jobs_that_outlast_the_grace_period(db: str, store: Store, workers: Workers) -> None:
    long = supaworker.create_job("record", {"sleep": 120}, store=store)
    proc = workers.start("--shutdown-grace", "0.5")
    wait_for(lambda: job_status(db, long.id) == "processing", what="job to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    with psycopg.connect(db) as c:
        row = c.execute("SELECT status::text, attempts, worker_id FROM supaworker.jobs WHERE id = %s", (long.id,))
        assert row.fetchone() == ("pending", 0, None)
    # Another worker can take it at once, not after a lease runs out.
    assert "released unfinished jobs" in workers.log_text(0)


def test_second_signal_exits_at_once_with_code_130(db: str, store: Store, workers: Workers) -> None:
    job = supaworker.create_job("record_sync", {"sleep": 60}, store=store)
    proc = workers.start("--shutdown-grace", "60")
    wait_for(lambda: job_status(db, job.id) == "processing", what="job to start")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert job_status(db, job.id) == "processing"  # left to the lease and the rescuer


def test_a_claim_that_waited_for_a_migration_adding_a_column_is_made_again(
    db: str, store: Store, workers: Workers
) -> None:
    # A claim that begins while a migration adds a column to `jobs` waits for it, then fails when it commits:
    # the claim's SETOF jobs result took the table's shape at the call. The worker took that for fatal and
    # exited, which a rolling deploy adding a column would do to every worker claiming at that moment.
    proc = workers.start(WORKER_POLL_INTERVAL_MS="100")
    warm = supaworker.create_jobs([{"type": "record"}] * 20, store=store)  # its sessions have claimed jobs
    wait_for(lambda: all(job_status(db, i) == "completed" for i in warm), what="the first jobs to run")
    with psycopg.connect(db) as migration:
        migration.execute("ALTER TABLE supaworker.jobs ADD COLUMN added_by_a_migration integer")
        # Committed with the column: the claims waiting for the lock meanwhile find it and return a row.
        (job_id,) = migration.execute("INSERT INTO supaworker.jobs (type) VALUES ('record') RETURNING id").fetchone()
        time.sleep(1.5)
    wait_for(lambda: job_status(db, job_id) == "completed", what="the job to run")
    assert proc.poll() is None, workers.log_text(0)
    assert "the jobs table changed under a claim" in workers.log_text(0)


def test_supervisor_restarts_a_crashed_child_and_stops_all_on_sigterm(db: str, store: Store, workers: Workers) -> None:
    port = free_port()
    supervisor = workers.start("--processes", "2", ENABLE_HEALTH_CHECK="true", HEALTH_CHECK_PORT=str(port))

    def child_pids() -> set[int]:
        status, body = get_json(f"http://127.0.0.1:{port}/health")
        return set(body.get("children", [])) if status == 200 else set()

    wait_for(lambda: len(child_pids()) == 2, timeout=60, what="two children")
    children = child_pids()
    victim = min(children)

    os.kill(victim, signal.SIGKILL)
    # One look at a time: two (the count, then the victim) passed between the victim's end and its replacement.
    wait_for(lambda: (now := child_pids()) and len(now) == 2 and victim not in now, timeout=60, what="restart")
    ids = supaworker.create_jobs([{"type": "record"}] * 200, store=store)
    wait_for(lambda: unfinished(db) == 0, what="jobs done by the restarted group")
    supervisor.send_signal(signal.SIGTERM)
    last_children = child_pids()
    assert supervisor.wait(timeout=30) == 0
    for pid in last_children | children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert set(workers.executions()) == set(ids)
    assert "worker process died, restarting" in workers.log_text(0)
    # The first two were forked from the supervisor; the one that replaced the killed child started fresh.
    started = re.findall(r"worker process started slot=\d+ pid=\d+( forked=True)?", workers.log_text(0))
    assert started == [" forked=True", " forked=True", ""], started


def _children(port: int) -> set[int]:
    status, body = get_json(f"http://127.0.0.1:{port}/health")
    return set(body.get("children", [])) if status == 200 else set()


def _gone(pid: int) -> bool:
    """Exited (a zombie whose new parent has not reaped it yet counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


def test_a_stop_sent_to_the_supervisor_and_its_workers_at_once_is_still_graceful(
    db: str, store: Store, workers: Workers
) -> None:
    # systemd's default (KillMode=control-group) signals every process of the service; the supervisor passes
    # the stop on as well. Each worker must take that for one stop, not for "a second signal: exit at once".
    port = free_port()
    supervisor = workers.start("--processes", "2", ENABLE_HEALTH_CHECK="true", HEALTH_CHECK_PORT=str(port))
    wait_for(lambda: len(_children(port)) == 2, timeout=60, what="two children")
    children = _children(port)
    ids = supaworker.create_jobs([{"type": "record", "payload": {"sleep": 1.5}}] * 4, store=store)
    wait_for(lambda: len(workers.executions()) == 4, what="the four jobs to start")
    for pid in (supervisor.pid, *children):
        os.kill(pid, signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    wait_for(lambda: all(_gone(pid) for pid in children), what="the children to finish and exit")
    log = workers.log_text(0)
    assert "second signal" not in log, log
    assert count_by_status(db) == {"completed": 4}  # they finished their jobs: a graceful stop
    assert set(workers.executions()) == set(ids)


def test_a_supervisors_stop_then_the_workers_own_sigterm_is_one_stop(db: str, store: Store, workers: Workers) -> None:
    # Under systemd's control-group kill the supervisor may pass the stop on before the worker's own SIGTERM
    # arrives; the worker took that SIGTERM for a second signal and exited at once, leaving its jobs.
    ids = supaworker.create_jobs([{"type": "record", "payload": {"sleep": 1.5}}] * 3, store=store)
    proc = workers.start()
    wait_for(lambda: len(workers.executions()) == 3, what="the three jobs to start")
    proc.send_signal(STOP_SIGNAL)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "second signal" not in workers.log_text(0)
    assert count_by_status(db) == {"completed": 3}
    assert set(workers.executions()) == set(ids)


def test_a_second_stop_sent_to_the_supervisor_makes_its_workers_exit_at_once(
    db: str, store: Store, workers: Workers
) -> None:
    port = free_port()
    supervisor = workers.start("--processes", "2", "--shutdown-grace", "60", ENABLE_HEALTH_CHECK="true",
                               HEALTH_CHECK_PORT=str(port))  # fmt: skip
    wait_for(lambda: len(_children(port)) == 2, timeout=60, what="two children")
    children = _children(port)
    job = supaworker.create_job("record_sync", {"sleep": 60}, store=store)
    wait_for(lambda: job_status(db, job.id) == "processing", what="job to start")
    supervisor.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(timeout=15)
    wait_for(lambda: all(_gone(pid) for pid in children), timeout=10, what="the children to exit at once")
    assert "told to exit at once" in workers.log_text(0)
    assert job_status(db, job.id) == "processing"  # left to the lease and the rescuer


def test_workers_whose_supervisor_died_stop_by_themselves(db: str, workers: Workers) -> None:
    # In a process group of their own, a terminal's hang-up no longer reaches them: they watch their parent.
    port = free_port()
    supervisor = workers.start("--processes", "2", ENABLE_HEALTH_CHECK="true", HEALTH_CHECK_PORT=str(port))
    wait_for(lambda: len(_children(port)) == 2, timeout=60, what="two children")
    children = _children(port)
    supervisor.kill()
    supervisor.wait(timeout=10)
    wait_for(lambda: all(_gone(pid) for pid in children), timeout=30, what="the orphaned workers to stop")
    assert workers.log_text(0).count("supervisor gone") == 2


def test_health_endpoint_reports_healthy_then_503_when_database_goes(db: str, workers: Workers) -> None:
    port = free_port()
    workers.start(ENABLE_HEALTH_CHECK="true", HEALTH_CHECK_PORT=str(port))
    url = f"http://127.0.0.1:{port}/health"

    wait_for(lambda: get_json(url)[0] == 200, timeout=30, what="health endpoint")
    status, body = get_json(url)
    assert status == 200
    assert body["status"] == "healthy" and body["active_jobs"] == 0 and body["uptime"] >= 0
    assert body["worker_id"].startswith("worker-")
    drop_database(conninfo_to_dict(db)["dbname"])
    wait_for(lambda: get_json(url)[0] == 503, timeout=30, what="unhealthy")
    status, body = get_json(url)
    assert body["status"] == "unhealthy" and "database unreachable" in body["error"]


def test_json_logs_have_one_structured_line_per_job_event(db: str, store: Store, workers: Workers) -> None:
    supaworker.create_job("flaky", {"succeed_on": 2}, store=store)
    proc = workers.start(LOG_FORMAT="json", SUPAWORKER_RETRY_BASE_SECONDS="0.05")
    wait_for(lambda: unfinished(db) == 0, what="job to finish")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    events = [json.loads(line) for line in workers.log_text(0).splitlines() if line.startswith("{")]
    by_msg = {e["msg"]: e for e in events}
    retry, done = by_msg["job failed, will retry"], by_msg["job completed"]
    assert (retry["attempt"], done["attempt"]) == (1, 2)
    assert retry["job_id"] == done["job_id"] and done["type"] == "flaky" and "duration_ms" in done
    assert retry["error"] == "RuntimeError: flaky attempt 1"


# Settings away from their defaults: the options come from them where no flag overrides them.
SPEC_ENV = {
    "LOG_FORMAT": "json",
    "WORKER_MAX_CONCURRENT_JOBS": "4",
    "WORKER_POLL_INTERVAL_MS": "400",
    "WORKER_JOB_TIMEOUT_MS": "20000",
    "SUPAWORKER_SHUTDOWN_GRACE_SECONDS": "3",
    "SUPAWORKER_RESCUE_INTERVAL_SECONDS": "4",
    "SUPAWORKER_RETRY_BASE_SECONDS": "0.25",
    "SUPAWORKER_RETRY_CAP_SECONDS": "9",
}
PREFETCH_AND_TYPES = (
    ["--concurrency", "3", "--prefetch", "5", "--lease-seconds", "7.5", "--poll-interval-ms", "250",
     "--job-timeout-ms", "4000", "--shutdown-grace", "2.5", "--type", "record", "--type", "flaky",
     "--queue", "a", "--queue", "b"],
    {"concurrency": 3, "prefetch": 5, "lease_seconds": 7.5, "poll_interval_seconds": 0.25, "job_timeout_seconds": 4.0,
     "shutdown_grace_seconds": 2.5, "types": ["record", "flaky"], "queues": ["a", "b"], "queue_concurrency": None,
     "builtins": True},
)  # fmt: skip
QUEUE_SLOTS = (  # queue b gets the default concurrency (the environment's 4) as its slots
    ["--queue", "a=2", "--queue", "b", "--lease-seconds", "0.9", "--no-builtins"],
    {"concurrency": 6, "prefetch": 0, "lease_seconds": 0.9, "poll_interval_seconds": 0.4, "job_timeout_seconds": 20.0,
     "shutdown_grace_seconds": 3.0, "types": None, "queues": ["a", "b"], "queue_concurrency": {"a": 2, "b": 4},
     "builtins": False},
)  # fmt: skip


@pytest.mark.parametrize(("args", "resolved"), [PREFETCH_AND_TYPES, QUEUE_SLOTS], ids=["prefetch", "queue-slots"])
def test_supervised_children_run_with_exactly_the_options_their_parent_resolved(
    db: str, tmp_path: Path, args: list[str], resolved: dict[str, object]
) -> None:
    group = Workers(db, tmp_path / "side-effects.txt", tmp_path)
    try:
        supervisor = group.start("--processes", "2", *args, **SPEC_ENV)

        def events(msg: str) -> list[dict]:
            lines = group.log_text(0).splitlines()
            return [e for e in (json.loads(line) for line in lines if line.startswith("{")) if e["msg"] == msg]

        wait_for(lambda: len(events("worker started")) == 2, timeout=60, what="two children to start")
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
    finally:
        group.kill_all()
    expected = {
        "rescue_interval_seconds": 4.0,
        "retry_base_seconds": 0.25,
        "retry_cap_seconds": 9.0,
        "imports": ["tests.support.handlers.basic"],
        **resolved,
    }
    told = [
        {k: v for k, v in e.items() if k not in ("ts", "level", "logger", "msg")}
        for e in events("worker process options")
    ]
    assert told == [expected, expected]
    # What the running workers report agrees: their slots, and the types they claim (no built-in one without them).
    for started in events("worker started"):
        assert started["concurrency"] == resolved["concurrency"]
        if resolved["types"]:
            assert started["types"] == ",".join(resolved["types"])
        claimed = set(started["types"].split(","))
        assert bool(claimed & set(BUILTIN_HANDLERS)) == (resolved["builtins"] and not resolved["types"])


# Modules a worker loads only for other commands, or once its first claim is answered (the maintenance
# service and the health endpoint); its first job must not wait for any of them.
NOT_BEFORE_THE_FIRST_JOB = [
    *OTHER_COMMAND_MODULES,
    "supaworker.briefs",
    "supaworker.client",
    "supaworker.new_job",
    "supaworker.periodic",
    "supaworker.store.sync",
    "supaworker.maintenance.service",
    "supaworker.worker.health",
    "croniter",
    "starlette",
    "uvicorn",
]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_first_job_runs_before_what_the_worker_needs_only_later_is_loaded_then_that_starts(
    db: str, store: Store, workers: Workers, tmp_path: Path, processes: str
) -> None:
    # With --processes 2 the job runs in a child forked from the supervisor, which holds everything the
    # supervisor loaded before forking: its health endpoint's web server is loaded after.
    modules_file = tmp_path / "modules.json"
    supaworker.create_job("report_modules", store=store)
    port = free_port()
    workers.start("--import", "tests.support.handlers.startup", "--processes", processes, ENABLE_HEALTH_CHECK="true",
                  HEALTH_CHECK_PORT=str(port), MODULES_FILE=str(modules_file))  # fmt: skip
    wait_for(lambda: modules_file.exists() and modules_file.stat().st_size > 0, timeout=60, what="the first job")
    loaded = set(json.loads(modules_file.read_text()))
    assert "supaworker.worker.runner" in loaded
    assert sorted(loaded & set(NOT_BEFORE_THE_FIRST_JOB)) == []
    # Both start once the first claim is answered: the health endpoint answers, the maintenance service runs
    # (it elects a leader, this worker being the only one).
    wait_for(lambda: get_json(f"http://127.0.0.1:{port}/health")[0] == 200, timeout=30, what="health endpoint")
    with psycopg.connect(db) as conn:
        wait_for(
            lambda: (
                conn.execute("SELECT count(*) FROM supaworker.leaders WHERE name = 'maintenance'").fetchone() == (1,)
            ),
            timeout=30,
            what="a maintenance leader",
        )


# -- stops during start-up -------------------------------------------------------------------------------------
GATED = ("--import", "tests.support.handlers.gated")
# Start-up is the same through PgBouncer: these run on the database itself only.
direct_only = pytest.mark.parametrize("connection_path", ["direct"], indirect=True)


def _held(tmp_path: Path, count: int = 1) -> list[int]:
    """The pids of the processes the gated handler module holds at its import (`$IMPORT_GATE.<pid>` files)."""
    wait_for(lambda: len(list(tmp_path.glob("gate.*"))) >= count, timeout=60, what="workers held at their imports")
    return [int(path.suffix[1:]) for path in tmp_path.glob("gate.*")]


@direct_only
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, STOP_SIGNAL], ids=lambda s: signal.Signals(s).name)
def test_a_stop_while_the_handler_modules_import_exits_zero_at_once(
    db: str, store: Store, workers: Workers, tmp_path: Path, sig: int
) -> None:
    # Before the event loop took the signals over, SIGTERM (and a supervisor's stop) killed the process and
    # SIGINT ended it with a traceback or click's "Aborted!" (exit 1).
    job = supaworker.create_job("record", store=store)
    proc = workers.start(*GATED, IMPORT_GATE=str(tmp_path / "gate"))
    _held(tmp_path)
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0, workers.log_text(0)
    log = workers.log_text(0)
    assert "signal received while starting" in log
    assert "Traceback" not in log and "Aborted" not in log, log
    assert job_status(db, job.id) == "pending"


@direct_only
def test_a_supervisor_stopped_while_its_workers_start_stops_them_gracefully(
    db: str, workers: Workers, tmp_path: Path
) -> None:
    # A thread started by a handler module keeps the supervisor from forking: its workers start fresh and
    # import the handler modules, where the gate holds them.
    supervisor = workers.start("--processes", "2", *GATED, "--import", "tests.support.handlers.threaded",
                               IMPORT_GATE=str(tmp_path / "gate"), IMPORT_GATE_ONLY_IN="worker-process")  # fmt: skip
    children = _held(tmp_path, 2)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=15) == 0
    wait_for(lambda: all(_gone(pid) for pid in children), timeout=10, what="the children to exit")
    log = workers.log_text(0)
    assert re.findall(r"worker process exited .*code=(-?\d+)", log) == ["0", "0"], log


@direct_only
def test_a_stop_while_the_database_is_gone_before_the_first_claim_exits_at_once(
    db: str, store: Store, workers: Workers, tmp_path: Path
) -> None:
    # The database went away after the worker's probe: opening its connections waits up to OPEN_TIMEOUT_SECONDS
    # (30) for it to come back, and a stop did not end that wait.
    proxy = FreezableProxy.in_front_of(db)
    job = supaworker.create_job("record", store=store)
    gate = tmp_path / "gate"
    try:
        proc = workers.start(*GATED, IMPORT_GATE=str(gate), DATABASE_URL=proxy.url_for(db))
        _held(tmp_path)
    finally:
        proxy.close()  # every connection through it is cut, and new ones are refused
    gate.touch()
    wait_for(lambda: "error connecting" in workers.log_text(0), timeout=30, what="the worker to wait for connections")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, workers.log_text(0)
    assert "Traceback" not in workers.log_text(0)
    assert job_status(db, job.id) == "pending"


@direct_only
def test_a_stop_that_a_frozen_link_holds_up_ends_after_the_grace_period_and_a_lease_for_a_worker_holding_a_job(
    db: str, store: Store, workers: Workers
) -> None:
    # A link that stops carrying data while its sockets stay open (a hung proxy or pooler) never answers the
    # statement the worker waits for: a SIGTERM then waited forever. With a job still in its thread the worker
    # gives it the grace period and a lease, then exits as on a second signal.
    proxy = FreezableProxy.in_front_of(db)
    job = supaworker.create_job("record_sync", {"sleep": 60}, store=store)
    try:
        proc = workers.start("--lease-seconds", "2", "--shutdown-grace", "1", SUPAWORKER_POOLER_MODE="session",
                             DATABASE_URL=proxy.url_for(db))  # fmt: skip
        wait_for(lambda: workers.executions()[job.id] == 1, timeout=30, what="the job to start")
        proxy.freeze()
        time.sleep(0.5)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 130, workers.log_text(0)
        assert time.monotonic() - stopped >= 2.5  # the grace period and a lease, less what the signal took
    finally:
        proxy.close()
    log = workers.log_text(0)
    assert "could not finish stopping" in log and "Traceback" not in log, log


@direct_only
def test_a_stop_that_a_frozen_link_holds_up_ends_soon_for_a_worker_holding_no_job(db: str, workers: Workers) -> None:
    # Idle, the worker waits only for its claim or its "I wait for jobs": nothing of its own is left to finish,
    # record or hand back, so it does not wait out the grace period and a lease (a minute by default).
    proxy = FreezableProxy.in_front_of(db)
    try:
        proc = workers.start("--lease-seconds", "30", "--shutdown-grace", "30", SUPAWORKER_POOLER_MODE="session",
                             DATABASE_URL=proxy.url_for(db))  # fmt: skip
        wait_for(lambda: "worker started" in workers.log_text(0), timeout=30, what="the worker to start")
        time.sleep(0.5)  # idle: it claims now and then, and says it waits for jobs
        proxy.freeze()
        time.sleep(0.5)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, workers.log_text(0)
        assert time.monotonic() - stopped < 15
    finally:
        proxy.close()
    log = workers.log_text(0)
    assert "no job held" in log and "could not finish stopping" not in log and "Traceback" not in log, log


@direct_only
def test_health_endpoint_comes_up_while_the_first_claim_waits(db: str, store: Store, workers: Workers) -> None:
    # It starts once the first claim is answered, so that the first jobs do not wait for it; a first claim that
    # is not answered (a lock held, a database gone since the probe) kept it down all along.
    job = supaworker.create_job("record", store=store)
    port = free_port()
    with psycopg.connect(db) as lock:
        # Claims wait (they lock rows); reading the table does not.
        lock.execute("LOCK TABLE supaworker.jobs IN EXCLUSIVE MODE")
        workers.start(ENABLE_HEALTH_CHECK="true", HEALTH_CHECK_PORT=str(port))
        wait_for(lambda: get_json(f"http://127.0.0.1:{port}/health")[0] == 200, timeout=30, what="health endpoint")
        assert job_status(db, job.id) == "pending"
    wait_for(lambda: job_status(db, job.id) == "completed", what="the job, once the lock is gone")


@direct_only
def test_a_supervisor_whose_handler_modules_opened_a_connection_starts_its_workers_fresh(
    db: str, store: Store, workers: Workers
) -> None:
    # Forked, both workers would share the one connection the module opened in the supervisor.
    supervisor = workers.start("--processes", "2", "--import", "tests.support.handlers.connected", "-c", "2")
    ids = supaworker.create_jobs([{"type": "own_connection"}] * 40, store=store)
    wait_for(lambda: unfinished(db) == 0, what="the jobs")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    with psycopg.connect(db) as conn:
        results = [r for (r,) in conn.execute("SELECT result FROM supaworker.jobs WHERE id = ANY (%s)", (ids,))]
    assert count_by_status(db) == {"completed": 40}, workers.log_text(0)
    backends = {(r["worker"], r["backend"]) for r in results}
    assert len({w for w, _ in backends}) == len({b for _, b in backends}) == len(backends), backends
    assert "forked=True" not in workers.log_text(0)


def test_a_worker_whose_health_port_is_taken_says_so_and_works_on(db: str, store: Store, workers: Workers) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", port))
        taken.listen()
        proc = workers.start(ENABLE_HEALTH_CHECK="true", HEALTH_CHECK_PORT=str(port))
        ids = supaworker.create_jobs([{"type": "record"}] * 5, store=store)
        wait_for(lambda: unfinished(db) == 0, what="the jobs, without a health endpoint")
        wait_for(lambda: "health check endpoint could not start" in workers.log_text(0), what="the log line")
    log = workers.log_text(0)
    assert f"port={port}" in log and "port in use or not allowed" in log, log
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert set(workers.executions()) == set(ids)
