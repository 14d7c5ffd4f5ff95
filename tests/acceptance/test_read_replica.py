"""`supaworker up` with SUPAWORKER_READ_URL on a real streaming replica: what is only shown is read there, every
write and the reads of a client's own writes go to the primary, and a new job shows once it is replayed.

Pausing the replica's replay is what makes it provable without timing: while replay is paused, a job the
primary committed cannot be on the replica, so a read that shows it came from the primary and a read that
misses it came from the replica.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from supaworker.migrate import migrate
from tests.conftest import REPO, SCHEMA, subprocess_env
from tests.servers import PrivateCluster
from tests.support.api import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

KEY = "replica-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBE_TYPE = "replica_probe"  # no worker handles it, so its job stays pending where the test put it
STOP_SECONDS = 60


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[PrivateCluster, PrivateCluster]]:
    primary = PrivateCluster().init()
    try:
        replica = primary.replica()
    except BaseException:
        primary.destroy()
        raise
    yield primary, replica
    replica.destroy()
    primary.destroy()


def sessions(url: str) -> set[str]:
    """The application names connected to the database of `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT application_name FROM pg_stat_activity WHERE datname = current_database()")
        return {name for (name,) in rows}


def pause_replay(replica_url: str) -> None:
    with psycopg.connect(replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone() == ("paused",),
            "the replica to pause its replay",
        )


def resume_replay(replica_url: str) -> None:
    with psycopg.connect(replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_resume()")


def listed_ids(api: httpx.Client) -> set[int]:
    answer = api.get("/api/jobs", params={"action": "list", "type": PROBE_TYPE}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return {job["id"] for job in answer.json()["jobs"]}


def paused_types(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {c["name"] for c in answer.json()["controls"] if c["scope"] == "type" and c["paused"]}


def test_up_reads_from_the_replica_and_writes_to_the_primary(
    clusters: tuple[PrivateCluster, PrivateCluster], tmp_path: Path
) -> None:
    primary, replica = clusters
    primary_url = primary.create_database("app")
    replica_url = replica.url_for("app")
    migrate(primary_url, SCHEMA)
    wait_until(lambda: _replayed_schema(replica_url), "the replica to replay the migrations")

    port, health_port = free_port(), free_port()
    env = subprocess_env(primary_url, SUPAWORKER_READ_URL=replica_url, SUPAWORKER_API_KEY=KEY)
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "supaworker", "up", "--port", str(port), "--health-port", str(health_port)],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output() -> str:
        return log_path.read_text(errors="replace")

    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        wait_until(lambda: "supaworker is up" in output() or up.poll() is not None, "up to start")
        assert up.poll() is None, output()
        assert "(SUPAWORKER_READ_URL)" in output()

        # The read pool is connected to the replica only; the primary has the API's own pool and the worker.
        assert "supaworker:api-read" in sessions(replica_url)
        primary_sessions = wait_until(
            lambda: (
                (names := sessions(primary_url)) and any(n.startswith("supaworker:worker-") for n in names) and names
            ),
            "the worker to connect to the primary",
        )
        assert "supaworker:api" in primary_sessions and "supaworker:api-read" not in primary_sessions
        worker_ids = {n.removeprefix("supaworker:") for n in primary_sessions if n.startswith("supaworker:worker-")}

        pause_replay(replica_url)
        created = api.post("/api/jobs", json={"type": PROBE_TYPE}, headers=AUTH)
        assert created.status_code == 201, created.text  # the replica would have refused the INSERT
        job_id = created.json()["job"]["id"]
        with psycopg.connect(primary_url) as conn:
            assert conn.execute("SELECT status::text FROM supaworker.jobs WHERE id = %s", (job_id,)).fetchone() == (
                "pending",
            )
        paused = api.post("/api/controls/pause", json={"type": PROBE_TYPE}, headers=AUTH)
        assert PROBE_TYPE in paused_types(paused)  # the answer to a write reads the primary

        # Replay is paused, so the replica cannot have these rows yet: what shows them read the primary,
        # what misses them read the replica.
        own = api.get(f"/api/jobs/{job_id}", headers=AUTH)
        assert own.status_code == 200 and own.json()["job"]["status"] == "pending", own.text
        assert job_id not in listed_ids(api)
        assert f"/test-worker/jobs/{job_id}" not in api.get("/test-worker/jobs", headers=AUTH).text
        assert PROBE_TYPE not in paused_types(api.get("/api/controls", headers=AUTH))
        # The workers are known by their sessions on the primary, whatever the replica shows.
        workers_page = api.get("/test-worker/workers", headers=AUTH).text
        assert all(worker_id in workers_page for worker_id in worker_ids), workers_page

        resume_replay(replica_url)
        wait_until(
            lambda: f"/test-worker/jobs/{job_id}" in api.get("/test-worker/jobs", headers=AUTH).text,
            "the dashboard's job list to show the job once the replica replayed it",
        )
        assert job_id in listed_ids(api)
        assert PROBE_TYPE in paused_types(api.get("/api/controls", headers=AUTH))
        wait_until(
            lambda: f'supaworker_jobs{{status="pending",type="{PROBE_TYPE}"}} 1.0' in api.get("/metrics").text,
            "the change feed (and /metrics) to count the job from the replica",
        )
        assert "supaworker_workers 1.0" in api.get("/metrics").text  # live workers from the primary's sessions
    finally:
        resume_replay(replica_url)
        api.close()
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
    assert up.returncode == 0, output()


def _replayed_schema(replica_url: str) -> bool:
    with psycopg.connect(replica_url, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass('supaworker.jobs') IS NOT NULL").fetchone() == (True,)
