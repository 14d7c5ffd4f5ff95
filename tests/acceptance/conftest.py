"""Real `supaworker worker` processes for the acceptance tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from supaworker.db import probe
from supaworker.store import Store
from tests.conftest import REPO, SCHEMA, admin_url, subprocess_env
from tests.servers import PgBouncer


class Workers:
    """Starts worker processes on one database and makes sure none outlives the test."""

    def __init__(self, db: str, side_effects: Path, logs: Path) -> None:
        self.db = db
        self.side_effects = side_effects
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 - kept open for the process
        full_env = subprocess_env(self.db, SIDE_EFFECT_FILE=str(self.side_effects), **env)
        cmd = [sys.executable, "-m", "supaworker", "worker", "--import", "tests.support.handlers.basic", *args]
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        self.procs.append(proc)
        return proc

    def log_text(self, index: int) -> str:
        return (self.logs / f"worker-{index}.log").read_text()

    def executions(self) -> Counter[int]:
        if not self.side_effects.exists():
            return Counter()
        return Counter(int(line.split()[0]) for line in self.side_effects.read_text().splitlines())

    def execution_lines(self) -> list[tuple[int, int, str]]:
        lines = self.side_effects.read_text().splitlines() if self.side_effects.exists() else []
        return [(int(a), int(b), c) for a, b, c in (line.split() for line in lines)]

    def stop_all(self, sig: int = signal.SIGTERM, timeout: float = 30) -> list[int]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(sig)
        return [proc.wait(timeout=timeout) for proc in self.procs]

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    """One PgBouncer in transaction mode for the session, in front of the test server (any database)."""
    bouncer = PgBouncer(admin_url()).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(params=["direct", "pgbouncer"])
def connection_path(request: pytest.FixtureRequest, db: str) -> str:
    """The URL workers and the enqueuing store use: the database itself, or the same database through
    PgBouncer in transaction mode (what Supabase's port 6543 is). Counting reads `db` directly."""
    if request.param == "direct":
        return db
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return bouncer.url_for(db)


@pytest.fixture
def store(connection_path: str) -> Iterator[Store]:
    profile = probe(connection_path)  # the application's own detection decides about prepared statements
    with ConnectionPool(connection_path, min_size=1, max_size=4, kwargs=profile.connect_kwargs, open=True) as pool:
        yield Store(pool, SCHEMA)


@pytest.fixture
def workers(connection_path: str, db: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(connection_path, tmp_path / "side-effects.txt", tmp_path)
    yield group
    group.kill_all()
    if connection_path != db:
        logs = "\n".join(group.log_text(i) for i in range(len(group.procs)))
        assert "prepared statement" not in logs, "a prepared-statement error came through PgBouncer"
        started = [group.log_text(i) for i in range(len(group.procs)) if "worker started" in group.log_text(i)]
        assert all("listen=False" in log or '"listen": false' in log for log in started), (
            "a worker behind PgBouncer in transaction mode did not fall back to polling"
        )


def wait_for(predicate: Callable[[], bool], timeout: float = 120, what: str = "condition") -> None:
    """Polls until true; the bound only keeps a broken run from hanging (it is not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def count_by_status(db: str) -> dict[str, int]:
    with psycopg.connect(db) as c:
        return dict(c.execute("SELECT status::text, count(*) FROM supaworker.jobs GROUP BY 1").fetchall())


def unfinished(db: str) -> int:
    counts = count_by_status(db)
    return sum(counts.get(s, 0) for s in ("pending", "processing", "waiting"))


os.environ.setdefault("PYTHONHASHSEED", "0")
