"""Applies the numbered, forward-only migrations under a transaction-level advisory lock.

Each migration runs in its own transaction with the lock held, so several processes migrating at once
apply each version exactly once, and the lock also works behind a transaction pooler. supaworker installs
only into a schema of its own (see `refuse_shared_schema`) whose name the SQL can use (see `check_schema_name`),
and secures its own objects (`secure_schema()`, migration 0009) in the transaction of the last migration, so a
migrate stopped at any point (a crash, kill -9) never leaves the latest schema unsecured; a run with nothing to
apply secures them again too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql as pgsql

from . import sql
from .errors import ConfigError, MigrationError, SchemaInUse

log = logging.getLogger("supaworker.migrate")

# The schema itself is created only when missing (`_create_schema`): CREATE SCHEMA IF NOT EXISTS needs CREATE on the
# database even when the schema exists, which a role given a schema of its own by the database owner lacks.
_CREATE_LEDGER = """
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


def check_schema_name(schema: str) -> None:
    """Raises ConfigError unless the migrations can install into `schema` (see `sql.schema_name_problem`)."""
    why = sql.schema_name_problem(schema)
    if why:
        raise ConfigError(f"SUPAWORKER_SCHEMA {schema!r} cannot hold supaworker: {why}. Nothing was changed.")


def _create_schema(conn: psycopg.Connection, schema: str) -> None:
    """Creates the schema when it is missing, naming the role and the grant it lacks when it may not."""
    exists = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (pgsql.Identifier(schema).as_string(),))
    if exists.fetchone()[0]:  # type: ignore[index]
        return
    try:
        with conn.transaction():
            conn.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
    except psycopg.errors.InsufficientPrivilege as exc:
        role, database = conn.execute("SELECT current_user, current_database()").fetchone()  # type: ignore[misc]
        raise MigrationError(
            f"cannot create schema {schema!r}: role {role!r} may not create schemas in database {database!r} "
            f"({str(exc).strip()}). Nothing was changed. Have the database owner run "
            f"`CREATE SCHEMA {pgsql.Identifier(schema).as_string()} AUTHORIZATION {pgsql.Identifier(role).as_string()}`"
            f" (or `GRANT CREATE ON DATABASE {pgsql.Identifier(database).as_string()} TO "
            f"{pgsql.Identifier(role).as_string()}`), then run `supaworker migrate` again"
        ) from exc


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


# PostgREST (Supabase's REST API, and the worker's transport over it) caches the functions it may call: without a
# reload it answers "function not found" for what a migration added until it restarts. Sent on commit; nothing
# happens where no PostgREST listens.
RELOAD_POSTGREST = "NOTIFY pgrst, 'reload schema'"


def migrate(conninfo: str, schema: str) -> list[int]:
    """Brings the schema up to date; returns the versions applied now (empty when already current)."""
    check_schema_name(schema)
    applied_now: list[int] = []
    latest = sql.migrations()[-1].version
    secure = pgsql.SQL("SELECT {}.secure_schema()").format(pgsql.Identifier(schema))
    with psycopg.connect(conninfo, prepare_threshold=None) as conn:
        for migration in sql.migrations():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
                if not _ledger_exists(conn, schema):
                    refuse_shared_schema(conn, schema)
                    _create_schema(conn, schema)
                _apply(
                    conn,
                    schema,
                    pgsql.SQL(_CREATE_LEDGER).format(schema=pgsql.Identifier(schema)),
                    "the ledger (supaworker's table of applied migrations)",
                )
                versions = applied_versions(conn, schema)
                if versions and max(versions) > latest:
                    raise MigrationError(
                        f"schema {schema!r} is at migration {max(versions)}, newer than this supaworker "
                        f"knows ({latest}); upgrade supaworker instead of running an older version"
                    )
                if migration.version in versions:
                    continue
                log.info("applying migration %04d_%s", migration.version, migration.name)
                _apply(conn, schema, sql.render(migration.text, schema), f"migration {migration.version:04d}")
                conn.execute(
                    pgsql.SQL("INSERT INTO {}.migrations (version, name, breaking) VALUES (%s, %s, %s)").format(
                        pgsql.Identifier(schema)
                    ),
                    (migration.version, migration.name, migration.breaking),
                )
                applied_now.append(migration.version)
                conn.execute(RELOAD_POSTGREST)  # with each: a run stopped half-way has announced what it applied
                if migration.version == latest:
                    # A migration's new functions are open to PUBLIC until this runs (see 0009): it commits with
                    # the last one, or a migrate stopped in between would leave them open, and a second run,
                    # finding nothing to apply, would not secure them.
                    conn.execute(secure)
        if applied_now and applied_now[-1] == latest:
            return applied_now
        # Nothing applied, or only an earlier version missing from the ledger: secure again all the same, so a
        # run repairs what an earlier one stopped before securing (or a release that secured in a transaction
        # of its own) left open, and covers roles created since. Only the owner may; it changes only what is
        # missing and takes no table lock then (0015).
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
            if applied_now:
                conn.execute(secure)
            elif _may_secure(conn, schema):
                _secure_again(conn, schema, secure)
    return applied_now


def _secure_again(conn: psycopg.Connection, schema: str, secure: pgsql.Composed) -> None:
    """secure_schema() on an up-to-date schema: a role that may call it but does not own every object (what an
    interrupted migrate left open to PUBLIC) is told, and the run, which had nothing to apply, still succeeds."""
    try:
        with conn.transaction():
            conn.execute(secure)
    except psycopg.errors.InsufficientPrivilege as exc:
        log.warning(
            "schema %s is up to date but could not be secured as this role (%s): run `supaworker migrate` as its "
            "owner (`supaworker doctor` shows what is open)",
            schema,
            exc.diag.message_primary or exc,
        )


def _may_secure(conn: psycopg.Connection, schema: str) -> bool:
    function = pgsql.Identifier(schema).as_string() + ".secure_schema()"
    row = conn.execute("SELECT has_function_privilege(to_regprocedure(%s), 'EXECUTE')", (function,)).fetchone()
    return bool(row and row[0])


def _apply(conn: psycopg.Connection, schema: str, statements: str | pgsql.Composed, what: str) -> None:
    """Runs a migration's SQL, naming the role and the privilege it lacks when one is missing."""
    try:
        conn.execute(statements)
    except psycopg.errors.InsufficientPrivilege as exc:
        role = conn.info.parameter_status("session_authorization") or conn.info.user
        raise MigrationError(
            f"cannot apply {what} to schema {schema!r} as role {role!r}: {exc.diag.message_primary or exc}; "
            "nothing of it was applied. Run `supaworker migrate` as the schema's owner, or grant this role "
            f"CREATE on it: `GRANT CREATE ON SCHEMA {pgsql.Identifier(schema).as_string()} TO "
            f"{pgsql.Identifier(role).as_string()}`"
        ) from exc


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
    if state.pending and not state.applied:
        try:
            refuse_shared_schema(conn, schema)
        except SchemaInUse as exc:  # "run migrate" would only send the user to this refusal
            raise MigrationError(f"supaworker is not installed in schema {schema!r}, and cannot be: {exc}") from None
    if state.pending:
        raise MigrationError(f"schema {schema!r} is missing migrations {state.pending}; run `supaworker migrate` first")
