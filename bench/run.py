"""Side-by-side benchmark driver: supaworker and its peers, each on its own fresh database.

    python bench/run.py --short                          # quick check, ~2 minutes, 1 repetition
    python bench/run.py                                  # full: 3 repetitions, backlog scaling, 10 min soak
    python bench/run.py --systems supaworker,pgqueuer --scenarios drain_p1,latency

Run it with a Python 3.11 that can import supaworker's dependencies (e.g. the project venv): the supaworker
runner uses this interpreter, with PYTHONPATH=<repo>/src. Peers run in bench/.venv-peers, bench/.venv-oban and
bench/node_modules (bench/setup.sh). Each runner prints one JSON object; this script repeats, aggregates and
writes bench/results/<name>.json, then bench/render.py (in .venv-peers, for matplotlib) writes .md and .png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from sysinfo import environment

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / "peers"
PEERS_PY = BENCH / ".venv-peers/bin/python"
OBAN_PY = BENCH / ".venv-oban/bin/python"

# name -> (command prefix, modes, kind); the supaworker interpreter is filled in from sys.executable.
SYSTEMS: dict[str, tuple[list[str], tuple[str, ...], str]] = {
    "supaworker": ([sys.executable, str(PEERS / "supaworker_runner.py")], ("default", "equal", "fast"), "pg"),
    # The same with a plain `def` handler (run in the worker's threads) instead of `async def`.
    "supaworker-def": (
        [sys.executable, str(PEERS / "supaworker_runner.py"), "--handler", "def"],
        ("default", "equal", "fast"),
        "pg",
    ),
    "pgqueuer": ([str(PEERS_PY), str(PEERS / "pgqueuer_runner.py")], ("default",), "pg"),
    "procrastinate": ([str(PEERS_PY), str(PEERS / "procrastinate_runner.py")], ("default",), "pg"),
    "oban": ([str(OBAN_PY), str(PEERS / "oban_runner.py")], ("default",), "pg"),
    "graphile-worker": (["node", str(PEERS / "graphile_runner.mjs")], ("default", "equal", "fast"), "pg"),
    "bullmq": (["node", str(PEERS / "bullmq_runner.mjs")], ("default",), "redis"),
}

# scenario key -> (runner scenario, extra args, size parameter in the profile)
SCENARIOS: dict[str, tuple[str, list[str], str]] = {
    "enqueue_single": ("enqueue_single", [], "single"),
    "enqueue_bulk": ("enqueue_bulk", [], "bulk"),
    "drain_p1": ("drain", ["--processes", "1", "--concurrency", "10"], "drain"),
    "drain_p2": ("drain", ["--processes", "2", "--concurrency", "10"], "drain"),
    "latency": ("latency", ["--processes", "1", "--concurrency", "10", "--rate", "50"], "latency"),
    "backlog_small": ("backlog", ["--processes", "1", "--concurrency", "10"], "backlog_small"),
    "backlog_large": ("backlog", ["--processes", "1", "--concurrency", "10"], "backlog_large"),
}
PROFILES: dict[str, dict[str, Any]] = {
    "short": {
        "single": 300,
        "bulk": 2000,
        "drain": 1000,
        "latency": 100,
        "repeat": 1,
        "soak_s": 0,
        "scenarios": ["enqueue_single", "enqueue_bulk", "drain_p1", "drain_p2", "latency"],
    },
    "full": {
        "single": 2000,
        "bulk": 20_000,
        "drain": 20_000,
        "latency": 300,
        "repeat": 3,
        "soak_s": 600,
        "backlog_small": 10_000,
        "backlog_large": 1_000_000,
        "sample": 10_000,
        "scenarios": list(SCENARIOS),
    },
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def admin(sql: str, base: str) -> None:
    with psycopg.connect(base + "postgres", autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def run_runner(cmd: list[str], args: list[str], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(PEERS)])}
    # As installed packages have it: supaworker, run from the checkout, writes its bytecode caches at its first
    # launch instead of compiling every module at each one (the Python peers' are written by pip).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        p = subprocess.run(cmd + args, capture_output=True, text=True, timeout=timeout, env=env, cwd=PEERS)
    except subprocess.TimeoutExpired:
        return {"error": f"runner timed out after {timeout:.0f}s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": f"runner exit {p.returncode}", "stderr": p.stderr[-1500:]}
    return json.loads(lines[-1])


class Config:
    def __init__(self, system: str, mode: str, base: str) -> None:
        self.system, self.mode = system, mode
        self.cmd, _, self.kind = SYSTEMS[system]
        self.label = system if mode == "default" else f"{system} ({mode})"
        self.db = "bench_" + re.sub(r"\W", "_", system) + ("" if mode == "default" else f"_{mode}")
        self.dsn = base + self.db
        self.base = base

    def args(self, scenario: str, extra: list[str]) -> list[str]:
        return ["--dsn", self.dsn, "--scenario", scenario, "--mode", self.mode, *extra]

    def prepare_template(self) -> dict[str, Any]:
        if self.kind != "pg":
            return run_runner(self.cmd, self.args("setup", []), 120)
        admin(f"DROP DATABASE IF EXISTS {self.db}_tpl WITH (FORCE)", self.base)
        admin(f"CREATE DATABASE {self.db}_tpl", self.base)
        return run_runner(self.cmd, ["--dsn", self.dsn + "_tpl", "--scenario", "setup"], 300)

    def fresh(self) -> None:
        """A fresh database for one measurement: a copy of the migrated template."""
        if self.kind == "pg":
            admin(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)", self.base)
            admin(f"CREATE DATABASE {self.db} TEMPLATE {self.db}_tpl", self.base)

    def drop(self) -> None:
        if self.kind == "pg":
            for db in (self.db, self.db + "_tpl"):
                admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", self.base)
        else:
            run_runner(self.cmd, self.args("setup", []), 120)  # BullMQ: clear its own keys


def sample_sizes(cfg: Config) -> dict[str, Any]:
    """Table/index sizes and dead tuples of every table in the system's database (Redis: memory, keys)."""
    if cfg.kind == "redis":
        mem = subprocess.run(["redis-cli", "info", "memory"], capture_output=True, text=True).stdout
        keys = subprocess.run(
            ["redis-cli", "--scan", "--pattern", "supaworker-bench*"], capture_output=True, text=True
        ).stdout.count("\n")
        used = re.search(r"used_memory:(\d+)", mem)
        return {"redis_used_memory": int(used.group(1)) if used else None, "keys": keys}
    sql = """SELECT schemaname || '.' || relname, n_live_tup, n_dead_tup, pg_table_size(relid),
                    pg_indexes_size(relid) FROM pg_stat_user_tables"""
    with psycopg.connect(cfg.dsn, autocommit=True) as conn:
        rows = conn.execute(sql).fetchall()
    tables = {r[0]: {"live": r[1], "dead": r[2], "table_bytes": r[3], "index_bytes": r[4]} for r in rows}
    return {
        "dead_tuples": sum(t["dead"] for t in tables.values()),
        "table_bytes": sum(t["table_bytes"] for t in tables.values()),
        "index_bytes": sum(t["index_bytes"] for t in tables.values()),
        "tables": tables,
    }


def soak(cfg: Config, seconds: int, rate: float) -> dict[str, Any]:
    cfg.fresh()
    samples: list[dict[str, Any]] = []
    stop = threading.Event()

    def sampler() -> None:
        t0 = time.time()
        while not stop.wait(60 - (time.time() - t0) % 60):
            samples.append({"t_s": round(time.time() - t0), **sample_sizes(cfg)})

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    extra = ["--processes", "1", "--concurrency", "10", "--rate", str(rate), "--duration", str(seconds)]
    result = run_runner(cfg.cmd, cfg.args("soak", extra), seconds + 600)
    stop.set()
    thread.join()
    return {**result, "samples": samples, "final": sample_sizes(cfg)}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in runs:
        res = r["result"]
        for k, v in res.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v:
                out.setdefault(r["scenario"], {}).setdefault(r["label"], {}).setdefault(k, []).append(v)
    return {
        sc: {
            label: {
                k: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
                for k, v in metrics.items()
            }
            for label, metrics in per.items()
        }
        for sc, per in out.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="quick check: small sizes, 1 repetition, no backlog/soak")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ",".join(SYSTEMS))
    ap.add_argument("--modes", default="default,equal,fast", help="which modes to run (default,equal,fast)")
    ap.add_argument("--scenarios", help="comma-separated subset of: " + ",".join([*SCENARIOS, "soak"]))
    ap.add_argument("--repeat", type=int, help="repetitions per figure (short: 1, full: 3)")
    ap.add_argument("--soak-minutes", type=float, help="full mode soak length (default 10; 0 skips)")
    ap.add_argument("--soak-rate", type=float, default=100.0, help="soak enqueue rate, jobs/s")
    ap.add_argument("--backlog-jobs", type=int, help="large backlog size (default 1,000,000)")
    ap.add_argument("--drain-jobs", type=int, help="jobs queued before each drain (default 20,000; short 1,000)")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/", help="server URL, without database")
    ap.add_argument("--out", help="results name (default: short or full)")
    a = ap.parse_args()
    prof = dict(PROFILES["short" if a.short else "full"])
    repeat = a.repeat or prof["repeat"]
    if a.backlog_jobs:
        prof["backlog_large"] = a.backlog_jobs
    if a.drain_jobs:
        prof["drain"] = a.drain_jobs
    soak_s = int(60 * a.soak_minutes) if a.soak_minutes is not None else prof["soak_s"]
    scenarios = a.scenarios.split(",") if a.scenarios else prof["scenarios"] + (["soak"] if soak_s else [])
    modes = a.modes.split(",")
    unknown = [x for x in a.systems.split(",") if x not in SYSTEMS] + [
        x for x in scenarios if x not in SCENARIOS and x != "soak"
    ]
    if unknown:
        ap.error(f"unknown system or scenario: {', '.join(unknown)}")
    configs = [Config(s, m, a.pg) for s in a.systems.split(",") for m in SYSTEMS[s][1] if m in modes]
    name = a.out or ("short" if a.short else "full")
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc: dict[str, Any] = {
        "name": name,
        "started": started,
        "profile": prof,
        "repeat": repeat,
        "scenarios": scenarios,
        "environment": environment(a.pg),
        "configs": [],
        "runs": [],
        "errors": [],
    }
    ready = []
    for cfg in configs:
        res = cfg.prepare_template()
        if "error" in res:
            log(f"{cfg.label}: setup failed, skipped: {res.get('stderr', res['error'])[-300:]}")
            doc["errors"].append({"label": cfg.label, "scenario": "setup", **res})
            continue
        doc["configs"].append({"label": cfg.label, "system": cfg.system, "mode": cfg.mode, "db": cfg.db})
        ready.append(cfg)
    for rep in range(repeat):  # repetitions outermost and systems innermost: drift hits everyone alike
        for key in (s for s in scenarios if s != "soak"):
            runner_scenario, extra, size = SCENARIOS[key]
            sizes = ["--jobs", str(prof[size])] + (
                ["--sample", str(prof["sample"])] if key.startswith("backlog") else []
            )
            for cfg in ready:
                cfg.fresh()
                res = run_runner(cfg.cmd, cfg.args(runner_scenario, extra + sizes), 3600)
                brief = {
                    k: round(v, 2)
                    for k, v in res.items()
                    if k in ("jobs_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_job")
                }
                log(f"rep {rep + 1}/{repeat} {key:15} {cfg.label:26} {res.get('error') or brief}")
                load1 = float(Path("/proc/loadavg").read_text().split()[0])
                doc["runs"].append({"label": cfg.label, "scenario": key, "rep": rep, "load1": load1, "result": res})
                if "error" in res:
                    doc["errors"].append({"label": cfg.label, "scenario": key, "rep": rep, **res})
    if "soak" in scenarios:
        doc["soak"], doc["soak_params"] = {}, {"seconds": soak_s, "rate": a.soak_rate}
        for cfg in ready:
            log(f"soak {cfg.label}: {soak_s}s at {a.soak_rate}/s")
            doc["soak"][cfg.label] = soak(cfg, soak_s, a.soak_rate)
    for cfg in ready:
        cfg.drop()
    doc["summary"] = aggregate(doc["runs"])
    doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = BENCH / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {out}")
    render = [str(PEERS_PY) if PEERS_PY.exists() else sys.executable, str(BENCH / "render.py"), str(out)]
    subprocess.run(render, check=False)


if __name__ == "__main__":
    main()
