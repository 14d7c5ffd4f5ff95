"""`supaworker worker --processes N` under hostile conditions: a supervisor killed and started again, a worker
that cannot start again after a crash, and the exit codes of its stops."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

import supaworker
from supaworker.store import Store
from tests.conftest import REPO

from .conftest import Workers, count_by_status, wait_for
from .test_worker_process import _gone, free_port, get_json, job_status

pytestmark = pytest.mark.acceptance
# What is tested here is the supervisor's own: the same through PgBouncer.
direct_only = pytest.mark.parametrize("connection_path", ["direct"], indirect=True)

# A handler module that imports in the supervisor (and so in the workers it forks) but not in a worker
# process started fresh: every worker that replaces a dead one dies at start-up with exit code 1.
BROKEN_IN_FRESH_WORKERS = """
import sys

if "worker-process" in sys.argv:
    raise RuntimeError("cannot start in a fresh worker process")
"""


def _forked_children(workers: Workers, index: int = 0) -> list[int]:
    pattern = r"worker process started slot=\d+ pid=(\d+) forked=True"
    wait_for(lambda: len(re.findall(pattern, workers.log_text(index))) == 2, timeout=60, what="two forked workers")
    return [int(pid) for pid in re.findall(pattern, workers.log_text(index))]


@direct_only
def test_a_stop_while_a_crashing_worker_waits_to_be_restarted_ends_the_supervisor_at_once(
    db: str, workers: Workers, tmp_path: Path
) -> None:
    # The supervisor waited out the restart delay (up to 30 s) before it noticed the stop, and a second signal
    # did not end the wait either: there was no worker left to pass it on to.
    (tmp_path / "broken_in_fresh_workers.py").write_text(BROKEN_IN_FRESH_WORKERS)
    python_path = os.pathsep.join([str(REPO / "src"), str(REPO), str(tmp_path)])
    supervisor = workers.start("--processes", "2", "--import", "broken_in_fresh_workers", PYTHONPATH=python_path)
    victim, survivor = _forked_children(workers)
    os.kill(victim, signal.SIGKILL)
    # The third restart in a row waits 8 s (1, 2, 4, 8): far longer than a stop takes.
    wait_for(lambda: "restart_in=8.0" in workers.log_text(0), timeout=60, what="the slot to crash three times")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=6) == 0, workers.log_text(0)
    assert _gone(survivor)
    log = workers.log_text(0)
    assert "cannot start in a fresh worker process" in log
    assert "restart_in=16.0" not in log  # no worker was started after the stop


@direct_only
def test_health_says_unhealthy_while_a_worker_process_keeps_dying(db: str, workers: Workers, tmp_path: Path) -> None:
    # A worker process that could not start again was restarted with a growing delay for ever, while /health
    # answered 200 "healthy": only the log showed it.
    (tmp_path / "broken_in_fresh_workers.py").write_text(BROKEN_IN_FRESH_WORKERS)
    python_path = os.pathsep.join([str(REPO / "src"), str(REPO), str(tmp_path)])
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    supervisor = workers.start(
        "--processes", "2", "--import", "broken_in_fresh_workers",
        PYTHONPATH=python_path, ENABLE_HEALTH_CHECK="true", HEALTH_CHECK_PORT=str(port),
    )  # fmt: skip
    victim, _survivor = _forked_children(workers)
    wait_for(lambda: get_json(url)[0] == 200, timeout=60, what="healthy with two workers")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: "restart_in=2.0" in workers.log_text(0), timeout=60, what="the slot to crash again")
    status, body = get_json(url)
    assert status == 503 and body["status"] == "unhealthy", body
    assert body["error"].startswith("worker processes running: 1 of 2"), body
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0


@direct_only
def test_a_second_stop_to_the_supervisor_exits_130_as_a_single_worker_does(
    db: str, store: Store, workers: Workers
) -> None:
    # A single worker exits 130 when a second signal makes it leave its jobs; the supervisor that forced its
    # workers the same way exited 0, as after a graceful stop.
    supervisor = workers.start("--processes", "2", "--shutdown-grace", "60")
    children = _forked_children(workers)
    job = supaworker.create_job("record_sync", {"sleep": 60}, store=store)
    wait_for(lambda: job_status(db, job.id) == "processing", what="the job to start")
    supervisor.send_signal(signal.SIGTERM)
    wait_for(lambda: workers.log_text(0).count("signal received, finishing running jobs") == 2, what="the stop")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 130, workers.log_text(0)
    wait_for(lambda: all(_gone(pid) for pid in children), what="the workers to exit")
    assert job_status(db, job.id) == "processing"  # left to the lease and the rescuer, as the code says


@direct_only
def test_workers_of_a_killed_supervisor_finish_their_jobs_while_a_restarted_one_runs_the_rest_once(
    db: str, store: Store, workers: Workers
) -> None:
    # What systemd does after the supervisor is killed: start it again while its orphaned workers still run.
    first = workers.start("--processes", "2")
    orphans = _forked_children(workers)
    long = supaworker.create_job("record", {"sleep": 3}, store=store)
    wait_for(lambda: job_status(db, long.id) == "processing", what="the long job to start")
    first.kill()
    first.wait(timeout=10)
    second = workers.start("--processes", "2")
    _forked_children(workers, 1)
    ids = supaworker.create_jobs([{"type": "record"}] * 20, store=store)
    wait_for(lambda: count_by_status(db) == {"completed": 21}, what="every job to complete")
    wait_for(lambda: all(_gone(pid) for pid in orphans), what="the orphaned workers to exit")
    executions = workers.executions()
    assert set(executions) == {long.id, *ids}
    assert set(executions.values()) == {1}, executions  # none ran twice: the long one was not taken over
    assert f"job completed job_id={long.id} " in workers.log_text(0)  # by an orphan
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
