"""Real `supaworker worker` subprocesses for the pipeline tests, and waiting for the database to agree."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO, subprocess_env
from ..support.waiting import wait_until

# Fast leases, rescue and retries, so a killed worker's job comes back within about a second.
FAST = {
    "SUPAWORKER_LEASE_SECONDS": "1",
    "SUPAWORKER_RESCUE_INTERVAL_SECONDS": "0.2",
    "SUPAWORKER_RETRY_BASE_SECONDS": "0.05",
    "SUPAWORKER_RETRY_CAP_SECONDS": "0.2",
    "WORKER_POLL_INTERVAL_MS": "100",
    "SUPAWORKER_SHUTDOWN_GRACE_SECONDS": "5",
}


_started: list[WorkerProcess] = []


def reap_workers() -> None:
    """Kills any worker a test left running (a failed assertion must not leave a process behind)."""
    while _started:
        proc = _started.pop().proc
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class WorkerProcess:
    def __init__(self, db: str, log_path: Path, *args: str, **env: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()/kill()
        command = [sys.executable, "-m", "supaworker", "worker", *args]
        self.proc = subprocess.Popen(command, env=subprocess_env(db, **{**FAST, **env}), cwd=REPO,
                                     stdout=self._log, stderr=subprocess.STDOUT)  # fmt: skip
        _started.append(self)

    def started(self) -> bool:
        return "worker started" in self.log()

    def stop(self, timeout: float = 20) -> int:
        # A signal before the worker installed its handlers would just kill it: let it start first.
        wait_until(lambda: self.started() or self.proc.poll() is not None, timeout=timeout, what="worker start")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
