"""Bearer-key checks: every write needs a key; reads need one unless they are configured public. A few reads
also accept an end user's Supabase session JWT, and then show only that user's own data."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.types import DecoratedCallable

from .contract import bearer, error_responses
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


def reads(
    router: APIRouter | FastAPI, path: str, summary: str, *statuses: int, **options: Any
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A GET route that only reads (require_read), which may also answer the error `statuses`; `responses`
    in `options` adds to those of the errors."""
    responses = {**options.pop("responses", {}), **error_responses(*statuses)}
    dependencies = [Depends(require_read)]
    return router.get(path, dependencies=dependencies, summary=summary, responses=responses, **options)


def writes(
    router: APIRouter | FastAPI, path: str, summary: str, *statuses: int, **options: Any
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A POST route that changes something (require_write), which may also answer the error `statuses`, and
    413 for a body over the size limit."""
    dependencies = [Depends(require_write)]
    return router.post(
        path, dependencies=dependencies, summary=summary, responses=error_responses(413, *statuses), **options
    )


def verify_session_jwt(token: str, secret: str, now: float | None = None) -> dict[str, Any] | None:
    """The claims of a Supabase session JWT signed (HS256) with the project's JWT secret, or None when it is
    not one: another algorithm, a bad signature, expired or not yet valid, or no `exp` at all."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unbase64(parts[0]))
        claims = json.loads(_unbase64(parts[1]))
        signature = _unbase64(parts[2])
    except (binascii.Error, ValueError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return None
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return None
    now = time.time() if now is None else now
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        return None
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now):
        return None
    return claims


def _unbase64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def session_user(request: Request) -> str | None:
    """Whose data this request may read: None for a service key (or open reads: everything), else the `sub`
    of a signed-in user's JWT (Authorization: Bearer, or `?access_token=` for EventSource, which sends no
    headers). Raises 401 for anything else."""
    settings: ApiSettings = request.app.state.settings
    presented = _presented_key(request)
    if presented is None and reads_are_open(request):
        return None
    if presented is not None and any(hmac.compare_digest(presented.encode(), k.encode()) for k in settings.keys):
        return None
    token = presented or request.query_params.get("access_token")
    if token and settings.jwt_secret:
        claims = verify_session_jwt(token, settings.jwt_secret)
        if claims is not None and claims.get("role") == "authenticated":
            sub = claims.get("sub")
            if isinstance(sub, str) and sub:
                return sub
    if token is None:
        raise _unauthorized("missing key: send Authorization: Bearer <service key or the user's session JWT>")
    if not settings.jwt_secret:
        raise _unauthorized("invalid key (user session JWTs need SUPABASE_JWT_SECRET set on this server)")
    raise _unauthorized("invalid key or session JWT")
