"""sql/schema.sql is exactly what migrating an empty database produces, and is never printed incomplete."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from supaworker.sql import render, schema_file

from ..conftest import SCHEMA, admin_url, run_cli
from ..servers import ensure_supabase_roles


def test_schema_file_is_what_the_migrations_produce(empty_db: str) -> None:
    # The file shows the grants to Supabase's roles, so it is produced where they exist, as the test template is.
    ensure_supabase_roles(admin_url())
    produced = schema_file.produce(empty_db)
    committed = schema_file.SCHEMA_FILE.read_text(encoding="utf-8")
    server, printer = schema_file.printed_by(produced), schema_file.printed_by(committed)
    if server != printer:
        pytest.skip(f"schema.sql is printed by PostgreSQL {printer}; this server ({server}) prints bodies otherwise")
    if produced != committed:
        pytest.fail(
            "src/supaworker/sql/schema.sql is not what the migrations produce. Regenerate it with "
            f"{schema_file.REGENERATE_COMMAND}, then review and commit the change:\n"
            + schema_file.unified_diff(committed, produced),
            pytrace=False,
        )


def test_schema_file_refuses_an_object_it_cannot_show(conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE MATERIALIZED VIEW {SCHEMA}.jobs_by_type AS SELECT type FROM {SCHEMA}.jobs")
    with pytest.raises(RuntimeError, match="materialized view jobs_by_type"):
        schema_file.dump_schema(conn, SCHEMA)


@pytest.mark.parametrize(
    ("create", "named"),
    [
        (f"CREATE OPERATOR {SCHEMA}.=== (LEFTARG = integer, RIGHTARG = integer, FUNCTION = int4eq)", "operator"),
        (f'CREATE COLLATION {SCHEMA}.bytes FROM "C"', "collation"),
        (f"CREATE STATISTICS {SCHEMA}.type_queue ON type, queue FROM {SCHEMA}.jobs", "statistics object"),
        (f"CREATE TEXT SEARCH CONFIGURATION {SCHEMA}.plain (COPY = simple)", "text search configuration"),
    ],
)
def test_schema_file_refuses_any_other_kind_of_object(conn: psycopg.Connection, create: str, named: str) -> None:
    conn.execute(create)
    with pytest.raises(RuntimeError, match=named):
        schema_file.dump_schema(conn, SCHEMA)


def test_a_partition_of_history_is_data_not_schema(conn: psycopg.Connection) -> None:
    conn.execute(f"SELECT {SCHEMA}.history_partition(now(), 3600)")
    _, body = schema_file.dump_schema(conn, SCHEMA)
    assert "PARTITION BY RANGE (completed_at)" in body and "job_history_2" not in body


def test_placeholders_undo_render() -> None:
    text = "SELECT pg_notify({{channel}}, ''), {{schema}}.f(), parse_ident('{{schema}}') FROM {{schema}}.jobs"
    rendered = render(text, schema_file.PLACEHOLDER_SCHEMA)
    assert rendered != text
    assert schema_file.to_placeholders(rendered, schema_file.PLACEHOLDER_SCHEMA) == text


def test_schema_dump_command_checks_and_rewrites_a_stale_file(empty_db: str, tmp_path: Path) -> None:
    ensure_supabase_roles(admin_url())
    stale = tmp_path / "schema.sql"
    stale.write_text("-- stale\n", encoding="utf-8")
    checked = run_cli(empty_db, "schema", "dump", "--check", "--output", str(stale))
    assert checked.returncode == 9, checked.stderr
    assert "+-- stale" not in checked.stdout and "--- " in checked.stdout and "out of date" in checked.stderr
    assert stale.read_text(encoding="utf-8") == "-- stale\n"  # --check changes nothing
    written = run_cli(empty_db, "schema", "dump", "--output", str(stale))
    assert written.returncode == 0 and "rewritten" in written.stdout, written.stderr
    assert stale.read_text(encoding="utf-8").startswith("--") and "CREATE TABLE {{schema}}.jobs" in stale.read_text()
    again = run_cli(empty_db, "schema", "dump", "--check", "--output", str(stale))
    assert again.returncode == 0 and "up to date" in again.stdout
