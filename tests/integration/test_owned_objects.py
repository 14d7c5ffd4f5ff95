"""supaworker changes privileges, RLS and policies of its own objects only, on a Supabase-shaped database
whose application keeps its tables in `public`: it refuses to install into `public` or a schema holding
other objects, leaves the application's grants alone when installed beside them, and an installation made in
`public` by an earlier version is upgraded without touching the application again (doctor shows the damage
that earlier version did)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql as pgsql

from supaworker import sql
from supaworker.db import ConnectionProfile
from supaworker.doctor import FAIL, OK, WARN, check_ownership, check_rls
from supaworker.errors import SchemaInUse
from supaworker.migrate import migrate
from tests.conftest import admin_url, run_cli, subprocess_env
from tests.servers import ensure_supabase_roles

# An application's own objects, as a Supabase project has them: a table open to the API roles under its own
# policy, a table granted without RLS, a function PUBLIC may call, and the schema open to anon (the default).
APP_SETUP = """
GRANT USAGE ON SCHEMA public TO anon, authenticated;
CREATE TABLE public.profiles (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO public.profiles VALUES (1, 'ada');
GRANT SELECT, INSERT, UPDATE, DELETE ON public.profiles TO anon, authenticated;
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY profiles_are_public ON public.profiles FOR SELECT TO anon, authenticated USING (true);
CREATE TABLE public.notes (id integer);
GRANT SELECT ON public.notes TO anon;
CREATE FUNCTION public.hello() RETURNS text LANGUAGE sql AS $$ SELECT 'hi' $$;
"""

# Everything about the application's objects that supaworker must leave as it was (privileges as in effect:
# a default ACL reads as what it grants, in any order).
ACL = "(SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(coalesce({acl}, acldefault('{kind}', {owner}))) a)"
APP_STATE = f"""
SELECT 'schema ' || {ACL.format(acl="nspacl", kind="n", owner="nspowner")} FROM pg_namespace WHERE nspname = 'public'
UNION ALL
SELECT 'table ' || relname || ' rls=' || relrowsecurity || ' ' || {ACL.format(acl="relacl", kind="r", owner="relowner")}
  FROM pg_class WHERE oid IN ('public.profiles'::regclass, 'public.notes'::regclass)
UNION ALL
SELECT 'policy ' || polrelid::regclass || ' ' || polname || ' ' || polroles::text FROM pg_policy
 WHERE polrelid IN ('public.profiles'::regclass, 'public.notes'::regclass)
UNION ALL
SELECT 'function hello ' || {ACL.format(acl="proacl", kind="f", owner="proowner")}
  FROM pg_proc WHERE oid = 'public.hello()'::regprocedure
UNION ALL
SELECT 'default acl ' || defaclnamespace || ' ' || defaclacl::text FROM pg_default_acl
ORDER BY 1
"""


@pytest.fixture
def supabase_app_db(empty_db: str) -> Iterator[str]:
    """A database with Supabase's roles and an application's tables in `public`, supaworker not installed."""
    ensure_supabase_roles(admin_url())
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(APP_SETUP)
    yield empty_db


def app_state(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(APP_STATE)]


def schema_objects(url: str, schema: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(sql.queries_for(schema).list_schema_objects, {"schema": schema})]


def as_role(url: str, role: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role)))
        return conn.execute(statement).fetchall()


def assert_app_works_for_anon(url: str) -> None:
    assert as_role(url, "anon", "SELECT name FROM public.profiles") == [("ada",)]
    assert as_role(url, "anon", "SELECT count(*) FROM public.notes") == [(0,)]
    assert as_role(url, "anon", "SELECT public.hello()") == [("hi",)]


def install_into_public_before_0009(url: str) -> None:
    """What `supaworker migrate` with SUPAWORKER_SCHEMA=public did before migration 0009: migrations 0001-0007
    into `public`, beside the application's tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in sql.migrations():
            if migration.version <= 7:
                with conn.transaction():
                    conn.execute(sql.render(migration.text, "public"))
                    conn.execute(
                        "INSERT INTO public.migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )


def test_migrate_beside_an_applications_public_tables_leaves_them_as_they_were(supabase_app_db: str) -> None:
    before = app_state(supabase_app_db)
    result = run_cli(supabase_app_db, "migrate")
    assert result.returncode == 0, result.stderr
    assert app_state(supabase_app_db) == before
    assert_app_works_for_anon(supabase_app_db)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(supabase_app_db, "anon", "SELECT count(*) FROM supaworker.jobs")


@pytest.mark.parametrize("with_app_tables", [True, False], ids=["with-app-tables", "empty"])
def test_migrate_refuses_the_public_schema_and_changes_nothing(supabase_app_db: str, with_app_tables: bool) -> None:
    if not with_app_tables:
        with psycopg.connect(supabase_app_db, autocommit=True) as conn:
            conn.execute("DROP TABLE public.profiles, public.notes; DROP FUNCTION public.hello()")
    before_state = app_state(supabase_app_db) if with_app_tables else []
    before_objects = schema_objects(supabase_app_db, "public")
    result = run_cli(None, "migrate", env=subprocess_env(supabase_app_db, SUPAWORKER_SCHEMA="public"))
    assert result.returncode == 2, result.stderr
    assert "Nothing was changed" in result.stderr
    assert "SET search_path TO supaworker, public" in result.stderr and "ALTER ROLE" in result.stderr
    assert schema_objects(supabase_app_db, "public") == before_objects
    if with_app_tables:
        assert app_state(supabase_app_db) == before_state
        assert_app_works_for_anon(supabase_app_db)


def test_migrate_refuses_a_schema_that_holds_other_objects(supabase_app_db: str) -> None:
    with psycopg.connect(supabase_app_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.orders (id int); GRANT USAGE ON SCHEMA app TO anon")
    result = run_cli(None, "migrate", env=subprocess_env(supabase_app_db, SUPAWORKER_SCHEMA="app"))
    assert result.returncode == 2, result.stderr
    assert "app.orders" in result.stderr and "search_path" in result.stderr
    assert schema_objects(supabase_app_db, "app") == ["app.orders"]
    with pytest.raises(SchemaInUse):
        migrate(supabase_app_db, "app")
    with psycopg.connect(supabase_app_db) as conn:
        assert conn.execute("SELECT has_schema_privilege('anon', 'app', 'USAGE')").fetchone() == (True,)


def test_migrate_installs_into_an_empty_schema_made_for_it(supabase_app_db: str) -> None:
    with psycopg.connect(supabase_app_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA queue")
    assert migrate(supabase_app_db, "queue")
    with psycopg.connect(supabase_app_db) as conn:
        assert conn.execute("SELECT has_schema_privilege('anon', 'queue', 'USAGE')").fetchone() == (False,)


def test_upgrading_an_install_in_public_touches_only_supaworker_objects(supabase_app_db: str) -> None:
    original = app_state(supabase_app_db)
    install_into_public_before_0009(supabase_app_db)
    damaged = app_state(supabase_app_db)
    assert damaged != original  # what the schema-wide secure_schema() of 0004 did to the application
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(supabase_app_db, "anon", "SELECT name FROM public.profiles")

    # The upgrade does not repair what it cannot know; doctor names the damage and the fix.
    migrate(supabase_app_db, "public")
    profile = ConnectionProfile(supabase_app_db, transaction_pooler=False)
    found = check_ownership(profile, "public")
    assert found.status == FAIL, found
    assert "public.profiles" in found.detail and "public.notes" in found.detail
    assert "PUBLIC, anon, authenticated may not use the schema" in found.detail
    assert found.fix and "DROP POLICY service_role_all ON public.profiles;" in found.fix
    assert "GRANT USAGE ON SCHEMA public TO PUBLIC, anon, authenticated;" in found.fix

    # The application repairs its objects as doctor says...
    with psycopg.connect(supabase_app_db, autocommit=True) as conn:
        conn.execute(
            "DROP POLICY service_role_all ON public.profiles; DROP POLICY service_role_all ON public.notes;"
            " ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY;"
            " GRANT USAGE ON SCHEMA public TO PUBLIC, anon, authenticated;"
            " GRANT SELECT, INSERT, UPDATE, DELETE ON public.profiles TO anon, authenticated;"
            " GRANT SELECT ON public.notes TO anon; GRANT EXECUTE ON FUNCTION public.hello() TO PUBLIC;"
            " REVOKE ALL ON public.profiles, public.notes FROM service_role;"
            " REVOKE ALL ON FUNCTION public.hello() FROM service_role; REVOKE ALL ON SCHEMA public FROM service_role"
        )
    assert app_state(supabase_app_db) == original
    # ...and neither securing supaworker again nor migrating again changes them again. (0009's list is made once,
    # before any later migration adds objects of its own to it: running 0009 again is no upgrade that happens.)
    with psycopg.connect(supabase_app_db, autocommit=True) as conn:
        conn.execute("SELECT public.secure_schema()")
    migrate(supabase_app_db, "public")
    assert app_state(supabase_app_db) == original
    assert_app_works_for_anon(supabase_app_db)

    # supaworker's own objects in public stay locked down.
    for statement in ("SELECT count(*) FROM public.jobs", "SELECT * FROM public.claim_jobs_v2('w', NULL, 1, 30)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(supabase_app_db, "anon", statement)
    assert check_rls(profile, "public").status == OK
    shared = check_ownership(profile, "public")
    assert shared.status == WARN and "leaves them alone" in shared.detail, shared


def unlisted(conn: psycopg.Connection) -> list[str]:
    """Objects in supaworker's schema that owned_objects does not list (what doctor's ownership check reports)."""
    queries = sql.queries_for("supaworker")
    owned = {(kind, identity) for kind, identity in conn.execute(queries.list_owned_objects)}
    objects = conn.execute(queries.list_schema_objects, {"schema": "supaworker"})
    return [identity for identity, kind, *_ in objects if (kind, identity) not in owned]


def test_every_object_the_migrations_create_is_listed_as_supaworkers(db: str) -> None:
    # A migration that creates an object must add it to owned_objects, or secure_schema() would not secure it.
    with psycopg.connect(db) as conn:
        assert unlisted(conn) == []
    assert check_ownership(ConnectionProfile(db, transaction_pooler=False), "supaworker").status == OK


def test_no_supaworker_function_is_executable_by_public(db: str) -> None:
    # Functions a migration creates are open to PUBLIC by default (0007's were): migrate secures them.
    with psycopg.connect(db) as conn:
        open_to_public = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'supaworker'::regnamespace"
            " AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))"
            " ORDER BY 1"
        ).fetchall()
    assert open_to_public == []


def test_service_role_may_read_but_not_change_the_list_of_owned_objects(db: str) -> None:
    assert as_role(db, "service_role", "SELECT count(*) > 0 FROM supaworker.owned_objects") == [(True,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(db, "service_role", "INSERT INTO supaworker.owned_objects VALUES ('table', 'public.profiles')")


def test_securing_the_schema_again_keeps_briefs_exposed_to_end_users(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT supaworker.expose_briefs(true)")
        conn.execute("SELECT supaworker.secure_schema()")
        assert conn.execute(
            "SELECT has_schema_privilege('authenticated', 'supaworker', 'USAGE'),"
            " has_table_privilege('authenticated', 'supaworker.briefs', 'SELECT'),"
            " has_table_privilege('authenticated', 'supaworker.user_briefs', 'SELECT'),"
            " has_table_privilege('anon', 'supaworker.briefs', 'SELECT')"
        ).fetchone() == (True, True, True, False)
        assert unlisted(conn) == []
        conn.execute("SELECT supaworker.expose_briefs(false)")
        conn.execute("SELECT supaworker.secure_schema()")
        assert conn.execute("SELECT has_schema_privilege('authenticated', 'supaworker', 'USAGE')").fetchone() == (
            False,
        )


@pytest.mark.parametrize("briefs_exposed", [False, True])
def test_securing_the_schema_again_waits_for_no_running_claim(db: str, briefs_exposed: bool) -> None:
    # migrate ends with secure_schema() while workers of the release before still claim. Taking a table lock
    # there (ALTER TABLE to enable RLS again, a policy made again) queued behind their claims and deadlocked
    # with the next one, which holds job_controls and waits for jobs.
    tables_rls = ("SELECT relname, relrowsecurity FROM pg_class"
                  " WHERE relnamespace = 'supaworker'::regnamespace AND relkind = 'r' ORDER BY 1")  # fmt: skip
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('render')")
        if briefs_exposed:
            conn.execute("SELECT supaworker.expose_briefs(true)")
        before = conn.execute(tables_rls).fetchall()
    with psycopg.connect(db) as worker, psycopg.connect(db, autocommit=True) as migrator:
        claimed = worker.execute("SELECT id FROM supaworker.claim_jobs('w', NULL, 1, 30)").fetchall()
        assert len(claimed) == 1  # its transaction is open: it holds its locks on jobs and job_controls
        migrator.execute("SET lock_timeout = '2s'")
        migrator.execute("SELECT supaworker.secure_schema()")
        worker.rollback()
        after = migrator.execute(tables_rls).fetchall()
    assert after == before and all(rls for _, rls in after)
