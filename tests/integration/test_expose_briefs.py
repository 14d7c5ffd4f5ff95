"""`supaworker supabase expose-briefs`: end users' reads of their own briefs are opt-in, and can be taken back.
(What a signed-in user then reads through PostgREST is tested in clients/typescript/test/access.test.js.)"""

from __future__ import annotations

import psycopg

from tests.conftest import run_cli

GRANTS = """
SELECT has_schema_privilege('authenticated', 'supaworker', 'USAGE'),
       has_table_privilege('authenticated', 'supaworker.briefs', 'SELECT'),
       has_column_privilege('authenticated', 'supaworker.jobs', 'status', 'SELECT'),
       has_column_privilege('authenticated', 'supaworker.jobs', 'payload', 'SELECT'),
       has_table_privilege('authenticated', 'supaworker.briefs', 'INSERT'),
       to_regclass('supaworker.user_briefs') IS NOT NULL,
       (SELECT count(*) FROM pg_policy WHERE polname IN ('briefs_owner_select', 'jobs_brief_owner_select'))::int,
       has_schema_privilege('anon', 'supaworker', 'USAGE')
"""


def grants(db: str) -> tuple[object, ...]:
    with psycopg.connect(db) as conn:
        row = conn.execute(GRANTS).fetchone()
        assert row is not None
        return tuple(row)


def test_end_user_reads_are_off_by_default(db: str) -> None:
    assert grants(db) == (False, False, False, False, False, False, 0, False)


def test_expose_briefs_grants_authenticated_reads_of_its_own_briefs_only_and_off_takes_them_back(db: str) -> None:
    on = run_cli(db, "supabase", "expose-briefs")
    assert on.returncode == 0, on.stderr
    assert "user_briefs" in on.stdout
    assert grants(db) == (True, True, True, False, False, True, 2, False)
    again = run_cli(db, "supabase", "expose-briefs")
    assert again.returncode == 0 and grants(db) == (True, True, True, False, False, True, 2, False)
    off = run_cli(db, "supabase", "expose-briefs", "--off")
    assert off.returncode == 0, off.stderr
    assert grants(db) == (False, False, False, False, False, False, 0, False)


def test_a_signed_in_user_reads_only_their_own_briefs_in_sql(db: str) -> None:
    assert run_cli(db, "supabase", "expose-briefs").returncode == 0
    with psycopg.connect(db, autocommit=True) as conn:
        for user in ("alice", "bob"):
            conn.execute("SELECT supaworker.create_brief_with_job(user_id => %s, query => 'q', media_type => 'text')",
                         (user,))  # fmt: skip
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE authenticated")
            conn.execute(
                """SELECT set_config('request.jwt.claims', '{"sub": "alice", "role": "authenticated"}', true)"""
            )
            seen = {
                relation: conn.execute(f"SELECT count(*) FROM supaworker.{relation}").fetchone()
                for relation in ("briefs", "user_briefs", "user_brief_steps")
            }
            users = conn.execute("SELECT DISTINCT user_id FROM supaworker.user_briefs").fetchall()
    assert seen == {"briefs": (1,), "user_briefs": (1,), "user_brief_steps": (1,)}
    assert users == [("alice",)]
