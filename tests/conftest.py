"""Fixtures shared by every layer: each test that needs a database gets its own, cloned from a template
that was migrated once per session."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from supaworker import client
from supaworker.migrate import migrate
from supaworker.store import Store
from tests.servers import ensure_supabase_roles

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "supaworker"
# Per checkout and per test session, so concurrent runs on one server never share (or drop) databases.
CHECKOUT_PREFIX = "swt_" + hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
PREFIX = f"{CHECKOUT_PREFIX}_{os.getpid()}"
TEMPLATE = f"{PREFIX}_template"


def admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def url_for(dbname: str) -> str:
    params = conninfo_to_dict(admin_url())
    params["dbname"] = dbname
    return make_conninfo(**params)


def _admin() -> psycopg.Connection:
    return psycopg.connect(admin_url(), autocommit=True)


def create_database(name: str, template: str | None = None) -> str:
    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_for(name)


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_stale_databases() -> None:
    """Drops databases left by earlier sessions of this checkout that were killed before cleaning up."""
    with _admin() as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (CHECKOUT_PREFIX + "_%",))
        ]
    for name in names:
        pid = name.split("_")[2]
        if pid.isdigit() and Path("/proc/self").exists() and not Path(f"/proc/{pid}").exists():
            drop_database(name)


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    """A database migrated to the latest schema; test databases are cloned from it."""
    drop_stale_databases()
    # The shared server looks like Supabase's from the start (its roles exist before the schema is installed),
    # so no test depends on which earlier test created them. Plain PostgreSQL is tested on a private cluster.
    ensure_supabase_roles(admin_url())
    url = create_database(TEMPLATE)
    migrate(url, SCHEMA)
    yield TEMPLATE
    drop_database(TEMPLATE)


@pytest.fixture
def empty_db() -> Iterator[str]:
    """A database with nothing installed (for migration tests)."""
    name = f"{PREFIX}_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    yield url
    drop_database(name)


@pytest.fixture
def db(template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database of this test's own."""
    name = f"{PREFIX}_{uuid.uuid4().hex[:10]}"
    url = create_database(name, template=template_db)
    yield url
    drop_database(name)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db, autocommit=True) as c:
        yield c


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    with ConnectionPool(db, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True) as pool:
        yield Store(pool, SCHEMA)


@pytest.fixture
def default_client(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Points supaworker's process-wide client (create_job without conn/store) at this test's database."""
    from supaworker.config import get_settings

    monkeypatch.setenv("DATABASE_URL", db)
    get_settings.cache_clear()
    client.close()
    yield
    client.close()
    get_settings.cache_clear()


def subprocess_env(db: str, **extra: str) -> dict[str, str]:
    """Environment for a supaworker subprocess on the given database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPAWORKER_", "WORKER_"))}
    env.update(
        DATABASE_URL=db,
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]),
        ENABLE_HEALTH_CHECK="false",
        LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_cli(
    db: str | None, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs `supaworker ARGS` to completion and returns the result (output captured as text)."""
    full_env = env or (subprocess_env(db) if db else {**os.environ})
    return subprocess.run(
        [sys.executable, "-m", "supaworker", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
