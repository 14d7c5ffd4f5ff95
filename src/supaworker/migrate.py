"""Applies the numbered, forward-only migrations under a transaction-level advisory lock.

Each migration runs in its own transaction with the lock held, so several processes migrating at once
apply each version exactly once, and the lock also works behind a transaction pooler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql as pgsql

from . import sql
from .errors import MigrationError

log = logging.getLogger("supaworker.migrate")

_CREATE_LEDGER = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)
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


def applied_versions(conn: psycopg.Connection, schema: str) -> list[int]:
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".migrations',)).fetchone()
    if not exists or not exists[0]:
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
                    pgsql.SQL("INSERT INTO {}.migrations (version, name) VALUES (%s, %s)").format(
                        pgsql.Identifier(schema)
                    ),
                    (migration.version, migration.name),
                )
                applied_now.append(migration.version)
    return applied_now


def check_current(conn: psycopg.Connection, schema: str) -> None:
    """Raises MigrationError unless the schema is exactly at this version's latest migration."""
    state = status(conn, schema)
    if state.current > state.latest_known:
        raise MigrationError(
            f"schema {schema!r} is at migration {state.current}, newer than this supaworker knows "
            f"({state.latest_known}); upgrade supaworker"
        )
    if state.pending:
        raise MigrationError(f"schema {schema!r} is missing migrations {state.pending}; run `supaworker migrate` first")
