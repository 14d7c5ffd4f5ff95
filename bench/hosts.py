"""Many worker hosts on one PostgreSQL: drain rate, server CPU per job and server connections as hosts are
added, directly and through PgBouncer, and a host cut off from the database in the middle of a drain.

    .venv/bin/python bench/hosts.py     # as root; [--hosts 1,2,4,8] [--jobs 200000] [--pool-size 8] [--out hosts]

Each host is a network namespace `swh<i>` with an address of its own, 10.213.0.<10+i>/24, on a bridge `swhbr0`
(10.213.0.1), running `supaworker worker --processes 2` with default settings and an `async def` no-op handler
(`--no-builtins --import hosts`). The database is a PostgreSQL cluster of this script's own (initdb in a temp
dir, server defaults: fsync and synchronous_commit on, shared_buffers 128MB; max_connections 300), listening
on 127.0.0.1 and 10.213.0.1; PgBouncer in transaction mode (`default_pool_size` from `--pool-size`) listens on
10.213.0.1 as well (`testbed.py` builds all of this).

For each path (direct, pgbouncer) and host count: a fresh database from a migrated template; the hosts'
workers start and wait on the empty queue; `--jobs` no-op jobs are queued in one `create_jobs` (COPY) call;
the queue drains. Figures:
- jobs/s: completed jobs / (last completed_at - first started_at), the database's clock; and over the middle
  80 % of completions (10th to 90th percentile of completed_at), without the start and the tail;
- server CPU ms/job: CPU of the whole cluster (postmaster, every backend, WAL writer, checkpointer,
  autovacuum; reaped children through the postmaster's cutime) from the first claim to the moment the queue
  was seen empty, less the measuring connection's own backend, divided by the jobs; and the same CPU over
  that window's length (server cores busy);
- worker CPU ms/job: every process in the hosts' namespaces over the same window; PgBouncer's likewise;
- machine busy: the share of both cores busy over the window (/proc/stat), workers and server together;
- jobs per claim: one claim statement stamps its jobs with one started_at, so jobs / distinct (worker_id,
  started_at) is the average batch a claim moved;
- connections: server backends per host (pg_stat_activity by client_addr), idle before the queue was
  filled and the most seen during the drain (sampled every 0.1 s), split into the workers' pools
  (application_name supaworker:worker-*), LISTEN and the rest (maintenance, lease probes, health); through
  PgBouncer also the client connections each host holds to it (SHOW CLIENTS), and the server backends in all.

Then two fault runs, one on the server's defaults and one with SERVER_LIVENESS (TCP keepalives and
tcp_user_timeout on the server): `--fault-hosts` hosts (lease 5 s) drain `--fault-jobs` jobs that each sleep
`--fault-sleep` s and then record their execution in `bench_effects` (one row per run, with the host's address
from inet_client_addr()). Once a tenth are done, host swh0's link is cut (`ip link set swh0h down`) for
`--cut-seconds`, then restored, and the queue drains. Every job is then accounted for: completed, lost,
executions, jobs run more than once (each must have its earlier attempt charged in `jobs.errors`: retried as
a started job), an attempt that ran twice (must be 0), jobs handed back uncharged; and what the cut host held,
did after its link came back, and left behind on the server (its old backends). Exits 1 if a job was lost.

Writes bench/results/<out>.json and .md. Everything it creates (namespaces, links, the cluster, PgBouncer,
the worker processes, temp dirs) is removed at the end, also on Ctrl-C or failure; leftovers of a run that was
killed with SIGKILL (names swh*) are removed at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

import supaworker
from supaworker.db import liveness_kwargs
from supaworker.migrate import migrate
from testbed import (
    SERVER_ADDR,
    TICK,
    Bouncer,
    Cluster,
    Network,
    children,
    chown_postgres,
    machine_ticks,
    run,
    ticks,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DB = "bench_hosts"
TEMPLATE = "bench_hosts_tpl"
PROCESSES_PER_HOST = 2
SAMPLE_SECONDS = 0.1
READY_TIMEOUT_SECONDS = 120.0
DRAIN_TIMEOUT_SECONDS = 600.0
STOP_TIMEOUT_SECONDS = 20.0
FAULT_LEASE_SECONDS = 5.0
# The second fault run's server settings. Keepalives find an idle backend's vanished client (no answer for
# 10 + 3 x 5 s, or an RST at the first probe once the link is back); the user timeout ends a backend whose
# sent data stays unacknowledged for 10 s (a LISTEN connection with a NOTIFY in flight, a result being sent),
# which keepalives never probe.
SERVER_LIVENESS = {
    "tcp_keepalives_idle": 10,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
FAULT_HEADER_KEYS = (
    "timeline",
    "server",
    "hosts",
    "processes",
    "jobs",
    "job_sleep_s",
    "lease_s",
    "cut",
    "cut_s",
    "verdict",
)
PG_SETTINGS = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "max_wal_size", "max_connections")

# -- the handlers the hosts run (`--import hosts`) ----------------------------------------------------------
EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS public.bench_effects (
  job_id bigint NOT NULL,
  attempt integer NOT NULL,
  host inet DEFAULT inet_client_addr(),
  at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
_effects: psycopg.AsyncConnection[Any] | None = None
_effects_lock = asyncio.Lock()


@supaworker.handler("noop")
async def noop(job: supaworker.Job) -> None:
    return None


@supaworker.handler("effect")
async def effect(job: supaworker.Job) -> None:
    """Sleeps `sleep` seconds, then records this execution; a row here is a job that really ran."""
    global _effects
    await asyncio.sleep(float((job.payload or {}).get("sleep", 0)))
    async with _effects_lock:
        if _effects is None or _effects.closed or _effects.broken:
            # One per process, with the worker's liveness settings: a cut link breaks it within about a lease.
            _effects = await psycopg.AsyncConnection.connect(
                os.environ["DATABASE_URL"], autocommit=True, **liveness_kwargs(FAULT_LEASE_SECONDS)
            )
    await _effects.execute("INSERT INTO public.bench_effects (job_id, attempt) VALUES (%s, %s)", (job.id, job.attempt))


# -- the hosts' workers -------------------------------------------------------------------------------------
@dataclass
class Fleet:
    """`supaworker worker --processes 2` in each host's namespace, each in a process group of its own."""

    net: Network
    logs: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_files: list[BinaryIO] = field(default_factory=list)

    def start(self, hosts: int, database_url: str, *args: str) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SUPAWORKER_", "WORKER_"))},
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "warning",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]),
        }
        for i in range(hosts):
            cmd = ["ip", "netns", "exec", self.net.namespace(i), sys.executable, "-m", "supaworker", "worker",
                   "--processes", str(PROCESSES_PER_HOST), "--no-builtins", "--import", "hosts", *args]  # fmt: skip
            log = open(self.logs / f"host{i}.log", "ab")  # noqa: SIM115 - closed by stop()
            self.log_files.append(log)
            self.procs[i] = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True, cwd=HERE)

    def check_alive(self) -> None:
        for i, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"host {i}'s workers exited with {proc.returncode}:\n{self.log_tail(i)}")

    def log_tail(self, i: int) -> str:
        return (self.logs / f"host{i}.log").read_text(errors="replace")[-3000:]

    def worker_pids(self, i: int) -> list[int]:
        """The worker processes of host i (the supervisor's children)."""
        proc = self.procs.get(i)
        return children(proc.pid) if proc is not None else []

    def cpu_ticks(self) -> int:
        return sum(ticks(p) for i in self.procs for p in self.net.pids(i))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                # The supervisor alone: it forwards the signal once (a signal to the whole group would reach each
                # worker twice, and a second signal makes a worker exit at once).
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for i in self.procs:  # a worker process its supervisor left behind
            for pid in self.net.pids(i):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for log in self.log_files:
            log.close()
        self.procs, self.log_files = {}, []


# -- measuring ----------------------------------------------------------------------------------------------
ACTIVITY = """
SELECT host(client_addr) AS addr,
       CASE WHEN application_name LIKE 'supaworker:worker-%%' THEN 'pool'
            WHEN query LIKE 'LISTEN %%' THEN 'listen' ELSE 'other' END AS kind,
       count(*)::int AS n
  FROM pg_stat_activity
 WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
 GROUP BY 1, 2
"""


def activity(conn: psycopg.Connection[Any]) -> dict[str, Counter[str]]:
    """Server backends of the benchmark database per client address, by kind."""
    out: dict[str, Counter[str]] = {}
    for addr, kind, n in conn.execute(ACTIVITY, (DB,)).fetchall():
        out.setdefault(addr or "local", Counter())[kind] += n
    return out


def unfinished(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM supaworker.jobs WHERE status IN ('pending', 'processing', 'waiting'))"
    ).fetchone()
    return bool(row and row[0])


def started(conn: psycopg.Connection[Any]) -> bool:
    """Whether a worker has claimed a job (both through partial indexes, however many jobs wait)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM supaworker.jobs WHERE status = 'processing')"
        " OR EXISTS (SELECT 1 FROM supaworker.jobs WHERE completed_at IS NOT NULL)"
    ).fetchone()
    return bool(row and row[0])


def wait_for(
    check: Callable[[], bool], what: str, fleet: Fleet, timeout: float, interval: float = SAMPLE_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        fleet.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Window:
    """CPU counters at the start of a measured stretch, and what they say at its end."""

    cluster: Cluster
    fleet: Fleet
    bouncer: Bouncer | None
    own_backend: int
    start: dict[str, int] = field(default_factory=dict)

    def read(self) -> dict[str, int]:
        busy, total = machine_ticks()
        return {
            "server": self.cluster.cpu_ticks(),
            "own": ticks(self.own_backend),
            "workers": self.fleet.cpu_ticks(),
            "bouncer": self.bouncer.cpu_ticks() if self.bouncer else 0,
            "busy": busy,
            "total": total,
            "ns": time.monotonic_ns(),
        }

    def open(self) -> None:
        self.start = self.read()

    def close(self, jobs: int) -> dict[str, float]:
        end = self.read()
        d = {k: end[k] - self.start[k] for k in end}
        per_job = 1000 / TICK / jobs  # ticks -> ms per job
        return {
            "server_cpu_ms_per_job": round((d["server"] - d["own"]) * per_job, 4),
            "worker_cpu_ms_per_job": round(d["workers"] * per_job, 4),
            "pgbouncer_cpu_ms_per_job": round(d["bouncer"] * per_job, 4),
            "server_cores_busy": round((d["server"] - d["own"]) / TICK / (d["ns"] / 1e9), 2),
            "machine_busy_pct": round(100 * d["busy"] / d["total"], 1) if d["total"] else 0.0,
            "window_s": round(d["ns"] / 1e9, 2),
        }


def per_host(samples: list[dict[str, Counter[str]]], net: Network, hosts: int) -> list[dict[str, Any]]:
    """For each host: the most backends seen at once, with their kinds at that moment."""
    out = []
    for i in range(hosts):
        addr = net.address(i)
        best = max((s.get(addr, Counter()) for s in samples), key=lambda c: sum(c.values()), default=Counter())
        out.append(
            {"host": addr, "total": sum(best.values()), **{k: best.get(k, 0) for k in ("pool", "listen", "other")}}
        )
    return out


# -- one drain ----------------------------------------------------------------------------------------------
def new_database(cluster: Cluster) -> None:
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB} TEMPLATE {TEMPLATE}")


def drop_database(cluster: Cluster) -> None:
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def bouncer_clients(bouncer: Bouncer, net: Network, hosts: int) -> dict[str, int]:
    seen = Counter(c["addr"] for c in bouncer.clients() if c.get("database") == DB)
    return {net.address(i): seen.get(net.address(i), 0) for i in range(hosts)}


def drain(
    cluster: Cluster, net: Network, fleet: Fleet, hosts: int, jobs: int, bouncer: Bouncer | None
) -> dict[str, Any]:
    """One measured drain of `jobs` no-op jobs by `hosts` hosts, directly or through `bouncer`."""
    new_database(cluster)
    url = bouncer.url(DB) if bouncer else cluster.url(DB, SERVER_ADDR)
    load = Path("/proc/loadavg").read_text().split()[0]
    fleet.start(hosts, url)
    try:
        with psycopg.connect(cluster.url(DB), autocommit=True) as conn:
            own = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            processes = hosts * PROCESSES_PER_HOST
            if bouncer is None:
                # Every worker process says it waits for work once its first claim found none.
                ready = "SELECT count(*) FROM supaworker.waiting_workers WHERE until > now()"
                wait_for(lambda: conn.execute(ready).fetchone() == (processes,), "every worker to wait", fleet,
                         READY_TIMEOUT_SECONDS)  # fmt: skip
            else:
                # Behind a transaction pooler workers poll and say nothing: wait for each one's pool.
                def connected() -> bool:
                    names = {c["application_name"] for c in bouncer.clients()}
                    return sum(1 for n in names if n.startswith("supaworker:worker-")) == processes

                wait_for(connected, "every worker to connect to pgbouncer", fleet, READY_TIMEOUT_SECONDS)
                time.sleep(2)  # a poll interval and more, so every worker has made its first claim
            idle = per_host([activity(conn)], net, hosts)
            idle_clients = bouncer_clients(bouncer, net, hosts) if bouncer else {}
            server_via_bouncer_idle = sum(activity(conn).get("127.0.0.1", Counter()).values()) if bouncer else 0

            queued_at = time.monotonic()
            supaworker.create_jobs([{"type": "noop"}] * jobs, conn=conn)
            enqueue_s = time.monotonic() - queued_at
            # The window opens at the first claim: behind a pooler that is up to a poll interval later.
            wait_for(lambda: started(conn), "the first claim", fleet, READY_TIMEOUT_SECONDS, interval=0.005)
            window = Window(cluster, fleet, bouncer, own)
            window.open()
            samples: list[dict[str, Counter[str]]] = []
            client_max: Counter[str] = Counter()
            server_via_bouncer = 0
            deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
            n = 0
            while unfinished(conn):
                fleet.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the queue did not drain within {DRAIN_TIMEOUT_SECONDS:g} s")
                seen = activity(conn)
                samples.append(seen)
                if bouncer is not None:
                    server_via_bouncer = max(server_via_bouncer, sum(seen.get("127.0.0.1", Counter()).values()))
                    if n % 3 == 0:  # the admin console costs PgBouncer's one thread: every 0.3 s is enough
                        for addr, count in bouncer_clients(bouncer, net, hosts).items():
                            client_max[addr] = max(client_max[addr], count)
                n += 1
                time.sleep(SAMPLE_SECONDS)
            cpu = window.close(jobs)
            # One claim statement gives its jobs one started_at (its transaction's now()), one completion
            # write one completed_at: counting those pairs counts the round trips that moved jobs.
            total, completed, extra, claims, writes, span, p10, p90 = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), sum(attempts) - count(*),"
                " count(DISTINCT (worker_id, started_at)), count(DISTINCT (worker_id, completed_at)),"
                " extract(epoch FROM max(completed_at) - min(started_at))::float8,"
                " percentile_cont(0.1) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at)),"
                " percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at))"
                " FROM supaworker.jobs"
            ).fetchone()  # type: ignore[misc]
    finally:
        fleet.stop()
    drop_database(cluster)
    if completed != jobs or total != jobs:
        raise RuntimeError(f"{completed} of {jobs} jobs completed ({total} rows)")
    busy = per_host(samples, net, hosts)
    result: dict[str, Any] = {
        "path": "pgbouncer" if bouncer else "direct",
        "hosts": hosts,
        "processes": hosts * PROCESSES_PER_HOST,
        "jobs": jobs,
        "jobs_per_s": round(completed / span),
        # The middle 80 % of completions: without the start (workers joining) and the tail (the last batches).
        "jobs_per_s_steady": round(0.8 * completed / (p90 - p10)),
        "drain_s": round(span, 2),
        "extra_attempts": int(extra),
        "jobs_per_claim": round(completed / claims, 1),
        "jobs_per_completion_write": round(completed / writes, 1),
        "enqueue_s": round(enqueue_s, 2),
        **cpu,
        "connections_idle": idle,
        "connections_busy": busy,
        "server_connections_per_host_idle": max(h["total"] for h in idle),
        "server_connections_per_host_busy": max(h["total"] for h in busy),
        "server_connections_total_busy": max((sum(sum(c.values()) for c in s.values()) for s in samples), default=0),
        "loadavg_1m": load,
    }
    if bouncer is not None:
        result |= {
            "pgbouncer_pool_size": bouncer.pool_size,
            "pgbouncer_clients_per_host_idle": max(idle_clients.values()),
            "pgbouncer_clients_per_host_busy": max(client_max.values(), default=0),
            "server_connections_from_pgbouncer_idle": server_via_bouncer_idle,
            "server_connections_from_pgbouncer_busy": server_via_bouncer,
        }
    print(summary_line(result), flush=True)
    return result


def summary_line(r: dict[str, Any]) -> str:
    via = r["path"]
    line = (
        f"{via:9} {r['hosts']} host(s) x {PROCESSES_PER_HOST}: {r['jobs_per_s']:,} jobs/s, server "
        f"{r['server_cpu_ms_per_job']:.4f} ms/job ({r['server_cores_busy']} cores), workers "
        f"{r['worker_cpu_ms_per_job']:.4f} ms/job, machine {r['machine_busy_pct']}% busy; server connections per "
        f"host idle {r['server_connections_per_host_idle']}, busy {r['server_connections_per_host_busy']}"
    )
    if via == "pgbouncer":
        line += (
            f"; clients per host {r['pgbouncer_clients_per_host_busy']}, server connections from pgbouncer "
            f"{r['server_connections_from_pgbouncer_busy']} (pool {r['pgbouncer_pool_size']})"
        )
    return line


# -- the fault run ------------------------------------------------------------------------------------------
def fault_run(
    cluster: Cluster,
    net: Network,
    fleet: Fleet,
    hosts: int,
    jobs: int,
    sleep: float,
    cut_seconds: float,
    server_settings: dict[str, int] | None = None,
) -> dict[str, Any]:
    """`hosts` hosts drain effect jobs; host 0's link is cut for `cut_seconds`, then restored. With
    `server_settings` (SERVER_LIVENESS) the server finds out about the cut host's connections by itself."""
    new_database(cluster)
    cut_host = net.address(0)
    with psycopg.connect(cluster.url(DB), autocommit=True) as conn:
        set_server(conn, server_settings or {})
        conn.execute(EFFECTS_TABLE)
        supaworker.create_jobs([{"type": "effect", "payload": {"sleep": sleep}, "max_attempts": 5}] * jobs, conn=conn)
        fleet.start(hosts, cluster.url(DB, SERVER_ADDR), "--lease-seconds", str(FAULT_LEASE_SECONDS))
        backends_q = "SELECT array_agg(pid) FROM pg_stat_activity WHERE client_addr = %s::inet AND datname = %s"
        # What the cut host's old backends do: idle, or inside a transaction (a pipeline whose Sync never came,
        # a result it could not send), holding its row locks until the server gives up on the client.
        states_q = (
            "SELECT state || coalesce('/' || wait_event, '') || CASE WHEN xact_start IS NULL THEN '' ELSE"
            " ' (in a transaction)' END, count(*)::int FROM pg_stat_activity WHERE pid = ANY(%s) GROUP BY 1"
        )
        held_q = "SELECT count(*) FROM supaworker.jobs WHERE status = 'processing' AND worker_id LIKE ANY(%s)"
        try:

            def completed() -> int:
                return conn.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'completed'").fetchone()[0]  # type: ignore[index]

            def backends() -> set[int]:
                return set(conn.execute(backends_q, (cut_host, DB)).fetchone()[0] or [])  # type: ignore[index]

            wait_for(lambda: completed() >= jobs // 10, "a tenth of the jobs to complete", fleet, READY_TIMEOUT_SECONDS)
            prefixes = [f"worker-{pid}-%" for pid in fleet.worker_pids(0)]
            completed_before, old_backends = completed(), backends()
            timeline: list[dict[str, Any]] = []
            in_transaction_most = 0

            def look(n: int) -> None:
                """Every 0.5 s: jobs the cut host holds, what its old backends do."""
                nonlocal in_transaction_most
                if n % 5:
                    return
                held = conn.execute(held_q, (prefixes,)).fetchone()[0]  # type: ignore[index]
                states = dict(conn.execute(states_q, (list(old_backends),)).fetchall())
                in_transaction_most = max(
                    in_transaction_most, sum(v for k, v in states.items() if k.endswith("transaction)"))
                )
                timeline.append({"t": round(time.monotonic() - t0, 1), "held": held, "old_backends": states})

            t0 = time.monotonic()
            net.cut(0)
            held_at_cut = conn.execute(held_q, (prefixes,)).fetchone()[0]  # type: ignore[index]
            released_after: float | None = None
            gone_after: float | None = None
            n = 0
            while time.monotonic() - t0 < cut_seconds:
                fleet.check_alive()
                if released_after is None and conn.execute(held_q, (prefixes,)).fetchone() == (0,):
                    released_after = round(time.monotonic() - t0, 2)
                if gone_after is None and not old_backends & backends():
                    gone_after = round(time.monotonic() - t0, 2)
                look(n)
                n += 1
                time.sleep(SAMPLE_SECONDS)
            completed_at_restore, left_at_restore = completed(), len(old_backends & backends())
            net.restore(0)
            restored_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
            deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
            # Until the queue is empty and, with the liveness settings, the old backends are gone (or surely
            # would have been: probes and the user timeout are over, and more).
            probes_end = t0 + (probe_seconds(server_settings) + 20 if server_settings else 0)
            while unfinished(conn) or (gone_after is None and time.monotonic() < probes_end):
                fleet.check_alive()
                if gone_after is None and not old_backends & backends():
                    gone_after = round(time.monotonic() - t0, 2)
                if time.monotonic() > deadline:
                    raise RuntimeError("the queue did not drain after the cut")
                look(n)
                n += 1
                time.sleep(SAMPLE_SECONDS)
            drained_after = round(time.monotonic() - t0, 2)
            left_at_end, new_backends = len(old_backends & backends()), len(backends() - old_backends)
            alive = all(p.poll() is None for p in fleet.procs.values())
            workers_of_cut_host = len(fleet.worker_pids(0))
        finally:
            fleet.stop()
            set_server(conn, dict.fromkeys(server_settings or {}, None))
        counts = account(conn, cut_host, restored_at)
    drop_database(cluster)
    result = {
        "server": ", ".join(f"{k} {v}" for k, v in server_settings.items())
        if server_settings
        else "server defaults (no keepalives before the kernel's 7200 s, no tcp_user_timeout)",
        "hosts": hosts,
        "processes": hosts * PROCESSES_PER_HOST,
        "jobs": jobs,
        "job_sleep_s": sleep,
        "lease_s": FAULT_LEASE_SECONDS,
        "cut": f"ip link set {net.link(0)} down",
        "cut_s": cut_seconds,
        "completed_before_cut": completed_before,
        "completed_at_restore": completed_at_restore,
        "cut_host_held_at_cut": held_at_cut,
        "cut_host_held_none_after_s": released_after,
        "cut_host_said_lost_the_database": "lost the database"
        in (fleet.logs / "host0.log").read_text(errors="replace"),
        "cut_host_backends_before_cut": len(old_backends),
        "of_them_in_a_transaction_most": in_transaction_most,
        "of_them_left_at_restore": left_at_restore,
        "of_them_all_gone_after_cut_s": gone_after,
        "of_them_left_at_end": left_at_end,
        "cut_host_new_backends_at_end": new_backends,
        "drained_after_cut_s": drained_after,
        "all_hosts_alive_at_end": alive,
        "cut_host_worker_processes_at_end": workers_of_cut_host,
        **counts,
        "timeline": timeline,
    }
    ok = (
        result["lost"] == 0
        and result["attempts_run_twice"] == 0
        and result["rerun_without_charged_attempt"] == 0
        and result["completed"] == jobs
        and result["rows"] == jobs
    )
    result["verdict"] = "nothing lost" if ok else "FAILED"
    print("fault run:", json.dumps({k: v for k, v in result.items() if k != "timeline"}, default=str), flush=True)
    return result


def set_server(conn: psycopg.Connection[Any], settings: dict[str, int | None]) -> None:
    """ALTER SYSTEM SET (RESET for None) and reload: the connections made from then on take the settings."""
    for name, value in settings.items():
        conn.execute(f"ALTER SYSTEM RESET {name}" if value is None else f"ALTER SYSTEM SET {name} = {int(value)}")
    conn.execute("SELECT pg_reload_conf()")


def probe_seconds(settings: dict[str, int]) -> float:
    """How long after its last traffic the server gives up on a silent client, at most."""
    probes = settings["tcp_keepalives_idle"] + settings["tcp_keepalives_interval"] * settings["tcp_keepalives_count"]
    return max(probes, settings["tcp_user_timeout"] / 1000)


def account(conn: psycopg.Connection[Any], cut_host: str, restored_at: Any) -> dict[str, Any]:
    """What happened to every job of the fault run, from the jobs table and the effects table."""
    rows, done, failed = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')"
        " FROM supaworker.jobs"
    ).fetchone()  # type: ignore[misc]
    runs = conn.execute(
        """
        WITH e AS (SELECT job_id, count(*) AS n, count(DISTINCT attempt) AS attempts, max(attempt) AS last
                     FROM public.bench_effects GROUP BY job_id)
        SELECT coalesce(sum(e.n), 0)::int,
               count(*) FILTER (WHERE e.n = 1)::int,
               count(*) FILTER (WHERE e.n > 1)::int,
               coalesce(sum(e.n - e.attempts), 0)::int,
               -- a job run again must have each earlier run charged: an errors entry for every attempt but the last
               count(*) FILTER (WHERE e.n > 1 AND EXISTS (
                   SELECT 1 FROM public.bench_effects x WHERE x.job_id = e.job_id AND x.attempt < e.last
                      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(j.errors) err
                                       WHERE (err->>'attempt')::int = x.attempt))),
               count(*) FILTER (WHERE j.status = 'completed' AND e.job_id IS NULL)::int
          FROM supaworker.jobs j LEFT JOIN e ON e.job_id = j.id
        """
    ).fetchone()
    executions, once, twice, attempt_twice, uncharged_rerun, completed_without_run = runs  # type: ignore[misc]
    errors = Counter(
        dict(
            conn.execute(
                """
                SELECT CASE WHEN err->>'error' LIKE '%died while running%' THEN 'rescued after its lease expired'
                            WHEN err->>'error' LIKE '%lost the database%' THEN 'stopped by its fenced worker'
                            ELSE left(err->>'error', 60) END, count(*)::int
                  FROM supaworker.jobs j, jsonb_array_elements(j.errors) err GROUP BY 1
                """
            ).fetchall()
        )
    )
    charged, handed_back = conn.execute(
        "SELECT count(*) FILTER (WHERE jsonb_array_length(errors) > 0), count(*) FILTER (WHERE handed_back > 0)"
        " FROM supaworker.jobs"
    ).fetchone()  # type: ignore[misc]
    by_cut_host = conn.execute(
        "SELECT count(*) FILTER (WHERE at < %s), count(*) FILTER (WHERE at >= %s) FROM public.bench_effects"
        " WHERE host = %s::inet",
        (restored_at, restored_at, cut_host),
    ).fetchone()
    return {
        "rows": rows,
        "completed": done,
        "failed": failed,
        "lost": rows - done,
        "executions": executions,
        "jobs_run_once": once,
        "jobs_run_more_than_once": twice,
        "attempts_run_twice": attempt_twice,
        "rerun_without_charged_attempt": uncharged_rerun,
        "completed_without_execution": completed_without_run,
        "jobs_charged_an_attempt": charged,
        "charged_attempts_by_cause": dict(errors),
        "jobs_handed_back_uncharged": handed_back,
        "cut_host_executions_before_restore": by_cut_host[0] if by_cut_host else 0,
        "cut_host_executions_after_restore": by_cut_host[1] if by_cut_host else 0,
    }


# -- report -------------------------------------------------------------------------------------------------
def report(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        f"Many worker hosts on one PostgreSQL, {env['cpus']} cores ({env['cpu_model']}) shared by the server, the "
        f"hosts' workers and PgBouncer. Each host is `supaworker worker --processes {PROCESSES_PER_HOST}` (default "
        "settings, an `async def` no-op handler) in a network namespace of its own.",
        "",
        f"`{result['command']}`, supaworker {env['supaworker']}, PostgreSQL "
        + ", ".join(f"{k} {v}" for k, v in env["postgres"].items())
        + f", {env['pgbouncer']}.",
    ]
    rows = summarise(result["drains"])
    if rows:
        repeats = rows[0]["repetitions"]
        lines += [
            "",
            f"Drains of {rows[0]['jobs']:,} queued jobs, {repeats} repetition(s) interleaved (repetition, host count, "
            "path); medians, with the range of jobs/s. jobs/s: completed / (last completion - first claim), and over "
            "the middle 80 % of completions; CPU per job over the drain; connections: server backends per host with "
            "the workers waiting (idle) and the most seen during the drain (busy), the most of any repetition.",
            "",
            "| path | hosts | processes | jobs/s | jobs/s, middle 80 % | server CPU ms/job | server cores busy "
            "| worker CPU ms/job | pgbouncer CPU ms/job | machine busy | jobs per claim "
            "| server conns per host, idle / busy | server conns in all, busy | pgbouncer clients per host, "
            "idle / busy | load 1m |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for r in rows:
        pooled = r["path"] == "pgbouncer"
        path = f"pgbouncer (pool {r['pgbouncer_pool_size']})" if pooled else r["path"]
        clients = f"{r['pgbouncer_clients_per_host_idle']} / {r['pgbouncer_clients_per_host_busy']}" if pooled else "-"
        lines.append(
            f"| {path} | {r['hosts']} | {r['processes']} | {r['jobs_per_s']:,.0f}{jobs_range(r)} | "
            f"{r['jobs_per_s_steady']:,.0f} | "
            f"{r['server_cpu_ms_per_job']:.4f} | {r['server_cores_busy']} | {r['worker_cpu_ms_per_job']:.4f} | "
            f"{r['pgbouncer_cpu_ms_per_job'] if pooled else '-'} | {r['machine_busy_pct']}% | {r['jobs_per_claim']} | "
            f"{r['server_connections_per_host_idle']} / {r['server_connections_per_host_busy']} | "
            f"{r['server_connections_total_busy']} | {clients} | {' / '.join(r['loadavg_1m'])} |"
        )
    direct = [r for r in rows if r["path"] == "direct"]
    if direct:
        lines += ["", "Server connections of the busiest host (2 worker processes), direct:", ""]
    for r in direct:
        idle = max(r["connections_idle"], key=lambda h: h["total"])
        busy = max(r["connections_busy"], key=lambda h: h["total"])
        lines.append(
            f"- {r['hosts']} host(s): {idle['total']} idle (workers' pools {idle['pool']}, LISTEN {idle['listen']}, "
            f"other {idle['other']}) and {busy['total']} busy (pools {busy['pool']}, LISTEN {busy['listen']}, "
            f"other {busy['other']})."
        )
    faults = result.get("faults", [])
    if faults:
        f = faults[0]
        shown = [key for key in f if key not in FAULT_HEADER_KEYS]
        verdicts = "; ".join(f"{x['server']}: **{x['verdict']}**" for x in faults)
        lines += [
            "",
            f"Fault runs: {f['hosts']} hosts x {PROCESSES_PER_HOST}, {f['jobs']:,} jobs (each sleeps "
            f"{f['job_sleep_s']} s, then writes one effects row), lease {f['lease_s']:g} s; `{f['cut']}` once a "
            f"tenth of the jobs were done, for {f['cut_s']:g} s, then up again. {verdicts}.",
            "",
            "| figure | " + " | ".join(x["server"] for x in faults) + " |",
            "|---|" + "---:|" * len(faults),
            *(f"| {key.replace('_', ' ')} | " + " | ".join(str(x[key]) for x in faults) + " |" for key in shown),
        ]
    return "\n".join(lines) + "\n"


# Reported as medians over the repetitions, with these many decimals.
MEDIAN_KEYS = {
    "jobs_per_s": 0, "jobs_per_s_steady": 0, "drain_s": 2, "server_cpu_ms_per_job": 4, "server_cores_busy": 2,
    "worker_cpu_ms_per_job": 4, "pgbouncer_cpu_ms_per_job": 4, "machine_busy_pct": 1, "jobs_per_claim": 1,
}  # fmt: skip
MAX_KEYS = (
    "server_connections_per_host_idle", "server_connections_per_host_busy", "server_connections_total_busy",
    "pgbouncer_clients_per_host_idle", "pgbouncer_clients_per_host_busy", "server_connections_from_pgbouncer_busy",
)  # fmt: skip


def summarise(drains: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per path and host count: medians over the repetitions, the most connections any of them saw."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for d in drains:
        groups.setdefault((d["path"], d["hosts"]), []).append(d)
    rows = []
    for _, runs in sorted(groups.items(), key=lambda g: (g[0][0] != "direct", g[0][1])):
        busiest = max(runs, key=lambda d: d["server_connections_per_host_busy"])
        row = {**busiest, "repetitions": len(runs), "loadavg_1m": [d["loadavg_1m"] for d in runs]}
        row |= {k: round(statistics.median(d[k] for d in runs), digits) for k, digits in MEDIAN_KEYS.items()}
        row |= {k: max(d[k] for d in runs) for k in MAX_KEYS if k in busiest}
        row["jobs_per_s_range"] = [min(d["jobs_per_s"] for d in runs), max(d["jobs_per_s"] for d in runs)]
        rows.append(row)
    return rows


def jobs_range(row: dict[str, Any]) -> str:
    low, high = row["jobs_per_s_range"]
    return f" ({low:,}-{high:,})" if row["repetitions"] > 1 else ""


def environment(cluster: Cluster) -> dict[str, Any]:
    cpu = Path("/proc/cpuinfo").read_text()
    models = re.findall(r"model name\s*:\s*(.*)", cpu)
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        pg = {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in PG_SETTINGS}  # type: ignore[index]
    rev = run("git", "-C", str(REPO), "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    pgb = run(shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", "--version", check=False).stdout.split("\n")[0]
    return {
        "cpu_model": models[0] if models else None,
        "cpus": len(models),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "postgres": pg,
        "pgbouncer": pgb,
        "supaworker": rev,
        "python": sys.version.split()[0],
    }


# -- main ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run through the same cleanup as Ctrl-C."""

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def clean_up(steps: list[Callable[[], None]]) -> None:
    """Runs every step, whatever the others do, deaf to further signals: a second Ctrl-C must not leave a
    namespace or a server behind halfway through."""
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in stops}
    try:
        for step in steps:
            try:
                step()
            except Exception as exc:  # the next steps still run
                print(f"cleanup: {step!r} failed: {exc}", file=sys.stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="1,2,4,8", help="host counts to measure, comma-separated")
    ap.add_argument("--jobs", type=int, default=200_000, help="no-op jobs per drain")
    ap.add_argument("--pool-size", type=int, default=8, help="PgBouncer's default_pool_size")
    ap.add_argument("--paths", default="direct,pgbouncer", help="direct, pgbouncer or both")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions of every drain (medians are reported)")
    ap.add_argument("--fault-hosts", type=int, default=4, help="hosts in the fault run (0: no fault run)")
    ap.add_argument("--fault-jobs", type=int, default=25_000)
    ap.add_argument("--fault-sleep", type=float, default=0.1, help="seconds each fault-run job sleeps")
    ap.add_argument("--cut-seconds", type=float, default=3 * FAULT_LEASE_SECONDS)
    ap.add_argument(
        "--no-liveness-run", action="store_true", help="skip the second fault run (server keepalives and user timeout)"
    )
    ap.add_argument("--out", default="hosts", help="results name in bench/results/ ('' writes nothing)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/hosts.py makes network namespaces: run it as root")
    if not Path(supaworker.__file__).resolve().is_relative_to(REPO / "src"):
        # The workers run this checkout's src/; the migrations and the enqueue must come from the same code.
        sys.exit(f"supaworker is imported from {supaworker.__file__}: run with PYTHONPATH={REPO / 'src'}")
    counts = [int(x) for x in a.hosts.split(",") if x]
    paths = [x for x in a.paths.split(",") if x]
    hosts_needed = max([*counts, a.fault_hosts])

    Network.remove_leftovers()
    root = Path(tempfile.mkdtemp(prefix="sw-hosts-"))
    chown_postgres(root)
    net = Network(hosts_needed)
    cluster = Cluster(root)
    bouncer: Bouncer | None = None
    fleet = Fleet(net, root)
    try:
        with signals_as_interrupts():
            net.create()
            cluster.start()
            with psycopg.connect(cluster.url("postgres"), autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {TEMPLATE}")
            migrate(cluster.url(TEMPLATE), "supaworker")
            if "pgbouncer" in paths:
                bouncer = Bouncer(root, cluster, a.pool_size)
                bouncer.start()
            result: dict[str, Any] = {
                "command": "bench/hosts.py " + " ".join(sys.argv[1:]),
                "environment": environment(cluster),
                "drains": [],
            }
            # Interleaved, so that a slow drift of a shared machine touches every figure alike.
            for repetition in range(a.repeat):
                for n in counts:
                    for path in paths:
                        via = bouncer if path == "pgbouncer" else None
                        result["drains"].append(drain(cluster, net, fleet, n, a.jobs, via) | {"repetition": repetition})
            result["summary"] = summarise(result["drains"])
            if a.fault_hosts:
                fault = (cluster, net, fleet, a.fault_hosts, a.fault_jobs, a.fault_sleep, a.cut_seconds)
                result["faults"] = [fault_run(*fault)]
                if not a.no_liveness_run:
                    result["faults"].append(fault_run(*fault, server_settings=SERVER_LIVENESS))
    except BaseException:
        for i in fleet.procs:
            print(f"--- host {i} log ---\n{fleet.log_tail(i)}", file=sys.stderr)
        print(f"--- server log ---\n{_tail(cluster.dir / 'log')}", file=sys.stderr)
        raise
    finally:
        clean_up(
            [fleet.stop, *([bouncer.stop] if bouncer else []), cluster.stop, net.close,
             lambda: shutil.rmtree(root, ignore_errors=True)]
        )  # fmt: skip
    text = report(result)
    print(text)
    if a.out:
        out = HERE / "results"
        (out / f"{a.out}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / f"{a.out}.md").write_text(text)
    if any(f["verdict"] == "FAILED" for f in result.get("faults", [])):
        sys.exit(1)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


if __name__ == "__main__":
    main()
