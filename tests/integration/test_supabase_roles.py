"""Migrations on a Supabase-shaped database: RLS everywhere, nothing for anon/authenticated, enough for
service_role. Each denial is proven by running the statement as that role."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from supaworker.migrate import migrate
from tests.conftest import PREFIX, SCHEMA, admin_url, create_database, drop_database
from tests.servers import ensure_supabase_roles

PUBLIC_ROLES = ("anon", "authenticated")

# Every worker/API function with arguments that would succeed for a role allowed to run it.
FUNCTION_CALLS = {
    "claim_jobs": "SELECT * FROM supaworker.claim_jobs('w', NULL, 1, 30)",
    "claim_job": "SELECT * FROM supaworker.claim_job('w')",
    "complete_jobs": "SELECT * FROM supaworker.complete_jobs('w', ARRAY[1]::bigint[], ARRAY[1], ARRAY['{}'::jsonb])",
    "complete_job": "SELECT supaworker.complete_job(1, 'w')",
    "fail_job": "SELECT supaworker.fail_job(1, 'w', 'boom')",
    "heartbeat_jobs": "SELECT * FROM supaworker.heartbeat_jobs('w', ARRAY[1]::bigint[])",
    "release_jobs": "SELECT * FROM supaworker.release_jobs('w', ARRAY[1]::bigint[], ARRAY[1])",
    "rescue_expired_jobs": "SELECT * FROM supaworker.rescue_expired_jobs()",
    "retry_job": "SELECT supaworker.retry_job(1)",
    "cancel_job": "SELECT supaworker.cancel_job(1)",
    "secure_schema": "SELECT supaworker.secure_schema()",
}
TABLE_STATEMENTS = {
    "select jobs": "SELECT count(*) FROM supaworker.jobs",
    "insert job": "INSERT INTO supaworker.jobs (type) VALUES ('x')",
    "update jobs": "UPDATE supaworker.jobs SET priority = 1",
    "delete jobs": "DELETE FROM supaworker.jobs",
    "select dependencies": "SELECT count(*) FROM supaworker.job_dependencies",
    "select job_stats view": "SELECT count(*) FROM supaworker.job_stats",
    "select active_jobs view": "SELECT count(*) FROM supaworker.active_jobs",
    "select migrations": "SELECT count(*) FROM supaworker.migrations",
}


@pytest.fixture(scope="module")
def supabase_db() -> Iterator[str]:
    """A database migrated after Supabase's roles exist, as on a Supabase project."""
    ensure_supabase_roles(admin_url())
    name = f"{PREFIX}_supa_roles"
    url = create_database(name)
    migrate(url, SCHEMA)
    yield url
    drop_database(name)


def run_as(url: str, role: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        conn.execute(statement)


def test_rls_is_enabled_on_every_supaworker_table(supabase_db: str) -> None:
    with psycopg.connect(supabase_db) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
            (SCHEMA,),
        ).fetchall()
    assert {"jobs", "job_dependencies", "migrations"} <= {name for name, _ in rows}
    assert [name for name, enabled in rows if not enabled] == []


def test_rls_is_enabled_on_a_plain_postgres_migration(db: str) -> None:
    with psycopg.connect(db) as conn:
        off = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity",
            (SCHEMA,),
        ).fetchall()
    assert off == []


@pytest.mark.parametrize("role", PUBLIC_ROLES)
@pytest.mark.parametrize("statement", sorted(TABLE_STATEMENTS))
def test_public_roles_are_denied_tables_and_views(supabase_db: str, role: str, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        run_as(supabase_db, role, TABLE_STATEMENTS[statement])


@pytest.mark.parametrize("role", PUBLIC_ROLES)
@pytest.mark.parametrize("function", sorted(FUNCTION_CALLS))
def test_public_roles_cannot_call_supaworker_functions(supabase_db: str, role: str, function: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        run_as(supabase_db, role, FUNCTION_CALLS[function])


@pytest.mark.parametrize("function", sorted(set(FUNCTION_CALLS) - {"secure_schema"}))
def test_functions_stay_denied_to_anon_even_when_the_schema_is_exposed(supabase_db: str, function: str) -> None:
    # Exposing the schema to PostgREST's anon role (a common mistake) must not make the functions callable.
    with psycopg.connect(supabase_db, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute("GRANT USAGE ON SCHEMA supaworker TO anon")
        conn.execute("SET LOCAL ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"permission denied for function {function}"):
            conn.execute(FUNCTION_CALLS[function])


def test_rls_hides_every_row_from_authenticated_even_with_a_table_grant(supabase_db: str) -> None:
    with psycopg.connect(supabase_db, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('secret'), ('secret')")
        conn.execute("GRANT USAGE ON SCHEMA supaworker TO authenticated")
        conn.execute("GRANT SELECT, UPDATE ON supaworker.jobs TO authenticated")
        conn.execute("SET LOCAL ROLE authenticated")
        assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (0,)
        assert conn.execute("UPDATE supaworker.jobs SET priority = 5").rowcount == 0


def test_service_role_can_enqueue_claim_and_complete(supabase_db: str) -> None:
    with psycopg.connect(supabase_db, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE service_role")
        (job_id,) = conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('svc') RETURNING id").fetchone()  # type: ignore[misc]
        claimed = conn.execute("SELECT id, attempts FROM supaworker.claim_jobs('w1', NULL, 5, 30)").fetchall()
        assert claimed == [(job_id, 1)]
        done = conn.execute(
            "SELECT * FROM supaworker.complete_jobs('w1', ARRAY[%s]::bigint[], ARRAY[1], ARRAY['{\"ok\":1}'::jsonb])",
            (job_id,),
        ).fetchall()
        assert done == [(job_id,)]
        assert conn.execute("SELECT count(*) FROM supaworker.job_stats").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT supaworker.secure_schema()")


def test_secure_schema_is_idempotent_and_grants_roles_created_after_migration(supabase_db: str) -> None:
    with psycopg.connect(supabase_db, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute("SELECT supaworker.secure_schema()")
        conn.execute("SELECT supaworker.secure_schema()")
        policies = conn.execute(
            "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'supaworker'"
            " AND p.polname = 'service_role_all'"
        ).fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'supaworker' AND c.relkind IN ('r', 'p')"
        ).fetchone()
        assert policies == tables
        assert conn.execute(
            "SELECT has_function_privilege('service_role', 'supaworker.claim_jobs(text,text[],integer,double precision,"
            "text[])', 'EXECUTE')"
        ).fetchone() == (True,)


# What Supabase's guide to custom schemas tells users to run to expose one through the API.
SUPABASE_CUSTOM_SCHEMA_GRANTS = """
GRANT USAGE ON SCHEMA supaworker TO anon, authenticated, service_role;
GRANT ALL ON ALL TABLES IN SCHEMA supaworker TO anon, authenticated, service_role;
GRANT ALL ON ALL ROUTINES IN SCHEMA supaworker TO anon, authenticated, service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA supaworker TO anon, authenticated, service_role;
"""


def test_secure_schema_takes_back_the_custom_schema_grants_of_supabase_guide(supabase_db: str) -> None:
    with psycopg.connect(supabase_db, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('x')")
        conn.execute(SUPABASE_CUSTOM_SCHEMA_GRANTS)
        with conn.transaction():
            conn.execute("SET LOCAL ROLE anon")
            # The grants alone would open the functions, which run as the caller and so see the rows...
            assert conn.execute("SELECT count(*) FROM supaworker.claim_jobs('thief', NULL, 10, 30)").fetchone() == (0,)
            conn.execute("SELECT supaworker.cancel_job(1)")  # ...and RLS is what kept them empty-handed.
            conn.execute("RESET ROLE")  # SET LOCAL outlives a released savepoint
        conn.execute("SELECT supaworker.secure_schema()")
        for statement in (*TABLE_STATEMENTS.values(), *FUNCTION_CALLS.values()):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("SET LOCAL ROLE anon")
                conn.execute(statement)
