"""Bearer-key checks: every write needs a key; reads need one unless they are configured public."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from .settings import ApiSettings


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


def require_write(request: Request) -> None:
    """FastAPI dependency for endpoints that change anything."""
    check_key(request, request.app.state.settings)


def require_read(request: Request) -> None:
    """FastAPI dependency for endpoints that only read."""
    settings: ApiSettings = request.app.state.settings
    if not settings.reads_are_public:
        check_key(request, settings)
