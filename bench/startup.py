"""Worker start-up: from launching `supaworker worker` to its first job's handler, before and after a change.

    .venv/bin/python bench/startup.py [--runs 9] [--before REV] [--after REV] [--processes N] [--out startup]

Each run clones a database that holds one pending job (made once per code version: migrated and enqueued by
that version's own code, `SELECT supaworker.create_job(...)`), launches `python -m supaworker worker
--import startup` on it from a fresh interpreter and takes the time from just before the launch to the first
statement of the job's handler (both `time.time()` on this host), then stops the worker. One untimed launch
per version first (it writes the bytecode caches). With `--processes N` (N > 1) the worker runs N supervised
processes, JOBS_PER_PROCESS jobs per process are queued (each holds its slot 50 ms: one process cannot claim
them all), and the time taken is to the first job of the last process to start one. Two configurations:

- `defaults`: every setting at its default (the health endpoint served, maintenance on);
- `no health`: ENABLE_HEALTH_CHECK=false, as the peer benchmark (`bench/run.py`) runs the worker.

`--before REV` also measures the code of REV from a temporary `git worktree` (removed at the end), the runs
interleaved with this checkout's (alternating which goes first), so both see the same load on a shared
machine; `--after REV` measures REV (from a worktree too) instead of this checkout. Prints each run and the
medians, and writes them to bench/results/<out>.md.

This module is also the worker's `--import`: its top level imports only what a handler module needs.
"""

from __future__ import annotations

import asyncio
import os
import time

import supaworker

PROBE_FILE = "STARTUP_PROBE_FILE"
JOBS_PER_PROCESS = 50


@supaworker.handler("startup_probe")
async def startup_probe(job: supaworker.Job) -> None:
    started = time.time()
    fd = os.open(os.environ[PROBE_FILE], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{started:.6f} {os.getpid()}\n".encode())
    os.close(fd)
    if (job.payload or {}).get("hold"):
        await asyncio.sleep(float(job.payload["hold"]))


def main() -> None:
    import argparse
    import shutil
    import statistics
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import psycopg

    here = Path(__file__).resolve().parent
    repo = here.parent
    configs = {"defaults": {}, "no health": {"ENABLE_HEALTH_CHECK": "false"}}

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9, help="launches per code version and configuration")
    ap.add_argument("--before", metavar="REV", help="also measure this commit, interleaved")
    ap.add_argument("--after", metavar="REV", help="measure this commit instead of this checkout")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    ap.add_argument("--processes", type=int, default=1, help="worker processes (`worker --processes N`)")
    ap.add_argument("--out", default="startup", help="bench/results/<out>.md")
    a = ap.parse_args()

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    def admin(statement: str) -> None:
        with psycopg.connect(a.pg + "postgres", autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))  # also the workers' cwd: no .env file there
    sides: dict[str, Path] = {}  # what is measured -> its source directory
    labels: dict[str, str] = {}
    worktrees: list[Path] = []
    for side, rev in (("before", a.before), ("after", a.after)):
        if rev:
            worktrees.append(work / side)
            git("worktree", "add", "--detach", str(worktrees[-1]), rev)
            sides[side], labels[side] = worktrees[-1] / "src", git("rev-parse", "--short", rev)
    if not a.after:
        sides["after"] = repo / "src"
        labels["after"] = (
            f"{git('rev-parse', '--short', 'HEAD')}{' + uncommitted' if git('status', '--porcelain') else ''}"
        )

    def side_env(side: str, db: str, **extra: str) -> dict[str, str]:
        # Without PYTHONDONTWRITEBYTECODE: the untimed first launch writes the bytecode caches, which an
        # installed package has from pip.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SUPAWORKER_", "WORKER_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(
            DATABASE_URL=a.pg + db,
            PYTHONPATH=os.pathsep.join([str(sides[side]), str(here)]),
            LOG_LEVEL="warning",
            HEALTH_CHECK_PORT="0",  # any free port: a run never collides with a server already on 3001
        )
        env.update(extra)
        return env

    def template(side: str) -> str:
        name = f"bench_startup_{list(sides).index(side)}"
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin(f"CREATE DATABASE {name}")
        env = side_env(side, name)
        subprocess.run(
            [sys.executable, "-m", "supaworker", "migrate"], env=env, cwd=work, check=True, capture_output=True
        )
        with psycopg.connect(a.pg + name, autocommit=True) as conn:
            if a.processes == 1:
                conn.execute("SELECT supaworker.create_job('startup_probe', '{}')")
            else:
                for _ in range(JOBS_PER_PROCESS * a.processes):
                    conn.execute("SELECT supaworker.create_job('startup_probe', '{\"hold\": 0.05}')")
        return name

    def launch(side: str, source: str, config: dict[str, str]) -> float:
        """Seconds from launching a worker on a clone of `source` to its handler's first statement (with several
        processes: the first statement of the last process to run a job)."""
        db = "bench_startup_run"
        admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin(f"CREATE DATABASE {db} TEMPLATE {source}")
        probe = work / "probe.txt"
        probe.unlink(missing_ok=True)
        env = side_env(side, db, **{PROBE_FILE: str(probe)}, **config)
        cmd = [sys.executable, "-m", "supaworker", "worker", "--import", "startup", "--processes", str(a.processes)]

        def firsts() -> dict[str, float]:
            """Each process's first job start."""
            seen: dict[str, float] = {}
            for line in probe.read_text().splitlines() if probe.exists() else []:
                parts = line.split()
                if len(parts) == 2:
                    seen.setdefault(parts[1], float(parts[0]))
            return seen

        launched = time.time()
        proc = subprocess.Popen(cmd, env=env, cwd=work)
        try:
            while len(firsts()) < a.processes:
                if proc.poll() is not None:
                    sys.exit(f"{side}: the worker exited ({proc.returncode}) before running the job")
                if time.time() - launched > 30:
                    sys.exit(f"{side}: no job started within 30 s")
                time.sleep(0.002)
        finally:
            proc.terminate()
            proc.wait()
        return max(firsts().values()) - launched

    with open("/proc/loadavg") as f:
        load_before = f.read().split()[0]
    times: dict[tuple[str, str], list[float]] = {(s, c): [] for s in sides for c in configs}
    try:
        templates = {side: template(side) for side in sides}
        for side in sides:  # untimed: a fresh worktree's first launch also compiles its bytecode
            launch(side, templates[side], {})
        for run in range(a.runs):
            order = list(sides) if run % 2 == 0 else list(reversed(sides))
            for side in order:
                for config, extra in configs.items():
                    seconds = launch(side, templates[side], extra)
                    times[side, config].append(seconds)
                    print(f"run {run + 1}: {side} ({labels[side]}), {config}: {seconds:.3f} s", flush=True)
    finally:
        for name in ("bench_startup_run", *(f"bench_startup_{i}" for i in range(len(sides)))):
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        for path in worktrees:
            git("worktree", "remove", "--force", str(path))
        shutil.rmtree(work, ignore_errors=True)
    with open("/proc/loadavg") as f:
        load_after = f.read().split()[0]

    rows = []
    for (side, config), values in times.items():
        runs = ", ".join(f"{v:.3f}" for v in values)
        rows.append(f"| {side} ({labels[side]}) | {config} | **{statistics.median(values):.3f}** | {runs} |")
    if "before" in sides:
        medians = {key: statistics.median(values) for key, values in times.items()}
        changes = ", ".join(
            f"{config} {1e3 * (medians['after', config] - medians['before', config]):+.0f} ms"
            f" ({medians['after', config] / medians['before', config]:.2f}x)"
            for config in configs
        )
        rows.append(f"\nafter - before, medians: {changes}")
    command = f"bench/startup.py --runs {a.runs}{f' --processes {a.processes}' if a.processes > 1 else ''}" + "".join(
        f" --{side} {rev}" for side, rev in (("before", a.before), ("after", a.after)) if rev
    )
    summary = (
        f"# Worker start-up: launch to first job\n\n`.venv/bin/python {command}`: seconds from launching\n"
        f"`python -m supaworker worker --import startup --processes {a.processes}` to its handler's first statement"
        + (f" (the last process to start one), {JOBS_PER_PROCESS} jobs a process" if a.processes > 1 else ", one job")
        + f" queued on a\nfresh database; {os.cpu_count()} cores, load average {load_before} before and"
        f" {load_after} after; runs interleaved.\n\n"
        "| code | settings | median s | runs |\n|---|---|---:|---|\n" + "\n".join(rows) + "\n"
    )
    (here / "results" / f"{a.out}.md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
