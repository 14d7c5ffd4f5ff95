"""The TypeScript client's own tests (`node --test` in clients/typescript), run by the suite against a real
PostgreSQL with Supabase's roles and a real PostgREST 12: this test fails when any of them fails.

Node's dependencies come from the committed package-lock.json (`npm ci`, once, when node_modules is missing
or older than the lockfile). Without node and npm the test skips, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from supaworker.migrate import migrate
from tests.conftest import PREFIX, REPO, SCHEMA, admin_url, create_database, drop_database
from tests.servers import PostgREST, ensure_supabase_roles

pytestmark = pytest.mark.acceptance

CLIENT = REPO / "clients" / "typescript"
JWT_SECRET = "supaworker-typescript-test-secret-0123456789"
NODE_TESTS_TIMEOUT_SECONDS = 240
NODE_TEST_TIMEOUT_MS = 60_000  # one test
NPM_CI_TIMEOUT_SECONDS = 300


def service_key() -> str:
    claims = {"role": "service_role", "iss": "supabase", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def database_url(conninfo: str) -> str:
    """A postgresql:// URL for node-postgres, which reads no libpq key=value strings."""
    params = conninfo_to_dict(conninfo)
    user = quote(params.get("user") or "postgres", safe="")
    password = f":{quote(params['password'], safe='')}" if params.get("password") else ""
    host, port = params.get("host") or "127.0.0.1", params.get("port") or "5432"
    return f"postgresql://{user}{password}@{host}:{port}/{quote(params['dbname'], safe='')}"


def node_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(
            "node and npm are needed for the TypeScript client's tests (clients/typescript, `node --test`); "
            "install Node.js 18 or later"
        )
    return node, npm


def install_node_modules(npm: str, folder: Path = CLIENT) -> None:
    """`npm ci` in `folder` from its lockfile when node_modules is missing or older than it."""
    installed = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=NPM_CI_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci in {folder} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@pytest.fixture
def supabase_like() -> Iterator[tuple[str, PostgREST]]:
    """A migrated database with Supabase's roles and end-user reads exposed, and PostgREST serving it."""
    ensure_supabase_roles(admin_url())
    name = f"{PREFIX}_ts_{time.monotonic_ns() % 10**9}"
    url = create_database(name)
    migrate(url, SCHEMA)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SELECT {SCHEMA}.expose_briefs(true)")
    server = PostgREST(url, SCHEMA, JWT_SECRET).start()
    try:
        deadline = time.monotonic() + 30
        headers = {"Authorization": f"Bearer {service_key()}", "Content-Profile": SCHEMA}
        while True:
            try:
                status = httpx.post(f"{server.url}/rpc/get_job", json={"job_id": 1}, headers=headers).status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"PostgREST did not serve {SCHEMA}.get_job within 30s (last status {status})")
            time.sleep(0.1)
        yield url, server
    finally:
        server.stop()
        drop_database(name)


def test_typescript_client_node_tests_pass(supabase_like: tuple[str, PostgREST]) -> None:
    node, npm = node_tools()
    install_node_modules(npm)
    url, server = supabase_like
    files = sorted(str(p.relative_to(CLIENT)) for p in (CLIENT / "test").glob("*.test.js"))
    assert files, "no node tests found in clients/typescript/test"
    env = {
        **os.environ,
        "SUPAWORKER_TEST_DATABASE_URL": database_url(url),
        "SUPAWORKER_TEST_POSTGREST_URL": server.url,
        "SUPAWORKER_TEST_JWT_SECRET": JWT_SECRET,
        "SUPAWORKER_TEST_SCHEMA": SCHEMA,
    }
    try:
        result = subprocess.run(
            [node, "--test", f"--test-timeout={NODE_TEST_TIMEOUT_MS}", *files],
            cwd=CLIENT,
            env=env,
            capture_output=True,
            text=True,
            timeout=NODE_TESTS_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else str(exc.stdout)
        pytest.fail(f"node --test did not finish within {NODE_TESTS_TIMEOUT_SECONDS}s:\n{output[-20000:]}")
    summary = "\n".join(line for line in result.stdout.splitlines() if line.startswith("# "))
    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    assert "# fail 0" in summary and "# skipped 0" in summary, summary
    assert Path(CLIENT / "package-lock.json").exists()
