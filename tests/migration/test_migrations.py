"""Migrations: applied once, a no-op when current, safe when run concurrently, refused when the database is
newer. (What they produce is checked against sql/schema.sql by test_schema_file.py.)"""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from supaworker import sql
from supaworker.errors import MigrationError
from supaworker.migrate import check_current, migrate

from ..conftest import REPO, run_cli, subprocess_env


def applied(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT version, name FROM supaworker.migrations ORDER BY version").fetchall()


def test_migrate_installs_every_migration_then_is_a_no_op(empty_db: str) -> None:
    first = run_cli(empty_db, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied migrations" in first.stdout
    versions = [(m.version, m.name) for m in sql.migrations()]
    assert applied(empty_db) == versions
    second = run_cli(empty_db, "migrate")
    assert (second.returncode, second.stdout.strip()) == (0, "schema supaworker: up to date")
    assert applied(empty_db) == versions


def test_migrate_tells_postgrest_to_reload_its_schema_cache_when_it_changed_something(empty_db: str) -> None:
    # PostgREST answered "function not found" (PGRST202) for functions a migration added until it restarted:
    # a worker over it stopped at its first rescue after an upgrade.
    with psycopg.connect(empty_db, autocommit=True) as listener:
        listener.execute("LISTEN pgrst")
        assert run_cli(empty_db, "migrate").returncode == 0
        heard = [n.payload for n in listener.notifies(timeout=1)]
        assert len(heard) == len(sql.migrations()) and set(heard) == {"reload schema"}  # one with each migration
        assert run_cli(empty_db, "migrate").returncode == 0  # up to date: nothing to reload
        assert [n.payload for n in listener.notifies(timeout=0.5, stop_after=5)] == []


def test_concurrent_migrate_processes_apply_each_version_once(empty_db: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "supaworker", "migrate"],
            env=subprocess_env(empty_db),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert applied(empty_db) == [(m.version, m.name) for m in sql.migrations()]


def test_migrate_refuses_a_database_migrated_by_a_newer_version(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("INSERT INTO supaworker.migrations (version, name) VALUES (9999, 'from_the_future')")
    result = run_cli(db, "migrate")
    assert result.returncode == 4
    assert "newer than this supaworker" in result.stderr


def test_worker_refuses_a_newer_schema_only_after_a_breaking_migration(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        # A newer release migrated without breaking anything (a rolling deploy): this release still runs.
        c.execute("INSERT INTO supaworker.migrations (version, name) VALUES (9998, 'from_the_future')")
        check_current(c, "supaworker")
        c.execute("INSERT INTO supaworker.migrations (version, name, breaking) VALUES (9999, 'breaks_it', true)")
        with pytest.raises(MigrationError, match=r"migration\(s\) \[9999\]"):
            check_current(c, "supaworker")
    worker = run_cli(db, "worker", "--import", "tests.support.handlers.basic")
    assert worker.returncode == 4 and "newer" in worker.stderr and "[9999]" in worker.stderr


def test_migrations_record_whether_they_break_the_previous_release(db: str) -> None:
    with psycopg.connect(db) as c:
        recorded = dict(c.execute("SELECT version, breaking FROM supaworker.migrations").fetchall())
    assert recorded == {m.version: m.breaking for m in sql.migrations()}
    assert not any(recorded.values())  # none so far: every one keeps the previous release running


def test_worker_refuses_an_unmigrated_database_with_a_hint(empty_db: str) -> None:
    result = run_cli(empty_db, "worker", "--import", "tests.support.handlers.basic")
    assert result.returncode == 4
    assert "run `supaworker migrate`" in result.stderr
    with psycopg.connect(empty_db) as c, pytest.raises(MigrationError, match="missing migrations"):
        check_current(c, "supaworker")


def test_custom_schema_leaves_default_schema_alone(empty_db: str) -> None:
    migrate(empty_db, "jobs_private")
    with psycopg.connect(empty_db) as c:
        schemas = {r[0] for r in c.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'")}
        assert "jobs_private" in schemas and "supaworker" not in schemas
        c.execute("SELECT * FROM jobs_private.claim_jobs('w', NULL, 1, 30)")
