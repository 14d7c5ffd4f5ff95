"""Finding the database and connecting to it the right way for what sits in between.

Behind a transaction pooler (Supavisor on 6543, PgBouncer in transaction mode) prepared statements break
and LISTEN silently receives nothing, so connections there are made without either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .config import Settings
from .errors import ConfigError, DatabaseUnavailable

log = logging.getLogger("supaworker.db")

CONNECT_TIMEOUT_SECONDS = 10


def resolve_conninfo(settings: Settings, *, allow_embedded: bool = False) -> str:
    """DATABASE_URL (or SUPABASE_DB_URL); without it, the embedded PostgreSQL when `allow_embedded` (the CLI and
    `supaworker up`), else a ConfigError: an application's library call never starts a server of its own."""
    if settings.database_url:
        try:
            conninfo_to_dict(settings.database_url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"DATABASE_URL is not a valid connection string: {exc}") from None
        return settings.database_url
    if not allow_embedded:
        # Where an HTTP path for library calls hooks in: settings.uses_http (SUPABASE_URL + service-role key).
        supabase = (
            " SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are set, but this call needs the database itself"
            " (on Supabase: Project Settings > Database > Connection string)."
            if settings.uses_http
            else ""
        )
        raise ConfigError(
            "no database configured: set DATABASE_URL (or SUPABASE_DB_URL) to the PostgreSQL connection string."
            + supabase
            + " The embedded PostgreSQL is only for `supaworker up` and the CLI."
        )
    from . import embedded

    return embedded.start(settings.embedded_data_dir)


def resolve_read_conninfo(settings: Settings) -> str | None:
    """SUPAWORKER_READ_URL, the replica the API and dashboard read from; None when reads go to the primary."""
    if settings.read_url is None:
        return None
    try:
        conninfo_to_dict(settings.read_url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"SUPAWORKER_READ_URL is not a valid connection string: {exc}") from None
    return settings.read_url


@dataclass(frozen=True)
class ConnectionProfile:
    """What the connection path allows: decided once per process."""

    conninfo: str
    transaction_pooler: bool

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        # prepare_threshold=None: no server-side prepared statements, which poolers cannot keep.
        return {"autocommit": True, "prepare_threshold": None if self.transaction_pooler else 5}

    @property
    def can_listen(self) -> bool:
        return not self.transaction_pooler


def liveness_kwargs(deadline_seconds: float) -> dict[str, Any]:
    """libpq settings under which a dead link breaks a connection within about `deadline_seconds`, instead
    of after minutes of TCP retransmission: keepalive probes for idle connections, a user timeout for
    unacknowledged sends, and a connect timeout. A worker passes its lease: it must learn of a partition
    before its leases run out. Ignored on unix sockets."""
    third = max(1, int(deadline_seconds / 3))
    return {
        "keepalives": 1,
        "keepalives_idle": third,
        "keepalives_interval": max(1, third // 3),
        "keepalives_count": 3,
        "tcp_user_timeout": max(1000, int(deadline_seconds * 500)),
        "connect_timeout": max(2, third),
    }


def server_liveness_statement(deadline_seconds: float) -> str:
    """SET statements under which the server drops one of our connections within about `deadline_seconds` of
    the link dying: keepalive probes sent by the server. Without them a backend that had received part of a
    pipeline (a claim, completions) waits for the rest, holding row locks, until the kernel gives up on the
    socket, two hours by default; the jobs it locked could not be rescued meanwhile."""
    third = max(1, int(deadline_seconds / 3))
    return (
        f"SET tcp_keepalives_idle = {third}; SET tcp_keepalives_interval = {max(1, third // 3)};"
        f" SET tcp_keepalives_count = 3; SET tcp_user_timeout = {max(1000, int(deadline_seconds * 500))}"
    )


def _connected_port(conninfo: str) -> int | None:
    params = conninfo_to_dict(conninfo)
    port = params.get("port")
    if port is None:
        return 5432
    try:
        return int(str(port).split(",")[0])
    except ValueError:
        return None


def probe(
    conninfo: str, pooler_mode: str = "auto", *, then: Callable[[psycopg.Connection[Any]], None] | None = None
) -> ConnectionProfile:
    """Connects once to check the database answers and to detect a transaction pooler. `then` runs on that same
    connection afterwards (one connection where a caller needs two, as the worker's schema check), its errors
    passed on as they are; with `pooler_mode` "transaction", which needs no probe, on a connection of its own."""
    if pooler_mode == "transaction":
        if then is not None:
            with psycopg.connect(conninfo, prepare_threshold=None) as conn:
                then(conn)
        return ConnectionProfile(conninfo, True)
    try:
        conn = psycopg.connect(
            conninfo, autocommit=True, prepare_threshold=None, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {str(exc).strip()}") from None
    with conn:
        try:
            server_port = conn.execute("SELECT inet_server_port()").fetchone()
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {str(exc).strip()}") from None
        host = conn.info.host or ""
        if then is not None:
            then(conn)
    if pooler_mode in ("session", "none"):
        return ConnectionProfile(conninfo, False)
    # A unix socket has no port to compare; a pooler sits on TCP.
    if host.startswith("/") or server_port is None or server_port[0] is None:
        return ConnectionProfile(conninfo, False)
    behind = server_port[0] != _connected_port(conninfo)
    if behind:
        log.info(
            "transaction pooler assumed: connected to port %s, server listens on %s; polling instead of LISTEN",
            _connected_port(conninfo),
            server_port[0],
        )
    return ConnectionProfile(conninfo, behind)
