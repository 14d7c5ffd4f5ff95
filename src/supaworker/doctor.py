"""`supaworker doctor`: checks how the database is reached and how the queue is doing, and explains each
problem with its fix.

Every check returns a Finding (ok / warn / fail) and never changes anything but a throwaway NOTIFY.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import Any

import psycopg

from . import migrate
from .db import ConnectionProfile, _connected_port  # the port the conninfo names (what probe() compares)
from .errors import SchemaInUse
from .listener import listen_statement
from .sql import Queries, queries_for

OK, WARN, FAIL = "ok", "warn", "fail"
LISTEN_WAIT_SECONDS = 2.0
CLOCK_SKEW_WARN_SECONDS = 1.0
DEAD_TUPLE_WARN_RATIO = 0.2
DEAD_TUPLE_WARN_MIN = 10_000
# A month of a million jobs a day kept in jobs drains at about a third of the rate (bench/results/history.md).
FINISHED_ROWS_WARN = 1_000_000
OLD_TRANSACTION_WARN_SECONDS = 300
PID_ROUNDS = 5
# The catalog queries that name no supaworker object read the same in any schema.
CATALOG = queries_for("public")


@dataclass
class Finding:
    check: str
    status: str
    detail: str
    fix: str | None = None


def _connect(profile: ConnectionProfile) -> psycopg.Connection:
    return psycopg.connect(profile.conninfo, autocommit=True, prepare_threshold=None, connect_timeout=10)


def _one(conn: psycopg.Connection, query: str, params: dict[str, object] | None = None) -> Any:
    """The first column of the first row of a catalog query (they always return one)."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row[0]


def _backend_changes(profile: ConnectionProfile) -> bool:
    """Whether one client connection is served by different server backends: the mark of transaction pooling.

    A holds a transaction while B runs one, so a pooler in transaction mode must hand A's next statement
    to another backend than the one B just used (a direct or session-pooled connection keeps its own)."""
    pid = CATALOG.doctor_backend_pid
    with _connect(profile) as a, _connect(profile) as b:
        seen = set()
        for _ in range(PID_ROUNDS):
            seen.add(_one(a, pid))
            with b.transaction():
                b.execute(pid)
                seen.add(_one(a, pid))
        return len(seen) > 1


def check_connection(profile: ConnectionProfile) -> Finding:
    with _connect(profile) as conn:
        server_port = _one(conn, CATALOG.doctor_server_port)
        host = conn.info.host or ""
    port = _connected_port(profile.conninfo)
    switching = _backend_changes(profile)
    if switching or (profile.transaction_pooler and server_port != port):
        kind = "transaction pooler"
        detail = f"{kind}: connected to {host}:{port}, server on port {server_port}" + (
            "; statements of one connection ran on different backends" if switching else ""
        )
        fix = None
        if not profile.transaction_pooler:
            return Finding(
                "connection", FAIL, detail + "; supaworker did not detect it", "set SUPAWORKER_POOLER_MODE=transaction"
            )
        return Finding("connection", OK, detail + "; workers poll (no LISTEN) and use no prepared statements", fix)
    if server_port is not None and server_port != port:
        detail = f"session pooler: connected to {host}:{port}, server on port {server_port}"
        if profile.transaction_pooler:
            return Finding(
                "connection",
                WARN,
                detail + "; supaworker treats it as a transaction pooler (polling)",
                "if the pooler runs in session mode, SUPAWORKER_POOLER_MODE=session enables LISTEN",
            )
        return Finding("connection", OK, detail)
    where = "unix socket" if host.startswith("/") else f"{host}:{port}"
    if host.endswith(".pooler.supabase.com"):
        return Finding("connection", OK, f"session pooler (Supavisor, {where})")
    return Finding("connection", OK, f"direct connection ({where})")


def check_listen(profile: ConnectionProfile, schema: str) -> Finding:
    """LISTEN on one connection, NOTIFY from another, and see whether it arrives."""
    channel = f"{schema}_doctor_{secrets.token_hex(4)}"
    with _connect(profile) as listener, _connect(profile) as sender:
        listener.execute(listen_statement(channel))
        sender.execute(Queries(schema).doctor_ping_channel, {"channel": channel})
        received = any(True for _ in listener.notifies(timeout=LISTEN_WAIT_SECONDS, stop_after=1))
    if received:
        if not profile.can_listen:
            return Finding(
                "listen",
                WARN,
                "LISTEN works, but the workers poll: they assume a transaction pooler",
                "set SUPAWORKER_POOLER_MODE=session (or none) for instant wake-ups",
            )
        return Finding("listen", OK, "a NOTIFY reached a LISTENing connection: workers wake up at once")
    detail = f"a NOTIFY did not arrive within {LISTEN_WAIT_SECONDS:g}s (normal behind a transaction pooler)"
    if profile.can_listen:
        return Finding(
            "listen",
            FAIL,
            detail + " and the workers rely on LISTEN",
            "set SUPAWORKER_POOLER_MODE=transaction, or connect workers directly or via the session pooler",
        )
    return Finding("listen", OK, detail + "; workers poll every WORKER_POLL_INTERVAL_MS instead", None)


def check_migrations(profile: ConnectionProfile, schema: str) -> Finding:
    with _connect(profile) as conn:
        state = migrate.status(conn, schema)
        refused = None
        if not state.applied:
            try:
                migrate.refuse_shared_schema(conn, schema)
            except SchemaInUse as exc:
                refused = str(exc)
    if refused:  # `migrate` would refuse it: saying "run migrate" sent users round in a circle
        return Finding("migrations", FAIL, f"schema {schema!r} is not installed, and cannot be", refused)
    if not state.applied:
        return Finding("migrations", FAIL, f"schema {schema!r} is not installed", "run `supaworker migrate`")
    if state.current > state.latest_known:
        return Finding(
            "migrations",
            FAIL,
            f"at {state.current}, newer than this supaworker ({state.latest_known})",
            "upgrade supaworker on this host",
        )
    if state.pending:
        return Finding("migrations", FAIL, f"at {state.current}, missing {state.pending}", "run `supaworker migrate`")
    return Finding("migrations", OK, f"at {state.current} (latest)")


def _installed(conn: psycopg.Connection, schema: str) -> tuple[bool, bool]:
    """Whether the schema exists, and whether it has migration 0009's list of supaworker's own objects."""
    row = conn.execute(Queries(schema).doctor_schema_installed, {"schema": schema}).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


def check_rls(profile: ConnectionProfile, schema: str) -> Finding:
    queries = Queries(schema)
    with _connect(profile) as conn:
        exists, listed = _installed(conn, schema)
        if not exists:
            return Finding("rls", FAIL, f"schema {schema!r} is not installed", "run `supaworker migrate`")
        if not listed:
            return Finding("rls", FAIL, f"schema {schema!r} predates migration 0009", "run `supaworker migrate`")
        open_tables = [r[0] for r in conn.execute(queries.doctor_open_tables, {"schema": schema})]
        role_usage: dict[str, bool] = dict(conn.execute(queries.doctor_supabase_roles, {"schema": schema}).fetchall())
        roles = set(role_usage)
        leaks = []
        for role in sorted(roles & {"anon", "authenticated"}):
            leaks += [
                f"{role} may {what}"
                for (what,) in conn.execute(queries.doctor_public_access, {"role": role, "schema": schema})
            ]
        service_ok = role_usage.get("service_role", True)
    fix = f"run `supaworker migrate`, or as the owner: SELECT {schema}.secure_schema();"
    if open_tables:
        return Finding("rls", FAIL, f"row-level security is off on {', '.join(open_tables)}", fix)
    if leaks:
        return Finding("rls", FAIL, "public roles have access: " + "; ".join(leaks[:8]), fix)
    if not service_ok:
        return Finding("rls", WARN, "service_role cannot use the schema (created after the migration?)", fix)
    extra = "; anon and authenticated get nothing" if roles else " (no Supabase roles in this database)"
    return Finding("rls", OK, "row-level security on every supaworker table" + extra)


def check_ownership(profile: ConnectionProfile, schema: str) -> Finding:
    """Whether supaworker shares its schema with objects of others, and whether the schema-wide
    secure_schema() of migrations before 0009 changed them (RLS, its policy, anon's schema access)."""
    with _connect(profile) as conn:
        if not all(_installed(conn, schema)):
            return Finding("ownership", FAIL, f"schema {schema!r} is not at migration 0009", "run `supaworker migrate`")
        owned = {(row[0], row[1]) for row in conn.execute(Queries(schema).list_owned_objects)}
        objects = conn.execute(Queries(schema).list_schema_objects, {"schema": schema}).fetchall()
        foreign = [row for row in objects if (row[1], row[0]) not in owned]
        if not foreign:
            return Finding("ownership", OK, f"schema {schema!r} holds only supaworker's own objects")
        owns_schema = any(kind == "schema" for kind, _ in owned)
        locked_out = []
        if not owns_schema:
            locked_out = [r[0] for r in conn.execute(Queries(schema).doctor_schema_locked_out, {"schema": schema})]
    marked = [identity for identity, _, _, policy in foreign if policy]
    shown = ", ".join(identity for identity, *_ in foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    detail = f"schema {schema!r} also holds {len(foreign)} object(s) supaworker did not create ({shown})"
    if marked or locked_out:
        damage = []
        fixes = []
        if marked:
            damage.append(f"policy service_role_all and row-level security on {', '.join(marked)}")
            fixes += [f"DROP POLICY service_role_all ON {table};" for table in marked]
            fixes.append(
                "re-grant what your application's roles had (e.g. GRANT SELECT ON <table> TO anon, authenticated;),"
                " revoke what service_role was given on every table and function of the schema if your application"
                " did not give it, and ALTER TABLE <table> DISABLE ROW LEVEL SECURITY; where it did not enable it."
            )
        if locked_out:
            damage.append(f"{', '.join(locked_out)} may not use the schema")
            fixes.append(f"GRANT USAGE ON SCHEMA {schema} TO {', '.join(locked_out)};")
        return Finding(
            "ownership",
            FAIL,
            detail + "; an earlier supaworker's schema-wide secure_schema() changed them: " + "; ".join(damage),
            " ".join(fixes) + " Then move supaworker to a schema of its own (the default `supaworker`).",
        )
    return Finding(
        "ownership",
        WARN,
        detail + "; supaworker leaves them alone",
        "give supaworker a schema of its own (the default `supaworker`; `SET search_path TO supaworker, public`"
        " keeps unqualified `FROM jobs` working)",
    )


def check_clock(profile: ConnectionProfile) -> Finding:
    with _connect(profile) as conn:
        before = time.time()
        db_now = _one(conn, CATALOG.database_clock)
        after = time.time()
    skew = float(db_now) - (before + after) / 2
    detail = f"database clock is {skew:+.3f}s from this host's (round trip {1000 * (after - before):.0f} ms)"
    if abs(skew) > CLOCK_SKEW_WARN_SECONDS:
        return Finding(
            "clock",
            WARN,
            detail + "; leases use the database clock, but run_at given by this host is shifted by it",
            "synchronise this host's clock (chrony / systemd-timesyncd)",
        )
    return Finding("clock", OK, detail)


def check_bloat(profile: ConnectionProfile, schema: str) -> Finding:
    queries = Queries(schema)
    with _connect(profile) as conn:
        row = conn.execute(queries.doctor_jobs_table_stats, {"schema": schema}).fetchone()
        oldest = conn.execute(queries.doctor_oldest_snapshot).fetchone()
        invalid = [r[0] for r in conn.execute(queries.doctor_invalid_indexes, {"schema": schema})]
    if row is None:
        return Finding("bloat", WARN, "no statistics for the jobs table yet")
    live, dead, size, vacuumed, finished = row
    detail = (
        f"jobs: {live} live rows, {dead} dead, {size / 1e6:.1f} MB, last vacuum "
        f"{vacuumed.astimezone(UTC).isoformat(timespec='seconds') if vacuumed else 'never'}"
    )
    problems, fixes = [], []
    if invalid:
        problems.append(f"invalid indexes {', '.join(invalid)}")
        fixes.append("drop them (leftovers of a failed REINDEX CONCURRENTLY) and reindex")
    if oldest and oldest[1] and oldest[1] > OLD_TRANSACTION_WARN_SECONDS:
        problems.append(
            f"backend {oldest[0]} ({oldest[2]}) holds a snapshot for {oldest[1]}s, so vacuum cannot remove dead rows"
        )
        fixes.append(f"end it (SELECT pg_terminate_backend({oldest[0]})) and set idle_in_transaction_session_timeout")
    if dead > DEAD_TUPLE_WARN_MIN and dead > DEAD_TUPLE_WARN_RATIO * max(live, 1):
        problems.append("many dead rows")
        fixes.append(f"VACUUM (ANALYZE) {schema}.jobs; prune finished jobs on a schedule")
    if finished and finished > FINISHED_ROWS_WARN:
        problems.append(f"about {finished:,} finished jobs kept in jobs, which every claim and completion pays for")
        fixes.append(
            "move them out of the queue's table with SUPAWORKER_HISTORY_AFTER_SECONDS (history, README), or prune"
            " sooner (SUPAWORKER_PRUNE_*_AFTER_SECONDS)"
        )
    if problems:
        return Finding("bloat", WARN, detail + "; " + "; ".join(problems), "; ".join(fixes))
    return Finding("bloat", OK, detail)


def run_checks(profile: ConnectionProfile, schema: str) -> list[Finding]:
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("connection", lambda: check_connection(profile)),
        ("listen", lambda: check_listen(profile, schema)),
        ("migrations", lambda: check_migrations(profile, schema)),
        ("rls", lambda: check_rls(profile, schema)),
        ("ownership", lambda: check_ownership(profile, schema)),
        ("clock", lambda: check_clock(profile)),
        ("bloat", lambda: check_bloat(profile, schema)),
    ]
    findings = []
    for name, check in checks:
        try:
            findings.append(check())
        except psycopg.Error as exc:
            findings.append(
                Finding(
                    name,
                    FAIL,
                    f"check failed: {str(exc).strip().splitlines()[0]}",
                    "see the error; `supaworker doctor` needs a role that can read the schema",
                )
            )
    return findings


def as_dicts(findings: list[Finding]) -> list[dict[str, str | None]]:
    return [asdict(f) for f in findings]
