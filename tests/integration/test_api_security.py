"""Reads open on loopback answer only requests for a loopback host name (no DNS rebinding), and every
response carries headers that keep browsers from framing, sniffing or injecting into the pages."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from supaworker.api.auth import is_loopback_host_header
from supaworker.store import Store
from tests.support.api import AUTH, make_app

READS = ["/api/jobs?action=stats", "/api/jobs?action=list", "/api/jobs/1", "/metrics", "/test-worker/panels"]


@pytest.fixture
def loopback_api(store: Store, conn: psycopg.Connection) -> TestClient:
    """Reads open because the server listens on loopback (SUPAWORKER_API_PUBLIC_READS unset)."""
    conn.execute("INSERT INTO supaworker.jobs (type, payload) VALUES ('t', '{\"secret\": \"s3cret\"}')")
    return TestClient(make_app(store, host="127.0.0.1", public_reads=None), base_url="http://localhost:3000")


@pytest.mark.parametrize("host", ["localhost:3000", "127.0.0.1:3000", "[::1]:3000", "app.localhost", "127.0.0.1"])
def test_open_reads_answer_loopback_host_names(loopback_api: TestClient, host: str) -> None:
    with loopback_api as client:
        for path in READS:
            assert client.get(path, headers={"Host": host}).status_code == 200, (host, path)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:3000", "127.0.0.1.evil.example", "localhost.evil"])
def test_open_reads_refuse_other_host_names_unless_the_key_is_sent(loopback_api: TestClient, host: str) -> None:
    with loopback_api as client:
        for path in READS:
            refused = client.get(path, headers={"Host": host})
            assert refused.status_code == 401, (host, path)
            assert "localhost" in refused.json()["error"]
            assert client.get(path, headers={"Host": host, **AUTH}).status_code == 200, (host, path)
        shell = client.get("/test-worker", headers={"Host": host})
        assert shell.status_code == 200 and "s3cret" not in shell.text
        assert "Reading needs the API key" in shell.text


def test_reads_configured_public_accept_any_host(store: Store) -> None:
    with TestClient(make_app(store, host="0.0.0.0", public_reads=True)) as client:
        assert client.get("/api/jobs?action=stats", headers={"Host": "queue.example.com"}).status_code == 200


@pytest.mark.parametrize("path", ["/test-worker", "/", "/test-worker/panels", "/api/jobs?action=stats", "/docs",
                                  "/api/jobs/abc", "/test-worker/static/dashboard.js"])  # fmt: skip
def test_every_response_carries_the_security_headers(store: Store, path: str) -> None:
    with TestClient(make_app(store, public_reads=True)) as client:
        response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    if path != "/docs":
        assert "unsafe-inline" not in policy


def test_loopback_host_header_parsing() -> None:
    assert all(map(is_loopback_host_header, ["localhost", "LOCALHOST:80", "127.0.0.2", "[::1]", "localhost."]))
    assert not any(map(is_loopback_host_header, ["", "[::1", "::1x", "example.com", "10.0.0.1", "localhost.evil"]))
