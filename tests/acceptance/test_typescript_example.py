"""examples/typescript/enqueue-brief.mjs end to end: Node enqueues a brief through the TypeScript client, a real
`supaworker worker` runs its pipeline with the built-in job types, and the script follows it to the end."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.test_typescript_client import database_url, install_node_modules, node_tools
from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.acceptance

EXAMPLE = REPO / "examples" / "typescript"
EXAMPLE_TIMEOUT_SECONDS = 120


def test_the_node_example_enqueues_a_brief_and_waits_until_it_completed(db: str, tmp_path: Path) -> None:
    node, npm = node_tools()
    install_node_modules(npm)
    install_node_modules(npm, EXAMPLE)
    env = subprocess_env(db, SUPAWORKER_ARTIFACTS_DIR=str(tmp_path), WORKER_POLL_INTERVAL_MS="100")
    worker = subprocess.Popen(
        [sys.executable, "-m", "supaworker", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result = subprocess.run(
            [node, "enqueue-brief.mjs", "Write a short text about Lisbon trams", "text"],
            cwd=EXAMPLE,
            env={"PATH": env["PATH"], "DATABASE_URL": database_url(db), "WAIT_TIMEOUT_MS": "90000"},
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT_SECONDS,
        )
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{worker.stderr.read() if worker.stderr else ''}"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("brief ") and "analysis -> text_analysis -> render" in lines[0]
    assert any(line.startswith("completed  3/3") for line in lines), result.stdout
    assert lines[-1].startswith("result: ")


def test_the_node_example_says_what_is_missing_without_settings() -> None:
    node, npm = node_tools()
    install_node_modules(npm)
    install_node_modules(npm, EXAMPLE)
    result = subprocess.run(
        [node, "enqueue-brief.mjs"], cwd=EXAMPLE, env={}, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY",
    )
