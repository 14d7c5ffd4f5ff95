"""The test bed of `bench/hosts.py`: network namespaces on a bridge (one per worker host), a PostgreSQL
cluster and a PgBouncer of its own on the bridge's address, and CPU time read from /proc.

Everything here is created by the benchmark and removed by it: the names start with `swh`, the subnet is
10.213.0.0/24, the cluster and PgBouncer live in the run's temp dir and run as the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUBNET = "10.213.0"
SERVER_ADDR = f"{SUBNET}.1"
BRIDGE = "swhbr0"
NS_PREFIX = "swh"
MAX_CONNECTIONS = 300
TICK = os.sysconf("SC_CLK_TCK")


# -- processes and /proc ------------------------------------------------------------------------------------
def run(*cmd: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120, **kwargs)


def ticks(pid: int | str) -> int:
    """utime + stime + cutime + cstime of one process (clock ticks); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(x) for x in fields[11:15])


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port}")


def as_postgres() -> dict[str, Any]:
    """Popen arguments that drop to the postgres user (the server and PgBouncer refuse root)."""
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def chown_postgres(*paths: Path) -> None:
    user = pwd.getpwnam("postgres")
    for path in paths:
        os.chown(path, user.pw_uid, user.pw_gid)


# -- the network -------------------------------------------------------------------------------------------
class Network:
    """A bridge with the server's address and one namespace per host, each with a veth into the bridge."""

    def __init__(self, hosts: int) -> None:
        self.hosts = hosts
        self.made: list[str] = []  # namespaces made, so close() removes exactly those
        self.bridge = False

    @staticmethod
    def namespace(i: int) -> str:
        return f"{NS_PREFIX}{i}"

    @staticmethod
    def link(i: int) -> str:
        """The host-side end of host i's veth: down means host i is cut off."""
        return f"{NS_PREFIX}{i}h"

    @staticmethod
    def address(i: int) -> str:
        return f"{SUBNET}.{10 + i}"

    @staticmethod
    def remove_leftovers() -> None:
        """Removes namespaces and the bridge of an earlier run of this script that could not clean up."""
        names = run("ip", "netns", "list").stdout.split()
        for name in names:
            if re.fullmatch(rf"{NS_PREFIX}\d+", name):
                print(f"removing namespace {name} left by an earlier run")
                run("ip", "netns", "del", name)
        if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            print(f"removing bridge {BRIDGE} left by an earlier run")
            run("ip", "link", "del", BRIDGE)

    def create(self) -> None:
        if run("ip", "-o", "addr", "show", "to", f"{SUBNET}.0/24").stdout.strip():
            raise SystemExit(f"{SUBNET}.0/24 is already in use on this machine; choose another subnet")
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        self.bridge = True
        run("ip", "addr", "add", f"{SERVER_ADDR}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        for i in range(self.hosts):
            ns = self.namespace(i)
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "link", "add", self.link(i), "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "link", "set", self.link(i), "master", BRIDGE)
            run("ip", "link", "set", self.link(i), "up")
            run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def cut(self, i: int) -> None:
        run("ip", "link", "set", self.link(i), "down")

    def restore(self, i: int) -> None:
        run("ip", "link", "set", self.link(i), "up")

    def pids(self, i: int) -> list[int]:
        return [int(p) for p in run("ip", "netns", "pids", self.namespace(i), check=False).stdout.split()]

    def close(self) -> None:
        for ns in self.made:  # deleting a namespace deletes its veth pair
            run("ip", "netns", "del", ns, check=False)
        self.made = []
        if self.bridge:
            run("ip", "link", "del", BRIDGE, check=False)
            self.bridge = False


# -- the server and the pooler ------------------------------------------------------------------------------
class Cluster:
    """A PostgreSQL cluster of this run's own, with server defaults, on 127.0.0.1 and the bridge address."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pg"
        self.dir.mkdir()
        chown_postgres(self.dir)
        self.data = self.dir / "data"
        self.port = free_port()
        self.started = False

    def url(self, dbname: str, host: str = "127.0.0.1", port: int | None = None) -> str:
        return f"postgresql://postgres@{host}:{port or self.port}/{dbname}"

    def start(self) -> None:
        run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", **as_postgres()
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1,{SERVER_ADDR}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = {MAX_CONNECTIONS}\n"
            )
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")
        run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "start", **as_postgres())
        self.started = True

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu_ticks(self) -> int:
        """The whole server's CPU so far: the postmaster with its reaped children, plus every live child."""
        pm = self.postmaster()
        return ticks(pm) + sum(ticks(c) for c in children(pm))

    def stop(self) -> None:
        if self.started:
            run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False,
                **as_postgres())  # fmt: skip
            self.started = False


class Bouncer:
    """PgBouncer in transaction mode on the bridge address, in front of the cluster."""

    def __init__(self, root: Path, cluster: Cluster, pool_size: int) -> None:
        self.dir = root / "pgbouncer"
        self.dir.mkdir()
        self.port = free_port()
        self.cluster = cluster
        self.pool_size = pool_size
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"""[databases]
* = host=127.0.0.1 port={self.cluster.port}

[pgbouncer]
listen_addr = {SERVER_ADDR}
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = 2000
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {self.dir}/pgbouncer.log
"""
        )
        chown_postgres(self.dir, *self.dir.iterdir())
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            [binary, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_postgres(),
        )
        wait_port(SERVER_ADDR, self.port, "pgbouncer")

    def url(self, dbname: str) -> str:
        return self.cluster.url(dbname, SERVER_ADDR, self.port)

    def clients(self) -> list[dict[str, Any]]:
        """SHOW CLIENTS on the admin console (simple query protocol only: a client-side cursor)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
            cur = conn.execute("SHOW CLIENTS")
            names = [c.name for c in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def cpu_ticks(self) -> int:
        return ticks(self.proc.pid) if self.proc is not None else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
