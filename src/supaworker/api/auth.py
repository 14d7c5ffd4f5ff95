"""Bearer-key checks: every write needs a key; reads need one unless they are configured public."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from .contract import bearer
from .settings import ApiSettings, is_loopback


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": 'Bearer realm="supaworker"'})


def check_key(request: Request, settings: ApiSettings) -> None:
    """Raises 401 unless the request carries one of the configured keys."""
    keys = settings.keys
    if not keys:
        raise _unauthorized(
            "this server has no API key configured; set SUPAWORKER_API_KEY or SUPABASE_SERVICE_ROLE_KEY"
        )
    presented = _presented_key(request)
    if presented is None:
        raise _unauthorized("missing key: send Authorization: Bearer <key>")
    # Compare against every key in constant time so the response time does not hint at a prefix.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    if not matched:
        raise _unauthorized("invalid key")


def require_write(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """FastAPI dependency for endpoints that change anything."""
    check_key(request, request.app.state.settings)


def reads_are_open(request: Request) -> bool:
    """Whether this request may read without a key.

    Reads that are open only because the server listens on loopback are open only to requests that name a
    loopback host: a web page on another site that points its own name at 127.0.0.1 (DNS rebinding) sends
    its own name in `Host` and is refused.
    """
    settings: ApiSettings = request.app.state.settings
    if not settings.reads_are_public:
        return False
    if settings.public_reads is not None:
        return True
    return is_loopback_host_header(request.headers.get("host", ""))


def is_loopback_host_header(value: str) -> bool:
    """`localhost`, `127.0.0.1`, `[::1]`, a `*.localhost` name, each with or without a port."""
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    host = host.rstrip(".")
    return host == "localhost" or host.endswith(".localhost") or (bool(host) and is_loopback(host))


def require_read(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """FastAPI dependency for endpoints that only read."""
    if not reads_are_open(request):
        settings: ApiSettings = request.app.state.settings
        if settings.reads_are_public and _presented_key(request) is None:
            raise _unauthorized(
                "reads without a key are open only to requests for localhost or 127.0.0.1 "
                f"(this one asked for {request.headers.get('host', '')!r}); send Authorization: Bearer <key>"
            )
        check_key(request, settings)
