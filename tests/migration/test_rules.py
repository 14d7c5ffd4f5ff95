"""The rules of jobs and briefs have one definition, `supaworker.rules` (and `supaworker.pipelines`): the SQL
API is rendered from it, so changing a value there changes what psql and PostgREST callers are refused, and
a change never reaches the package without a migration that brings it to installed databases."""

from __future__ import annotations

import re

import psycopg
import pytest

from supaworker import pipelines, rules, sql
from supaworker.migrate import migrate

from ..conftest import REPO


def test_changed_rules_come_with_a_migration() -> None:
    rendering = [m for m in sql.migrations() if "{{rule:" in m.text]
    assert rendering, "no migration renders the rules"
    newest = rendering[-1]
    recorded = re.search(r"^-- rules: (\w+)$", newest.text, re.MULTILINE)
    assert recorded, f"migration {newest.version:04d}_{newest.name} renders rules but records no `-- rules:` digest"
    assert recorded.group(1) == rules.digest(), (
        f"supaworker.rules changed since migration {newest.version:04d}_{newest.name} rendered them: databases "
        "installed before keep the old values. Add a migration that redefines the functions using the changed "
        f"rules and records `-- rules: {rules.digest()}`."
    )


def test_an_unknown_rule_is_named() -> None:
    with pytest.raises(KeyError, match="no rule 'max_nothing'"):
        sql.render("SELECT {{rule:max_nothing}}", "supaworker")


def test_the_database_holds_the_packages_pipelines(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT media_type, steps FROM supaworker.pipelines()").fetchall()
    assert {media_type: tuple(steps) for media_type, steps in rows} == pipelines.PIPELINES
    for media_type in pipelines.MEDIA_TYPES:
        for use_pipeline in (True, False):
            (steps,) = conn.execute("SELECT supaworker.brief_steps(%s, %s)", (media_type, use_pipeline)).fetchone() or (
                None,
            )
            assert tuple(steps) == pipelines.steps_for(media_type, use_pipeline)


def test_the_sql_api_applies_the_rules_it_was_rendered_from(empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Render the migrations from other values: the SQL API must refuse by those, so none is written out twice.
    monkeypatch.setattr(rules, "MAX_TYPE_LENGTH", 8)  # "default" and "analysis" still fit
    monkeypatch.setattr(rules, "MAX_DEPENDENCIES", 2)
    monkeypatch.setattr(rules, "MAX_USER_ID_LENGTH", 3)
    monkeypatch.setattr(rules, "PRIORITY_MESSAGE", "priority is out of range")
    monkeypatch.setattr(pipelines, "PIPELINES", {**pipelines.PIPELINES, "text": ("analysis", "summary")})
    rules.sql_values.cache_clear()
    try:
        migrate(empty_db, "supaworker")
    finally:
        rules.sql_values.cache_clear()

    def refusal(query: str) -> str:
        with psycopg.connect(empty_db, autocommit=True) as c:
            with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
                c.execute(query)
            return caught.value.diag.message_primary or ""

    assert refusal("SELECT supaworker.create_job(type => 'abcdefghi')") == "type must be at most 8 characters, not 9"
    assert refusal("SELECT supaworker.create_job(type => 'a', priority => 2147483648)") == "priority is out of range"
    assert refusal("SELECT supaworker.create_job(type => 'a', depends_on => '{1,2,3}')") == (
        "a job may depend on at most 2 jobs, not 3"
    )
    assert refusal("""SELECT supaworker.create_jobs('[{"type": "abcdefghi"}]')""") == (
        "job #0: type must be at most 8 characters, not 9"
    )
    brief = "SELECT supaworker.create_brief_with_job(user_id => 'abcd', query => 'q', media_type => 'text')"
    assert refusal(brief) == "user_id must be at most 3 characters, not 4"
    with psycopg.connect(empty_db, autocommit=True) as c:
        made = c.execute(
            "SELECT supaworker.create_brief_with_job(user_id => 'ab', query => 'q', media_type => 'text',"
            " use_pipeline => true)"
        ).fetchone()
        assert made is not None
        brief_id = made[0]["brief"]["id"]
        steps = c.execute("SELECT type FROM supaworker.jobs WHERE brief_id = %s ORDER BY id", (brief_id,)).fetchall()
        assert [s for (s,) in steps] == ["analysis", "summary"]


def test_the_tables_bounds_agree_with_the_rules(conn: psycopg.Connection) -> None:
    # The CHECK constraints are the storage's last guard: a rule may be stricter, never looser.
    bounds = dict(
        conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'supaworker'::regnamespace AND contype = 'c'"
        ).fetchall()
    )
    expected = {
        "jobs_type_valid": rules.MAX_TYPE_LENGTH,
        "jobs_queue_valid": rules.MAX_TYPE_LENGTH,
        "jobs_fairness_key_valid": rules.MAX_FAIRNESS_KEY_LENGTH,
        "jobs_unique_key_valid": rules.MAX_UNIQUE_KEY_LENGTH,
        "briefs_user_id_valid": rules.MAX_USER_ID_LENGTH,
        "briefs_title_valid": rules.MAX_TITLE_LENGTH,
        "briefs_description_valid": rules.MAX_TEXT_LENGTH,
        "briefs_query_valid": rules.MAX_TEXT_LENGTH,
    }
    for name, limit in expected.items():
        found = re.findall(r"<= (\d+)", bounds[name])
        assert found and int(found[-1]) >= limit, (name, bounds[name], limit)


def test_the_typescript_declarations_name_the_same_media_types() -> None:
    # The TypeScript client checks nothing itself (the SQL API does); its declared type must not drift.
    declarations = (REPO / "clients" / "typescript" / "src" / "index.d.ts").read_text()
    union = re.search(r"^export type MediaType = (.*);$", declarations, re.MULTILINE)
    assert union, "MediaType is not declared in index.d.ts"
    assert tuple(re.findall(r'"([^"]+)"', union.group(1))) == pipelines.MEDIA_TYPES
