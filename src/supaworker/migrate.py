"""Applies the numbered, forward-only migrations under a transaction-level advisory lock.

Each migration runs in its own transaction with the lock held, so several processes migrating at once
apply each version exactly once, and the lock also works behind a transaction pooler. supaworker installs
only into a schema of its own (see `refuse_shared_schema`), and after every upgrade re-secures its own
objects (`secure_schema()`, migration 0009).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql as pgsql

from . import sql
from .errors import MigrationError, SchemaInUse

log = logging.getLogger("supaworker.migrate")

_CREATE_LEDGER = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
-- Whether workers of releases before this migration must not run against it (see docs/upgrades.md).
ALTER TABLE {schema}.migrations ADD COLUMN IF NOT EXISTS breaking boolean NOT NULL DEFAULT false
"""


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[int]
    latest_known: int

    @property
    def current(self) -> int:
        return max(self.applied, default=0)

    @property
    def pending(self) -> list[int]:
        return [m.version for m in sql.migrations() if m.version not in self.applied]


def _lock_key(schema: str) -> int:
    # A stable 63-bit key per schema, computed client-side so every version agrees on it.
    import hashlib

    return int.from_bytes(hashlib.sha256(f"supaworker.migrate:{schema}".encode()).digest()[:8], "big") >> 1


# Shown in the refusal: the ways to keep an application's unqualified `FROM jobs` working.
_SEARCH_PATH_HINT = (
    "To keep unqualified names such as `FROM jobs` working, leave SUPAWORKER_SCHEMA at its default (or name a new "
    "schema) and put it on the search path: `SET search_path TO supaworker, public` in the session, or once "
    "`ALTER ROLE <role> SET search_path TO supaworker, public`; or create views in your schema that read "
    "supaworker's tables (views run as their owner: grant them only to roles that may see the jobs)."
)
SHOWN_OBJECTS = 5


def _ledger_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (pgsql.Identifier(schema).as_string() + ".migrations",))
    return bool(row.fetchone()[0])  # type: ignore[index]


def refuse_shared_schema(conn: psycopg.Connection, schema: str) -> None:
    """Raises SchemaInUse unless `schema` can be supaworker's own: absent, or empty and not `public`.

    supaworker secures the schema it is installed in (schema privileges for anon and authenticated, RLS and
    policies on its tables), and its table names (`jobs`, `migrations`) are common ones: sharing a schema
    would either change the application's objects or collide with them. Runs before anything is created."""
    foreign = [row[0] for row in conn.execute(sql.queries_for(schema).list_schema_objects, {"schema": schema})]
    if schema == "public":
        why = "it is every role's default schema, which supaworker would have to lock down"
    elif foreign:
        shown = ", ".join(foreign[:SHOWN_OBJECTS]) + (", ..." if len(foreign) > SHOWN_OBJECTS else "")
        why = f"it already holds {len(foreign)} object(s) supaworker did not create ({shown})"
    else:
        return
    raise SchemaInUse(
        f"refusing to install supaworker into schema {schema!r}: {why}. Nothing was changed. {_SEARCH_PATH_HINT}"
    )


def applied_versions(conn: psycopg.Connection, schema: str) -> list[int]:
    if not _ledger_exists(conn, schema):
        return []
    query = pgsql.SQL("SELECT version FROM {}.migrations ORDER BY version").format(pgsql.Identifier(schema))
    return [row[0] for row in conn.execute(query)]


def status(conn: psycopg.Connection, schema: str) -> MigrationStatus:
    return MigrationStatus(applied_versions(conn, schema), sql.migrations()[-1].version)


def migrate(conninfo: str, schema: str) -> list[int]:
    """Brings the schema up to date; returns the versions applied now (empty when already current)."""
    applied_now: list[int] = []
    latest = sql.migrations()[-1].version
    with psycopg.connect(conninfo, prepare_threshold=None) as conn:
        for migration in sql.migrations():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
                if not _ledger_exists(conn, schema):
                    refuse_shared_schema(conn, schema)
                conn.execute(pgsql.SQL(_CREATE_LEDGER).format(schema=pgsql.Identifier(schema)))
                versions = applied_versions(conn, schema)
                if versions and max(versions) > latest:
                    raise MigrationError(
                        f"schema {schema!r} is at migration {max(versions)}, newer than this supaworker "
                        f"knows ({latest}); upgrade supaworker instead of running an older version"
                    )
                if migration.version in versions:
                    continue
                log.info("applying migration %04d_%s", migration.version, migration.name)
                conn.execute(sql.render(migration.text, schema))
                conn.execute(
                    pgsql.SQL("INSERT INTO {}.migrations (version, name, breaking) VALUES (%s, %s, %s)").format(
                        pgsql.Identifier(schema)
                    ),
                    (migration.version, migration.name, migration.breaking),
                )
                applied_now.append(migration.version)
        if applied_now:
            # A migration's new functions are open to PUBLIC until this runs (see 0009); idempotent.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
                conn.execute(pgsql.SQL("SELECT {}.secure_schema()").format(pgsql.Identifier(schema)))
    return applied_now


def breaking_versions_after(conn: psycopg.Connection, schema: str, version: int) -> list[int]:
    """Applied migrations newer than `version` that marked themselves breaking (`-- breaking:`). A schema newer
    than this release was migrated by a later one, which keeps the ledger's `breaking` column."""
    query = pgsql.SQL("SELECT version FROM {}.migrations WHERE version > %s AND breaking ORDER BY version")
    return [row[0] for row in conn.execute(query.format(pgsql.Identifier(schema)), (version,))]


def check_current(conn: psycopg.Connection, schema: str) -> None:
    """Raises MigrationError unless this release can run on the schema: every migration it knows applied,
    and none applied after them that breaks it. A newer schema without a breaking migration is the middle
    of a rolling deploy (the new release migrated; this one's workers are being replaced): it runs."""
    state = status(conn, schema)
    if state.current > state.latest_known:
        breaking = breaking_versions_after(conn, schema, state.latest_known)
        if breaking:
            raise MigrationError(
                f"schema {schema!r} is at migration {state.current}, newer than this supaworker knows "
                f"({state.latest_known}), and migration(s) {breaking} changed it in a way this version cannot "
                "run on; upgrade supaworker"
            )
        log.warning(
            "schema is newer than this supaworker (a rolling deploy?): running, upgrade soon",
            extra={"schema": schema, "schema_version": state.current, "known": state.latest_known},
        )
    if state.pending:
        raise MigrationError(f"schema {schema!r} is missing migrations {state.pending}; run `supaworker migrate` first")
