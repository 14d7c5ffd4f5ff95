"""A handler module that opens a database connection when imported and uses it in its handler. A supervisor
that imported it must not fork its workers: they would all share that one connection."""

from __future__ import annotations

import os

import psycopg

import supaworker

connection = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


@supaworker.handler("own_connection")
def own_connection(job: supaworker.Job) -> dict[str, int]:
    row = connection.execute("SELECT pg_backend_pid()").fetchone()
    return {"backend": row[0] if row else 0, "worker": os.getpid()}
