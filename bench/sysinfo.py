"""What the benchmark ran on: hardware from /proc, PostgreSQL settings, and the version of every system."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

BENCH = Path(__file__).resolve().parent
PEERS_PY = BENCH / ".venv-peers/bin/python"
OBAN_PY = BENCH / ".venv-oban/bin/python"
PG_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "shared_buffers",
    "wal_level",
    "max_wal_size",
    "checkpoint_timeout",
    "autovacuum",
    "max_connections",
    "work_mem",
)


def environment(base: str) -> dict[str, Any]:
    """Hardware (from /proc), PostgreSQL settings (SHOW) and versions, for the report's header."""
    cpu = Path("/proc/cpuinfo").read_text()
    mem = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    models = re.findall(r"model name\s*:\s*(.*)", cpu)
    with psycopg.connect(base + "postgres", autocommit=True) as conn:
        pg = {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in PG_SETTINGS}  # type: ignore[index]
    versions = {"supaworker": _git_rev()}
    for mod in ("pgqueuer", "procrastinate", "psycopg"):
        versions[mod] = _cmd([str(PEERS_PY), "-c", f"import importlib.metadata as m; print(m.version('{mod}'))"])
    versions["oban"] = _cmd([str(OBAN_PY), "-c", "import importlib.metadata as m; print(m.version('oban'))"])
    for pkg in ("graphile-worker", "bullmq"):
        f = BENCH / "node_modules" / pkg / "package.json"
        versions[pkg] = json.loads(f.read_text())["version"] if f.exists() else None
    redis = re.search(r"v=(\S+)", _cmd(["redis-server", "--version"]) or "")
    versions |= {"node": _cmd(["node", "--version"]), "redis": redis.group(1) if redis else None}
    return {
        "cpu_model": models[0] if models else None,
        "cpus": len(models),
        "mem_gib": int(mem.group(1)) / 2**20 if mem else None,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "postgres": pg,
        "versions": versions,
        "python": sys.version.split()[0],
    }


def _cmd(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _git_rev() -> str | None:
    """Commit of the supaworker sources measured, with "-dirty" if src/ has uncommitted changes."""
    repo = str(BENCH.parent)
    rev = _cmd(["git", "-C", repo, "log", "-1", "--format=%h", "--", "src"])
    dirty = _cmd(["git", "-C", repo, "status", "--porcelain", "--", "src"])
    return f"{rev}-dirty" if rev and dirty else rev
