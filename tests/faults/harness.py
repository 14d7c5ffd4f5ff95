"""Running real worker processes and counting what happened to every job.

Waits are bounded loops that fail with a message naming what never happened; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import REPO, subprocess_env
from tests.support.handlers.faults import EFFECTS_TABLE, STARTS_TABLE
from tests.support.waiting import wait_until


def worker_env(db_url: str | None, effects_url: str, **extra: str) -> dict[str, str]:
    env = subprocess_env(db_url or "", SW_EFFECTS_URL=effects_url, LOG_FORMAT="json", **extra)
    if db_url is None:
        env.pop("DATABASE_URL", None)
    return env


@dataclass
class WorkerProcess:
    """One `supaworker worker` subprocess whose JSON log goes to a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    name: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Fleet:
    """The worker processes of one test; stopped (and their logs removed) at teardown."""

    workers: list[WorkerProcess] = field(default_factory=list)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sw-fleet-")))

    def start(self, env: dict[str, str], *args: str, name: str | None = None) -> WorkerProcess:
        name = name or f"w{len(self.workers)}"
        log_path = self.tmp / f"{name}.log"
        log = log_path.open("wb")
        cmd = [sys.executable, "-m", "supaworker", "worker", "--import", "tests.support.handlers.faults", *args]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        worker = WorkerProcess(proc, log_path, name)
        self.workers.append(worker)
        return worker

    def events(self) -> list[dict[str, Any]]:
        return [e | {"_worker": w.name} for w in self.workers for e in w.events()]

    def wait_started(self) -> None:
        """Until every worker has said it started (the faults are for running workers, not for startup)."""

        def started() -> bool:
            for w in self.workers:
                if w.proc.poll() is not None:
                    raise AssertionError(f"worker {w.name} exited with {w.proc.returncode}:\n{w.log_text()}")
            return all('"msg": "worker started"' in w.log_text() for w in self.workers)

        wait_until(started, f"every worker to start\n{self.logs()}")

    def full_logs(self) -> str:
        return "\n".join(w.log_text() for w in self.workers)

    def logs(self) -> str:
        # The tail of each log, plus every line that is not a routine job completion.
        parts = []
        for w in self.workers:
            lines = w.log_text().splitlines()
            unusual = [line for line in lines if '"msg": "job completed"' not in line and '"job started"' not in line]
            parts.append(f"--- {w.name} (pid {w.pid}) ---\n" + "\n".join(unusual[-80:]))
        return "\n".join(parts)

    def explain(self, what: str) -> Callable[[], str]:
        """A `wait_until` message naming `what`, with the workers' logs as they are when the wait gives up."""
        return lambda: f"{what}\n{self.logs()}"

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()
        for w in self.workers:
            w.log_path.unlink(missing_ok=True)


def prepare_effects(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(EFFECTS_TABLE)
        conn.execute(STARTS_TABLE)


def enqueue_effects(
    url: str, count: int, max_attempts: int = 5, job_type: str = "effect", tenants: int = 1, **payload: Any
) -> list[int]:
    """`count` jobs of `job_type`; over `tenants` > 1 they are dealt round that many fairness keys."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO supaworker.jobs (type, payload, max_attempts, fairness_key)"
            " SELECT %s, %s::jsonb, %s, CASE WHEN %s > 1 THEN 'tenant-' || g %% %s ELSE '' END"
            " FROM generate_series(1, %s) g RETURNING id",
            (job_type, json.dumps(payload), max_attempts, tenants, tenants, count),
        ).fetchall()
    return [r[0] for r in rows]


def status_counts(url: str) -> Counter[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return Counter(dict(conn.execute("SELECT status::text, count(*) FROM supaworker.jobs GROUP BY 1").fetchall()))


@dataclass
class Tally:
    """What happened to the jobs of one run."""

    jobs: int
    completed: int
    lost: int  # not completed when the run was over
    executions: int  # side effects recorded
    jobs_run_twice: int  # jobs whose side effect happened more than once (at-least-once re-runs)
    accepted_completions: int  # "job completed" log lines across all workers
    completed_twice: int  # jobs two workers both had their completion accepted for: must be 0
    rejected_completions: int

    def line(self) -> str:
        return (
            f"jobs={self.jobs} completed={self.completed} lost={self.lost} executions={self.executions} "
            f"re-executed={self.jobs_run_twice} completions_accepted={self.accepted_completions} "
            f"completed_twice={self.completed_twice} completions_rejected={self.rejected_completions}"
        )


def tally(url: str, fleet: Fleet) -> Tally:
    with psycopg.connect(url, autocommit=True) as conn:
        jobs, completed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM supaworker.jobs"
        ).fetchone()  # type: ignore[misc]
        executions, twice = conn.execute(
            "SELECT coalesce(sum(n), 0), count(*) FILTER (WHERE n > 1)"
            " FROM (SELECT job_id, count(*) AS n FROM public.test_effects GROUP BY job_id) e"
        ).fetchone()  # type: ignore[misc]
    events = fleet.events()
    accepted = Counter(e["job_id"] for e in events if e.get("msg") == "job completed")
    rejected = sum(1 for e in events if e.get("msg", "").startswith("job completion rejected"))
    return Tally(
        jobs=jobs,
        completed=completed,
        lost=jobs - completed,
        executions=int(executions),
        jobs_run_twice=twice,
        accepted_completions=sum(accepted.values()),
        completed_twice=sum(1 for n in accepted.values() if n > 1),
        rejected_completions=rejected,
    )


def report(name: str, **figures: Any) -> str:
    """One greppable line per fault test (`pytest -s` shows it; also appended to $SUPAWORKER_FAULT_REPORT)."""
    line = f"FAULT {name}: " + " ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    target = os.environ.get("SUPAWORKER_FAULT_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(line + "\n")
    return line
