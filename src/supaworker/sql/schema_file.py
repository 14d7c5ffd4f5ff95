"""Writes and checks `schema.sql`: the current schema, as applying every migration to an empty database leaves it.

The numbered migrations stay the source of truth and stay forward-only, so a function that a later migration
redefines (claim_jobs: 0001, 0003, 0006, 0007) shows a stale body in the earlier file. schema.sql shows only
what is current, grouped by kind and sorted by name: types, tables (columns, constraints, storage options,
comments), indexes, views, functions (full bodies and SET options), triggers, row-level security and
policies, privileges. It is generated and committed, and tests/migration/test_schema_file.py fails when it
differs from what the migrations produce. Regenerate it with

    python -m supaworker.sql.schema_file --database-url URL        (or scripts/regenerate-schema)

which creates a scratch database on URL's server, migrates it, prints its schema into schema.sql and drops
the database again; `--check` writes nothing and exits 1 with a diff when the file is out of date.

The file is read from PostgreSQL's catalog by the dump_* queries (sql/queries/) rather than taken from
`pg_dump --schema-only`: the catalog gives the grouped order a reader wants (pg_dump orders by its own
priorities: functions before tables, constraints and ownership as separate ALTER statements), tables read
like the migrations' own CREATE TABLE, and regenerating needs only this package and a server, not a
pg_dump binary whose output changes between its own releases. Bodies and expressions are still PostgreSQL's
own text (pg_get_functiondef, pg_get_viewdef, pg_get_indexdef, pg_get_constraintdef, pg_get_triggerdef).
dump_unshown.sql lists whatever the queries would miss (a materialized view, a domain, a rule, ...), and the
file is refused while that list is not empty.

The schema is installed as PLACEHOLDER_SCHEMA, a name no body or comment contains, and printed back with
`{{schema}}` and `{{channel}}` as the migrations write them; owners are left out and OIDs never appear, so the
text does not depend on the database, its name or who migrated it. Grants to Supabase's roles (anon,
authenticated, service_role) are part of the file, so it is produced on a server that has those roles
(`--create-roles` creates them as NOLOGIN roles); on a server without them secure_schema() grants nothing to
them until they exist.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import secrets
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from ..errors import ConfigError
from ..migrate import migrate
from . import Queries, channel_name, migrations

SCHEMA_FILE = Path(__file__).with_name("schema.sql")
# The schema the file is printed from: a name that appears nowhere but where the migrations wrote {{schema}}.
PLACEHOLDER_SCHEMA = "schema_file_placeholder"
SUPABASE_ROLES = ("anon", "authenticated", "service_role")
REGENERATE_COMMAND = "scripts/regenerate-schema (python -m supaworker.sql.schema_file --database-url URL)"
RULE_WIDTH = 116

# Section title and the query that prints it. A query's rows are (group, statement): statements of one group
# are printed line after line, groups are separated by a blank line.
_SECTIONS = (
    ("types", "dump_types"),
    ("tables", "dump_tables"),
    ("indexes, by table", "dump_indexes"),
    ("views", "dump_views"),
    ("functions", "dump_functions"),
    ("triggers, by table", "dump_triggers"),
    ("row-level security and policies, by table", "dump_policies"),
    ("privileges (the owner's are left out; what is not granted here is not granted, to PUBLIC either)",
     "dump_privileges"),
)  # fmt: skip

_HEADER = """\
-- The current supaworker schema: every object as applying the migrations (up to {latest}) to an
-- empty database leaves it.
--
-- GENERATED, DO NOT EDIT. The numbered migrations in migrations/ are the source of truth: they stay as they
-- were released, and a later one replaces what an earlier one defined, so read a function's current body
-- here. After adding a migration, regenerate this file with
--     {command}
-- and commit it with the migration; tests/migration/test_schema_file.py fails while the two disagree.
--
-- {{{{schema}}}} is the schema supaworker is installed in and {{{{channel}}}} its wake-up channel, as in the
-- migrations. Each kind of object is sorted by name. Bodies and expressions are as PostgreSQL {major} prints them.
-- Grants to Supabase's roles (anon, authenticated, service_role) are those of a server that has them; without
-- them, secure_schema() grants them nothing until they exist. Rows (the migrations ledger, owned_objects) are
-- not shown. This file is for reading: `supaworker migrate` installs the schema.
"""
_PRINTED_BY = re.compile(r"as PostgreSQL (\d+) prints them")


def dump_schema(conn: psycopg.Connection, schema: str) -> tuple[int, str]:
    """The server's major version and the schema's objects in schema.sql's order, with their real names.

    Raises RuntimeError, naming them, when the schema holds objects the dump_* queries do not print."""
    queries = Queries(schema)
    params = {"schema": schema}
    with conn.transaction():
        row = conn.execute(queries.dump_print_settings).fetchone()
        assert row is not None
        major = int(row[-1])
        unshown = [r[0] for r in conn.execute(queries.dump_unshown, params)]
        if unshown:
            raise RuntimeError(
                f"schema.sql cannot show everything in schema {schema!r}: {'; '.join(unshown)}. "
                "Teach sql/schema_file.py and its dump_* queries to print it."
            )
        sections = [(title, conn.execute(getattr(queries, name), params).fetchall()) for title, name in _SECTIONS]
    return major, "\n".join(_section(title, rows) for title, rows in sections if rows)


def _section(title: str, rows: list[tuple[object, ...]]) -> str:
    rule = f"-- -- {title} ".ljust(RULE_WIDTH, "-")
    out = [rule, ""]
    previous: object = None
    for index, row in enumerate(rows):
        # One column: every statement is a group of its own.
        group, statement = (row[0], row[-1]) if len(row) > 1 else (index, row[0])
        if index and group != previous:
            out.append("")
        out.append(str(statement))
        previous = group
    return "\n".join(out) + "\n"


def to_placeholders(text: str, schema: str) -> str:
    """The text with the schema's name as `{{schema}}` and its channel as `{{channel}}`: the inverse of render().

    Meant for PLACEHOLDER_SCHEMA, a name that appears only where the migrations wrote `{{schema}}`."""
    text = text.replace(pgsql.Literal(channel_name(schema)).as_string(), "{{channel}}")
    text = text.replace(pgsql.Identifier(schema).as_string(), "{{schema}}")  # as render() wrote it into bodies
    text = re.sub(rf"\b{re.escape(schema)}\b", "{{schema}}", text)  # as the catalog prints a name
    if schema in text:
        raise RuntimeError(f"{schema!r} is still in the text after its names were replaced")
    return text


def missing_roles(conn: psycopg.Connection) -> list[str]:
    """Supabase's roles that this server lacks (schema.sql shows the grants to them)."""
    present = {r[0] for r in conn.execute(Queries(PLACEHOLDER_SCHEMA).existing_roles, {"roles": list(SUPABASE_ROLES)})}
    return [role for role in SUPABASE_ROLES if role not in present]


def produce(conninfo: str) -> str:
    """Migrates an empty database (into PLACEHOLDER_SCHEMA) and returns its schema.sql text.

    Raises ConfigError when the server lacks Supabase's roles: the file would lack the grants to them."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        missing = missing_roles(conn)
    if missing:
        raise ConfigError(
            f"this server has no role {', '.join(missing)}: schema.sql shows the grants to Supabase's roles, so "
            "it is produced where they exist (--create-roles creates them as NOLOGIN roles)"
        )
    migrate(conninfo, PLACEHOLDER_SCHEMA)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        major, body = dump_schema(conn, PLACEHOLDER_SCHEMA)
    latest = migrations()[-1]
    header = _HEADER.format(latest=f"{latest.version:04d}_{latest.name}", command=REGENERATE_COMMAND, major=major)
    return to_placeholders(header + "\n" + body, PLACEHOLDER_SCHEMA)


def printed_by(text: str) -> int | None:
    """The PostgreSQL major version a schema.sql text says it was printed by (None if it says not)."""
    match = _PRINTED_BY.search(text)
    return int(match.group(1)) if match else None


def unified_diff(committed: str, produced: str) -> str:
    """What regenerating would change in the committed file, as a unified diff."""
    return "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            produced.splitlines(keepends=True),
            "schema.sql (committed)",
            "schema.sql (from the migrations)",
        )
    )


@contextlib.contextmanager
def scratch_database(conninfo: str) -> Iterator[str]:
    """A new empty database on the server of `conninfo`, dropped on exit; yields its conninfo."""
    name = f"supaworker_schema_file_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE template0").format(pgsql.Identifier(name)))
    try:
        yield make_conninfo(conninfo, dbname=name)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


def create_roles(conninfo: str) -> list[str]:
    """Creates the Supabase roles the server lacks, as NOLOGIN roles; returns their names."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        missing = missing_roles(conn)
        for role in missing:
            conn.execute(pgsql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(pgsql.Identifier(role)))
    return missing


def regenerate(conninfo: str, path: Path = SCHEMA_FILE, *, check: bool = False) -> str:
    """Produces schema.sql on a scratch database of `conninfo`'s server and returns the diff from `path`
    (empty when up to date). Writes the file when it differs, unless `check`."""
    with scratch_database(conninfo) as scratch:
        produced = produce(scratch)
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    diff = unified_diff(committed, produced)
    if diff and not check:
        path.write_text(produced, encoding="utf-8")
    return diff


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m supaworker.sql.schema_file`: exit 0 when written or up to date, 1 when --check found a
    difference, 2 when the server cannot produce the file."""
    parser = argparse.ArgumentParser(
        prog="python -m supaworker.sql.schema_file",
        description="Regenerate schema.sql from the migrations, on a scratch database of the server at the URL.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="any database on the server (default: $DATABASE_URL); needs the right to create databases",
    )
    parser.add_argument("--output", type=Path, default=SCHEMA_FILE, help=f"the file (default: {SCHEMA_FILE})")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 and print a diff if stale")
    parser.add_argument(
        "--create-roles", action="store_true", help="create Supabase's anon, authenticated and service_role if absent"
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    try:
        if args.create_roles:
            for role in create_roles(args.database_url):
                print(f"created role {role} (NOLOGIN)", file=sys.stderr)
        diff = regenerate(args.database_url, args.output, check=args.check)
    except (ConfigError, psycopg.OperationalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not diff:
        print(f"{args.output}: up to date")
        return 0
    if args.check:
        sys.stdout.write(diff)
        print(f"{args.output} is out of date: regenerate it with {REGENERATE_COMMAND}", file=sys.stderr)
        return 1
    print(f"{args.output}: rewritten ({diff.count(chr(10))} diff lines); review it with git diff")
    return 0


if __name__ == "__main__":
    sys.exit(main())
