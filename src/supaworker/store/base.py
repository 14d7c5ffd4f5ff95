"""What every part of the Store shares: the pool or the caller's connection, transactions, and reading rows
that PostgreSQL stored, however odd (see `supaworker.loaders`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ..loaders import use_lenient_loaders
from ..retry import ended_sessions_as_lost
from ..sql import queries_for


def reading_cursor(conn: psycopg.Connection, row_factory: Any = None) -> psycopg.Cursor[Any]:
    """A cursor that reads any stored row, odd values included (see `supaworker.loaders`); the adapters are
    the cursor's own, so a caller's connection is left as it was."""
    cur = conn.cursor(row_factory=row_factory) if row_factory is not None else conn.cursor()
    use_lenient_loaders(cur)
    return cur


def filter_params(kind: Any, filters: Mapping[str, Any]) -> dict[str, Any]:
    """The query parameters of a listing narrowed by `filters`, keys of the TypedDict `kind`: its query has a
    placeholder for every filter, NULL where none was given. An unknown one (a misspelling) is a TypeError, as
    for any keyword argument, rather than a listing that silently narrows nothing."""
    allowed: frozenset[str] = kind.__optional_keys__
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise TypeError(f"unexpected filter {unknown[0]!r} (filters: {', '.join(sorted(allowed))})")
    return {**dict.fromkeys(allowed), **filters}


class StoreBase:
    """Synchronous access: each call borrows a connection from the pool, or uses the caller's `conn`
    (and then runs inside the caller's transaction, committing nothing itself)."""

    def __init__(self, pool: ConnectionPool | None, schema: str) -> None:
        self.pool = pool
        self.q = queries_for(schema)

    @contextmanager
    def connection(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        if conn is not None:
            yield conn
            return
        if self.pool is None:
            raise RuntimeError("this Store has no pool; pass conn=")
        with ended_sessions_as_lost(), self.pool.connection() as pooled:
            yield pooled

    @contextmanager
    def transaction(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """Atomic work. On a caller's non-autocommit connection it joins the caller's transaction (psycopg's
        transaction() would commit it at block exit when none was open yet)."""
        with self.connection(conn) as c:
            if conn is not None and not c.autocommit:
                yield c
                return
            with c.transaction():
                yield c

    def _rows(self, query: str, params: dict[str, Any], conn: psycopg.Connection | None) -> list[dict[str, Any]]:
        with self.connection(conn) as c, reading_cursor(c, dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def _write(self, query: str, params: dict[str, Any], conn: psycopg.Connection | None) -> dict[str, Any] | None:
        """Runs a writing statement atomically; its first row, if it returned any."""
        with self.transaction(conn) as c, c.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchone()

    def _value(self, query: str, params: dict[str, Any], conn: psycopg.Connection | None) -> Any:
        with self.connection(conn) as c, reading_cursor(c) as cur:
            row = cur.execute(query, params).fetchone()
            return row[0] if row else None
