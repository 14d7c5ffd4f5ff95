"""Migrations on a PostgreSQL without Supabase's roles (a private cluster: the shared server may have them),
and the roles arriving afterwards."""

from __future__ import annotations

import psycopg

from supaworker.migrate import migrate
from tests.conftest import SCHEMA
from tests.servers import PrivateCluster, ensure_supabase_roles


def test_migrations_secure_a_plain_postgres_and_later_supabase_roles() -> None:
    cluster = PrivateCluster().init()
    try:
        url = cluster.create_database("plain")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'service_role'").fetchone() == (0,)
        assert migrate(url, SCHEMA)[-1] >= 4
        with psycopg.connect(url, autocommit=True) as conn:
            off = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'supaworker' AND c.relkind = 'r' AND NOT c.relrowsecurity"
            ).fetchone()
            assert off == (0,)
            # PUBLIC may not run the worker functions even with the schema opened to it.
            conn.execute("CREATE ROLE someone LOGIN")
            conn.execute("GRANT USAGE ON SCHEMA supaworker TO someone")
            assert conn.execute(
                "SELECT has_function_privilege('someone', 'supaworker.rescue_expired_jobs(integer,double precision,"
                "double precision)', 'EXECUTE')"
            ).fetchone() == (False,)

        ensure_supabase_roles(url)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT has_schema_privilege('service_role', 'supaworker', 'USAGE')").fetchone() == (
                False,
            )
            conn.execute("SELECT supaworker.secure_schema()")
            assert conn.execute("SELECT has_schema_privilege('service_role', 'supaworker', 'USAGE')").fetchone() == (
                True,
            )
            assert conn.execute("SELECT has_schema_privilege('anon', 'supaworker', 'USAGE')").fetchone() == (False,)
    finally:
        cluster.destroy()
