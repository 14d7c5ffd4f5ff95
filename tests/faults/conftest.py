"""A private PostgreSQL cluster for the fault tests (they restart it and exhaust its connections, which must
never happen to the server other test runs share), and a fresh database in it per test."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator

import pytest

from supaworker.migrate import migrate
from tests.conftest import SCHEMA
from tests.faults.harness import Fleet, prepare_effects
from tests.servers import PrivateCluster

# Room for the workers and their handlers; superuser_reserved_connections (3) stay free for the test itself.
MAX_CONNECTIONS = 100
FAST_ENV = {
    "SUPAWORKER_RESCUE_INTERVAL_SECONDS": "0.5",
    "SUPAWORKER_RETRY_BASE_SECONDS": "0.05",
    "SUPAWORKER_RETRY_CAP_SECONDS": "0.5",
    "WORKER_POLL_INTERVAL_MS": "100",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    pg = PrivateCluster(max_connections=MAX_CONNECTIONS).init()
    yield pg
    pg.destroy()


@pytest.fixture
def fault_db(cluster: PrivateCluster) -> str:
    url = cluster.create_database(f"fault_{uuid.uuid4().hex[:8]}")
    migrate(url, SCHEMA)
    prepare_effects(url)
    return url


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    f = Fleet()
    yield f
    if request.node.stash.get(_FAILED, False):
        # An assertion's message cuts long logs short: the unusual lines of every worker, whole, in the
        # report's captured output, before the logs are removed.
        print(f.logs())
    f.stop_all()
