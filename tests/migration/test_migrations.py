"""Migrations: applied once, a no-op when current, safe when run concurrently, refused when the database is
newer, and a schema snapshot that fails on unreviewed drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from supaworker import sql
from supaworker.errors import MigrationError
from supaworker.migrate import check_current, migrate

from ..conftest import REPO, run_cli, subprocess_env

SNAPSHOT = Path(__file__).with_name("schema.snapshot")


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
    worker = run_cli(db, "worker", "--import", "tests.acceptance.handlers")
    assert worker.returncode == 4 and "newer" in worker.stderr


def test_worker_refuses_an_unmigrated_database_with_a_hint(empty_db: str) -> None:
    result = run_cli(empty_db, "worker", "--import", "tests.acceptance.handlers")
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


SNAPSHOT_QUERY = """
SELECT 'table ' || c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '') FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'v', 'p')
UNION ALL
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' '
       || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = %(s)s
UNION ALL
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = %(s)s::regnamespace
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = %(s)s
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text || ' -> ' || pg_get_function_result(p.oid) || ' '
       || md5(p.prosrc) || coalesce(' SET ' || array_to_string(p.proconfig, ', '), '')
  FROM pg_proc p WHERE p.pronamespace = %(s)s::regnamespace
UNION ALL
SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname FROM pg_trigger
 WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = %(s)s::regnamespace)
UNION ALL
SELECT 'view ' || viewname || ' ' || md5(definition) FROM pg_views WHERE schemaname = %(s)s
UNION ALL
SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_type t
  JOIN pg_enum e ON e.enumtypid = t.oid WHERE t.typnamespace = %(s)s::regnamespace GROUP BY t.typname
ORDER BY 1
"""


def schema_snapshot(url: str) -> str:
    with psycopg.connect(url) as c:
        lines = [
            r[0].replace('"supaworker".', "supaworker.").rstrip()
            for r in c.execute(SNAPSHOT_QUERY, {"s": "supaworker"})
        ]
    return "\n".join(lines) + "\n"


def test_schema_matches_the_reviewed_snapshot(db: str) -> None:
    """Fails on any schema change not reviewed: regenerate with UPDATE_SCHEMA_SNAPSHOT=1 and read the diff."""
    current = schema_snapshot(db)
    if os.environ.get("UPDATE_SCHEMA_SNAPSHOT"):
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), "no snapshot yet: run with UPDATE_SCHEMA_SNAPSHOT=1"
    assert current == SNAPSHOT.read_text()
