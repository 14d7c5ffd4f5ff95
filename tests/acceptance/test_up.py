"""`supaworker up` as a user runs it: everything starts, work runs, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, subprocess_env
from tests.integration.api_support import free_port, wait_until

KEY = "up-test-key"
STOP_SECONDS = 60
HAS_BRIEFS = importlib.util.find_spec("supaworker.briefs") is not None

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


def test_up_runs_api_dashboard_workers_and_health_and_ctrl_c_stops_everything(db: str, tmp_path: Path) -> None:
    port, health_port = free_port(), free_port()
    args = ["up", "--port", str(port), "--health-port", str(health_port), "--processes", "2",
            "--import", "tests.acceptance.up_handlers"]  # fmt: skip
    if HAS_BRIEFS:
        args.append("--demo")
    log = (tmp_path / "up.log").open("wb")
    env = subprocess_env(db, SUPAWORKER_API_KEY=KEY, SUPAWORKER_API_PUBLIC_READS="true")
    proc = subprocess.Popen([sys.executable, "-m", "supaworker", *args], env=env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    spawned: set[int] = set()
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        wait_until(lambda: "supaworker is up" in (tmp_path / "up.log").read_text(), "up to print its URLs", 90)
        assert _get(f"http://127.0.0.1:{health_port}/health") == 200
        assert api.get("/api/jobs?action=stats").status_code == 200
        assert "supaworker" in api.get("/test-worker").text
        output = (tmp_path / "up.log").read_text()
        for url in (f"http://127.0.0.1:{port}/test-worker", f"http://127.0.0.1:{health_port}/health"):
            assert url in output

        job = api.post(
            "/api/jobs", json={"type": "echo", "payload": {"hi": 1}}, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert job.status_code == 201
        job_id = job.json()["job"]["id"]
        done = wait_until(lambda: (j := api.get(f"/api/jobs/{job_id}").json()["job"])["status"] == "completed" and j,
                          "the echo job to complete", 60)  # fmt: skip
        assert done["result"] == {"hi": 1}
        if HAS_BRIEFS:
            briefs = wait_until(
                lambda: (
                    (b := api.get("/api/briefs?user_id=demo").json()["briefs"])
                    and all(x["status"] == "completed" for x in b)
                    and b
                ),
                "every demo brief to complete",
                120,
            )
            assert {b["media_type"] for b in briefs} == {"video", "image", "audio", "text"}
        spawned = descendants(proc.pid)
        assert len(spawned) >= 3  # the supervisor and its two workers

        proc.send_signal(signal.SIGINT)
        assert proc.wait(STOP_SECONDS) == 0
        wait_until(lambda: not any(alive(p) for p in spawned), "every child process to exit", 10)
        assert "stopped." in (tmp_path / "up.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in spawned:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


def _get(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None
