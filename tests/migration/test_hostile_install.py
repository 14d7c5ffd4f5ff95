"""`supaworker migrate` inside an application's database that is already busy: the replaced system's own schema
in `public`, look-alike objects on the search path, a role that may not create schemas, schema names the SQL
cannot use, and a migrate killed half-way. The application's objects stay exactly as they were (compared by
`pg_dump --schema-only` and row counts), the queue works, and a refusal names what was wrong and changes
nothing."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from supaworker import sql
from supaworker.errors import ConfigError
from supaworker.migrate import migrate
from tests.conftest import (
    PREFIX,
    REPO,
    SCHEMA,
    admin_url,
    create_database,
    drop_database,
    run_cli,
    subprocess_env,
)
from tests.servers import ensure_supabase_roles

# The replaced system's schema as its setup guide installs it (`psql -f supabase-jobs-schema.sql`): a `jobs`
# table with rows, the views `job_stats`, `active_jobs`, `pending_jobs_queue` and the functions `claim_job()`,
# `complete_job()`, `fail_job()`, all in `public`.
SEED_GUIDE_SCHEMA = """
CREATE TABLE public.jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  type text NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  priority integer NOT NULL DEFAULT 0,
  payload jsonb NOT NULL DEFAULT '{}',
  result jsonb,
  error text,
  worker_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz
);
CREATE INDEX idx_jobs_status ON public.jobs (status, priority DESC, created_at);
INSERT INTO public.jobs (type, status) SELECT 'analysis', s FROM unnest(ARRAY['pending', 'processing', 'completed']) s;
CREATE VIEW public.job_stats AS SELECT type, status, count(*) AS count FROM public.jobs GROUP BY type, status;
CREATE VIEW public.active_jobs AS SELECT * FROM public.jobs WHERE status = 'processing';
CREATE VIEW public.pending_jobs_queue AS SELECT * FROM public.jobs WHERE status = 'pending' ORDER BY priority DESC;
CREATE FUNCTION public.claim_job(p_worker_id text, p_types text[] DEFAULT NULL) RETURNS SETOF public.jobs
LANGUAGE sql AS $$
  UPDATE public.jobs SET status = 'processing', worker_id = p_worker_id, started_at = now()
   WHERE id = (SELECT id FROM public.jobs WHERE status = 'pending' AND (p_types IS NULL OR type = ANY (p_types))
                ORDER BY priority DESC, created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING *
$$;
CREATE FUNCTION public.complete_job(p_job_id uuid, p_result jsonb DEFAULT NULL) RETURNS void LANGUAGE sql AS $$
  UPDATE public.jobs SET status = 'completed', result = p_result, completed_at = now() WHERE id = p_job_id
$$;
CREATE FUNCTION public.fail_job(p_job_id uuid, p_error text) RETURNS void LANGUAGE sql AS $$
  UPDATE public.jobs SET status = 'failed', error = p_error, completed_at = now() WHERE id = p_job_id
$$;
ALTER TABLE public.jobs ENABLE ROW LEVEL SECURITY;
"""

# Objects of an application named like supaworker's, in a schema searched before any other.
LOOK_ALIKES = """
CREATE TYPE {s}.job_status AS ENUM ('queued');
CREATE TABLE {s}.jobs (id integer, status {s}.job_status);
CREATE TABLE {s}.migrations (version integer);
CREATE TABLE {s}.owned_objects (type text, identity text);
CREATE SEQUENCE {s}.jobs_id_seq;
CREATE VIEW {s}.job_stats AS SELECT 1 AS one;
CREATE FUNCTION {s}.secure_schema() RETURNS void LANGUAGE sql AS 'SELECT 1 / 0';
CREATE FUNCTION {s}.claim_jobs_v2(text, text[], integer, double precision) RETURNS integer
  LANGUAGE sql AS 'SELECT 1 / 0';
"""


def pg_dump_schema(url: str, *schemas: str) -> str:
    """`pg_dump --schema-only` of the schemas, without its per-run `\\restrict` key."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump not found; install the PostgreSQL client")
    args = [pg_dump, "--schema-only", "--no-comments", *(f"--schema={s}" for s in schemas), url]
    dump = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return re.sub(r"^\\(un)?restrict .*$", "", dump, flags=re.MULTILINE)


def schemas_of(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace ORDER BY 1")]


def open_to_public_roles(url: str, schema: str = SCHEMA) -> list[str]:
    """What PUBLIC, anon or authenticated may do with supaworker's functions and tables (should be nothing)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT r || ' calls ' || p.oid::regprocedure
                 FROM pg_proc p, unnest(ARRAY['public', 'anon', 'authenticated']) r
                WHERE p.pronamespace = to_regnamespace(%(s)s) AND has_function_privilege(r, p.oid, 'EXECUTE')
               UNION ALL
               SELECT 'no row-level security on ' || c.oid::regclass
                 FROM pg_class c
                WHERE c.relnamespace = to_regnamespace(%(s)s) AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
                ORDER BY 1""",
            {"s": pgsql.Identifier(schema).as_string()},
        )
        return [r[0] for r in rows]


def run_a_job(url: str, schema: str = SCHEMA) -> None:
    """Enqueues two jobs and claims, completes and fails them with the SQL functions, schema-qualified."""
    with psycopg.connect(url, autocommit=True) as conn:
        q = pgsql.Identifier(schema).as_string()
        first = conn.execute(f"SELECT ({q}.create_job(type => 'analysis', payload => '{{}}') ->> 'id')::bigint")
        job_id = first.fetchone()[0]  # type: ignore[index]
        assert conn.execute(f"SELECT id FROM {q}.claim_job('w1')").fetchall() == [(job_id,)]
        assert conn.execute(f"SELECT {q}.complete_job(%s, 'w1', '{{}}')", (job_id,)).fetchone() == (True,)
        second = conn.execute(f"SELECT ({q}.create_job(type => 'render', payload => '{{}}') ->> 'id')::bigint")
        other_id = second.fetchone()[0]  # type: ignore[index]
        assert conn.execute(f"SELECT id FROM {q}.claim_jobs_v2('w2', NULL, 1, 30)").fetchall() == [(other_id,)]
        assert conn.execute(f"SELECT {q}.fail_job(%s, 'w2', 'boom')", (other_id,)).fetchone() == ("pending",)
        stats = conn.execute(f"SELECT type, status::text, count FROM {q}.job_stats ORDER BY type").fetchall()
        assert stats == [("analysis", "completed", 1), ("render", "pending", 1)]


def test_migrate_beside_the_seed_guides_schema_leaves_it_and_serves_its_names(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(SEED_GUIDE_SCHEMA)
    before = pg_dump_schema(empty_db, "public")

    result = run_cli(empty_db, "migrate")
    assert result.returncode == 0, result.stderr

    assert pg_dump_schema(empty_db, "public") == before
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert conn.execute("SELECT status, count(*) FROM public.jobs GROUP BY 1 ORDER BY 1").fetchall() == [
            ("completed", 1),
            ("pending", 1),
            ("processing", 1),
        ]
        assert conn.execute("SELECT count(*) FROM public.claim_job('old-worker')").fetchone() == (1,)
        # With supaworker first on the search path, the guide's names are supaworker's.
        conn.execute("SET search_path TO supaworker, public")
        for name in ("jobs", "job_stats", "active_jobs", "pending_jobs_queue"):
            found = conn.execute(
                "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass(%s)", (name,)
            )
            assert found.fetchone() == ("supaworker",), name
        conn.execute("SELECT create_job(type => 'analysis', payload => '{}')")
        (job_id,) = conn.execute("SELECT id FROM claim_job('w1')").fetchone()  # type: ignore[misc]
        assert conn.execute("SELECT complete_job(%s, 'w1', '{}')", (job_id,)).fetchone() == (True,)
        assert conn.execute("SELECT status::text, count FROM job_stats").fetchall() == [("completed", 1)]
        assert conn.execute("SELECT count(*) FROM active_jobs").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pending_jobs_queue").fetchone() == (0,)
    assert pg_dump_schema(empty_db, "public") == before


def test_migrate_and_the_sql_functions_need_no_search_path(empty_db: str) -> None:
    name = conninfo_to_dict(empty_db)["dbname"]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("ALTER DATABASE {} SET search_path = ''").format(pgsql.Identifier(name)))
    result = run_cli(empty_db, "migrate")
    assert result.returncode == 0, result.stderr
    run_a_job(empty_db)


@pytest.fixture
def migrator() -> Iterator[str]:
    """A login role that owns nothing and may not create schemas (PostgreSQL's default for a new role), whose
    `"$user"` schema, searched first, holds look-alikes of supaworker's objects. Set up before the test's
    database and so dropped after it."""
    role = f"{PREFIX}_migrator"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(role)))
        conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN").format(pgsql.Identifier(role)))
    yield role
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(role)))


def as_user(url: str, role: str) -> str:
    return make_conninfo(url, user=role)


def give_role_its_schema_with_look_alikes(url: str, role: str) -> None:
    ensure_supabase_roles(admin_url())
    r = pgsql.Identifier(role).as_string()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {r} AUTHORIZATION {r}")
        conn.execute(f"SET ROLE {r}")
        conn.execute(LOOK_ALIKES.format(s=r))
        conn.execute("RESET ROLE")
        conn.execute(
            f"ALTER ROLE {r} IN DATABASE {pgsql.Identifier(conninfo_to_dict(url)['dbname']).as_string()}"
            ' SET search_path = "$user", public'
        )
        # What a Supabase project's owner often has: everything the role creates is open to the API roles.
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS", "SCHEMAS"):
            conn.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {r} GRANT ALL ON {kind} TO anon, authenticated")


def test_migrate_without_create_on_the_database_names_the_grant_and_changes_nothing(
    migrator: str, empty_db: str
) -> None:
    give_role_its_schema_with_look_alikes(empty_db, migrator)
    before = (schemas_of(empty_db), pg_dump_schema(empty_db, migrator, "public"))

    result = run_cli(None, "migrate", env=subprocess_env(as_user(empty_db, migrator)))

    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert f"role '{migrator}' may not create schemas" in result.stderr
    assert f'CREATE SCHEMA "supaworker" AUTHORIZATION "{migrator}"' in result.stderr
    assert (schemas_of(empty_db), pg_dump_schema(empty_db, migrator, "public")) == before


def test_migrate_as_a_role_given_its_schema_by_the_database_owner(migrator: str, empty_db: str) -> None:
    give_role_its_schema_with_look_alikes(empty_db, migrator)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE SCHEMA supaworker AUTHORIZATION {}").format(pgsql.Identifier(migrator)))
    before = pg_dump_schema(empty_db, migrator, "public")

    result = run_cli(None, "migrate", env=subprocess_env(as_user(empty_db, migrator)))

    assert result.returncode == 0, result.stderr
    assert pg_dump_schema(empty_db, migrator, "public") == before
    run_a_job(as_user(empty_db, migrator))
    assert open_to_public_roles(empty_db) == []


def test_migrate_into_a_schema_the_role_may_only_use_names_the_grant_and_changes_nothing(
    migrator: str, empty_db: str
) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("CREATE SCHEMA supaworker; GRANT USAGE ON SCHEMA supaworker TO {}").format(
                pgsql.Identifier(migrator)
            )
        )

    result = run_cli(None, "migrate", env=subprocess_env(as_user(empty_db, migrator)))

    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert f"as role '{migrator}': permission denied for schema supaworker" in result.stderr
    assert f'GRANT CREATE ON SCHEMA "supaworker" TO "{migrator}"' in result.stderr
    with psycopg.connect(empty_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'supaworker'::regnamespace"
        ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ("MixedCase", "lower case"),
        ("pg_jobs", "reserved"),
        ("y" * 59, "59 bytes long and at most 58 fit"),
        ("é" * 30, "60 bytes long and at most 58 fit"),
    ],
    ids=["mixed-case", "pg-prefix", "channel-too-long", "multibyte-too-long"],
)
def test_migrate_refuses_a_schema_name_the_sql_cannot_use_and_creates_nothing(
    empty_db: str, schema: str, why: str
) -> None:
    before = schemas_of(empty_db)
    result = run_cli(None, "migrate", env=subprocess_env(empty_db, SUPAWORKER_SCHEMA=schema))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert f"SUPAWORKER_SCHEMA {schema!r}" in result.stderr and why in result.stderr
    with pytest.raises(ConfigError, match="Nothing was changed"):
        migrate(empty_db, schema)
    assert schemas_of(empty_db) == before


def test_the_longest_schema_name_allowed_still_wakes_its_workers(empty_db: str) -> None:
    schema = "z" * 58
    assert migrate(empty_db, schema)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(f"LISTEN {sql.channel_name(schema)}")
        conn.execute(f"SELECT {schema}.wait_for_jobs('w', 60)")
        conn.execute(f"SELECT {schema}.create_job(type => 'analysis', payload => '{{}}')")
        assert [n.channel for n in conn.notifies(timeout=5, stop_after=1)] == [sql.channel_name(schema)]


def apply_migrations_without_securing(url: str) -> None:
    """What a migrate killed after its last migration committed, and before secure_schema() ran, left."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA supaworker")
        conn.execute(
            "CREATE TABLE supaworker.migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), breaking boolean NOT NULL DEFAULT false)"
        )
        for migration in sql.migrations():
            with conn.transaction():
                conn.execute(sql.render(migration.text, SCHEMA))
                conn.execute(
                    "INSERT INTO supaworker.migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )


def test_migrate_secures_what_an_interrupted_migrate_left_open(empty_db: str) -> None:
    ensure_supabase_roles(admin_url())
    apply_migrations_without_securing(empty_db)
    assert open_to_public_roles(empty_db)  # functions of the later migrations, and job_history's missing RLS

    result = run_cli(empty_db, "migrate")

    assert (result.returncode, result.stdout.strip()) == (0, "schema supaworker: up to date"), result.stderr
    assert open_to_public_roles(empty_db) == []


@pytest.mark.parametrize("after_versions", [1, 9, len(sql.migrations()) - 1])
def test_migrate_killed_half_way_completes_on_the_next_run(empty_db: str, after_versions: int) -> None:
    ensure_supabase_roles(admin_url())
    proc = subprocess.Popen(
        [sys.executable, "-m", "supaworker", "migrate"],
        env=subprocess_env(empty_db),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(empty_db, autocommit=True) as conn:
            while time.monotonic() < deadline and proc.poll() is None:
                if conn.execute("SELECT to_regclass('supaworker.migrations')").fetchone() != (None,):
                    count = conn.execute("SELECT count(*) FROM supaworker.migrations").fetchone()
                    if count and count[0] >= after_versions:
                        break
                time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)

    result = run_cli(empty_db, "migrate")
    assert result.returncode == 0, result.stderr
    assert open_to_public_roles(empty_db) == []
    run_a_job(empty_db)

    # The same schema as a migrate that was never stopped.
    clean = f"{PREFIX}_{uuid.uuid4().hex[:10]}"
    try:
        migrate(create_database(clean), SCHEMA)
        assert pg_dump_schema(empty_db, SCHEMA) == pg_dump_schema(make_conninfo(empty_db, dbname=clean), SCHEMA)
    finally:
        drop_database(clean)
