"""`supaworker doctor` on a direct connection, behind PgBouncer in transaction mode, and on broken setups."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import admin_url, run_cli, subprocess_env
from tests.servers import PgBouncer


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    b = PgBouncer(admin_url()).start()
    yield b
    b.stop()


def doctor(url: str, **env: str) -> tuple[int, dict[str, dict[str, str]]]:
    result = run_cli(None, "doctor", "--json", env=subprocess_env(url, **env))
    assert result.returncode in (0, 9), result.stderr
    return result.returncode, {f["check"]: f for f in json.loads(result.stdout)}


def test_doctor_passes_on_a_direct_connection(db: str) -> None:
    code, found = doctor(db)
    assert code == 0, found
    assert found["connection"]["detail"].startswith("direct connection")
    assert "NOTIFY reached" in found["listen"]["detail"]
    assert found["migrations"]["status"] == "ok" and found["rls"]["status"] == "ok"
    assert {f["status"] for f in found.values()} <= {"ok", "warn"}


def test_doctor_explains_a_transaction_pooler(db: str, bouncer: PgBouncer) -> None:
    code, found = doctor(bouncer.url_for(db))
    assert code == 0, found
    assert found["connection"]["detail"].startswith("transaction pooler")
    assert found["listen"]["status"] == "ok" and "did not arrive" in found["listen"]["detail"]


def test_doctor_fails_a_pooler_the_workers_would_listen_through(db: str, bouncer: PgBouncer) -> None:
    code, found = doctor(bouncer.url_for(db), SUPAWORKER_POOLER_MODE="none")
    assert code == 9
    assert (
        found["connection"]["status"] == "fail" and "SUPAWORKER_POOLER_MODE=transaction" in found["connection"]["fix"]
    )
    assert found["listen"]["status"] == "fail"


def test_doctor_reports_missing_migrations(empty_db: str) -> None:
    code, found = doctor(empty_db)
    assert code == 9
    assert found["migrations"]["fix"] == "run `supaworker migrate`"


def test_a_schema_migrate_would_refuse_is_not_answered_with_run_migrate(empty_db: str) -> None:
    # `SUPAWORKER_SCHEMA=public`: doctor and the worker said "run supaworker migrate", which then refused it.
    code, found = doctor(empty_db, SUPAWORKER_SCHEMA="public")
    assert code == 9
    assert found["migrations"]["detail"] == "schema 'public' is not installed, and cannot be"
    assert found["migrations"]["fix"].startswith("refusing to install supaworker into schema 'public'")
    worker = run_cli(None, "worker", env=subprocess_env(empty_db, SUPAWORKER_SCHEMA="public"))
    assert worker.returncode == 4
    assert "not installed in schema 'public', and cannot be" in worker.stderr and "run `supaworker" not in worker.stderr


def test_doctor_reports_rls_turned_off_and_grants_to_public_roles(db: str) -> None:
    from tests.servers import ensure_supabase_roles

    ensure_supabase_roles(admin_url())
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE supaworker.job_dependencies DISABLE ROW LEVEL SECURITY")
    code, found = doctor(db)
    assert code == 9 and "job_dependencies" in found["rls"]["detail"]
    assert "secure_schema()" in found["rls"]["fix"]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT supaworker.secure_schema()")
        conn.execute("GRANT USAGE ON SCHEMA supaworker TO anon")
        conn.execute("GRANT EXECUTE ON FUNCTION supaworker.claim_jobs TO anon")
    code, found = doctor(db)
    assert code == 9 and "anon may call claim_jobs" in found["rls"]["detail"], found["rls"]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT supaworker.secure_schema()")
    code, found = doctor(db)
    assert found["rls"]["status"] == "ok", found["rls"]


def test_doctor_suggests_history_when_the_queue_keeps_many_finished_jobs(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from supaworker import doctor as checks
    from supaworker.db import probe

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO supaworker.jobs (type, status, completed_at, attempts)"
            " SELECT 't', 'completed', now(), 1 FROM generate_series(1, 300)"
        )
        conn.execute("VACUUM ANALYZE supaworker.jobs")
    profile = probe(db, "auto")
    assert "finished jobs" not in checks.check_bloat(profile, "supaworker").detail  # under the default threshold
    monkeypatch.setattr(checks, "FINISHED_ROWS_WARN", 100)
    finding = checks.check_bloat(profile, "supaworker")
    assert finding.status == "warn" and "about 300 finished jobs kept in jobs" in finding.detail
    assert finding.fix is not None and "SUPAWORKER_HISTORY_AFTER_SECONDS" in finding.fix
