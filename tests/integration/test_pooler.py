"""Behind PgBouncer in transaction mode: detection, no prepared statements, and no session state."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from supaworker.db import probe
from supaworker.new_job import NewJob
from supaworker.store import Store
from tests.conftest import SCHEMA, admin_url
from tests.servers import PgBouncer


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    b = PgBouncer(admin_url(), pool_size=2).start()
    yield b
    b.stop()


def test_probe_detects_pgbouncer_in_transaction_mode(db: str, bouncer: PgBouncer) -> None:
    assert probe(bouncer.url_for(db)).transaction_pooler
    assert not probe(bouncer.url_for(db)).can_listen
    assert not probe(db).transaction_pooler
    assert probe(db, "transaction").transaction_pooler  # SUPAWORKER_POOLER_MODE=transaction


def _hammer(store: Store, rounds: int) -> None:
    for i in range(rounds):
        store.insert_job(NewJob.build("t", {"i": i}, priority=i % 3))
        store.job_stats()
        store.list_jobs(limit=5)


def test_the_store_runs_through_pgbouncer_without_prepared_statements(db: str, bouncer: PgBouncer) -> None:
    url = bouncer.url_for(db)
    kwargs = probe(url).connect_kwargs
    # More clients than PgBouncer's 2 server connections: statements of one client land on different backends.
    with ConnectionPool(url, min_size=6, max_size=6, kwargs=kwargs, open=True) as pool:
        store = Store(pool, SCHEMA)
        with ThreadPoolExecutor(6) as threads:
            list(threads.map(lambda _: _hammer(store, 30), range(6)))
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM supaworker.jobs").fetchone() == (180,)


def test_prepared_statements_really_break_behind_this_pgbouncer(db: str, bouncer: PgBouncer) -> None:
    # The counter-proof: what the detection avoids does fail here, so the test above means something.
    url = bouncer.url_for(db)
    errors: list[str] = []

    def run(_: int) -> None:
        try:
            with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
                for _ in range(30):
                    conn.execute("SELECT count(*) FROM supaworker.jobs WHERE priority = %s", (1,))
        except psycopg.Error as exc:
            errors.append(str(exc))

    with ThreadPoolExecutor(6) as threads:
        list(threads.map(run, range(6)))
    assert any("prepared statement" in e for e in errors), errors


# Statements that change the session rather than the transaction (SET LOCAL and xact locks are fine).
SESSION_STATEMENT = re.compile(r"^(SET\s+(?!LOCAL\b)|RESET\b|LISTEN\b|PREPARE\b|DISCARD\b)", re.IGNORECASE)
SESSION_CALL = re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\(|set_config\s*\([^)]*,\s*false\s*\)", re.IGNORECASE)


def session_state(text: str) -> list[str]:
    code = re.sub(r"--[^\n]*", "", text)
    statements = [s.strip() for s in code.split(";") if s.strip()]
    return [s[:60] for s in statements if SESSION_STATEMENT.match(s) or SESSION_CALL.search(s)]


def test_the_session_state_check_recognises_what_it_forbids() -> None:
    assert session_state("SET statement_timeout = 0; SELECT 1")
    assert session_state("SELECT pg_advisory_lock(1)")
    assert not session_state(
        "UPDATE t\n   SET a = 1 WHERE b; SET LOCAL lock_timeout = 1; SELECT pg_advisory_xact_lock(1)"
    )


def test_no_named_query_leaves_session_state_behind() -> None:
    # Through a transaction pooler the next transaction may run on another client's backend.
    queries = resources.files("supaworker.sql").joinpath("queries")
    offenders = {q.name: session_state(q.read_text()) for q in queries.iterdir() if q.name.endswith(".sql")}
    assert {name: found for name, found in offenders.items() if found} == {}
