"""The API application: routes, error responses, the change feed's lifecycle, events and metrics.

Errors always answer JSON `{"error": "<what was wrong>"}` (422 adds `detail`, one entry per bad field):
400 bad query, 401 no or wrong key, 404 no such job or brief, 409 the state forbids the action, 413 body
too large, 422 invalid body, 503 database unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import errors
from ..feed import ChangeFeed, JobMetrics
from ..store import Store
from . import briefs, console, jobs
from .auth import reads
from .contract import EVENT_STREAM_RESPONSE, event_stream, refine_document
from .docs import add_offline_docs
from .limits import BodySizeLimit
from .security import SecurityHeaders
from .settings import ApiSettings

log = logging.getLogger("supaworker.api")

KEEPALIVE_SECONDS = 15.0
CLIENT_RETRY_MS = 2000

_STATUS_OF_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (errors.JobNotFound, 404),
    (errors.BriefNotFound, 404),
    (errors.InvalidTransition, 409),
    (errors.DatabaseUnavailable, 503),
)


def create_app(
    store: Store,
    settings: ApiSettings,
    *,
    read_store: Store | None = None,
    listen_conninfo: str | None = None,
    feed: ChangeFeed | None = None,
) -> FastAPI:
    """The API (and, mounted by the caller, the dashboard) on one Store, or on two.

    `store` is the primary: every write, the reads right after a client's own write (one job or brief by
    id, the answer to a write), the workers' sessions, and LISTEN (`listen_conninfo`; None: poll only).
    `read_store` (a streaming replica, SUPAWORKER_READ_URL; default `store`) serves everything else that
    is only shown: the lists and stats of the API, the dashboard's pages and panels, the change feed's
    samples and so `/metrics`. Routes take theirs with `store_of(request)` or `read_store_of(request)`.
    """
    read_store = read_store or store
    feed = feed or ChangeFeed(
        read_store, listen_conninfo=listen_conninfo, count_cap=settings.count_cap, sessions_store=store
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await feed.start()
        try:
            yield
        finally:
            await feed.close()

    app = FastAPI(
        title="supaworker",
        summary="PostgreSQL job queue: jobs, briefs, live events and metrics.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from packaged files below, so /docs works offline
        openapi_url="/openapi.json",
    )
    add_offline_docs(app)
    app.state.store = store
    app.state.read_store = read_store
    app.state.settings = settings
    app.state.feed = feed
    app.state.metrics = JobMetrics(feed)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.include_router(jobs.router)
    app.include_router(briefs.router)
    app.include_router(console.router)
    _add_error_handlers(app)
    generate_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = refine_document(generate_document(), reads_open=settings.reads_are_public)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @reads(
        app,
        "/api/events",
        "Server-sent events",
        tags=["events"],
        response_class=StreamingResponse,
        responses={200: EVENT_STREAM_RESPONSE},
    )
    async def events(request: Request) -> StreamingResponse:
        """A `text/event-stream` of job and brief changes: `hello` at once, then one `change` event per
        sample that saw something change (bursts are debounced), and a comment every 15 s to keep proxies
        from closing the stream. A `change` with `"resync": true` means events were dropped for a slow
        client: reload the view."""
        return event_stream(_event_stream(request.app.state.feed))

    @reads(
        app,
        "/metrics",
        "Prometheus metrics",
        tags=["metrics"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def format_event(name: str, data: dict[str, Any]) -> str:
    """One SSE message (JSON has no raw newlines, so one data line suffices)."""
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


async def _event_stream(feed: ChangeFeed) -> AsyncIterator[str]:
    queue = feed.subscribe()
    try:
        yield f"retry: {CLIENT_RETRY_MS}\n\n"
        yield format_event("hello", feed.hello())
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    event = await queue.get()
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if event is None:
                return
            yield format_event("change", event)
    finally:
        feed.unsubscribe(queue)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _unprocessable(field: str, where: str, reason: str) -> JSONResponse:
    """The 422 body, as for pydantic's checks: the message, and one detail entry naming the field."""
    return _error(422, f"invalid request: {reason}", detail=[{"field": field, "in": where, "reason": reason}])


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route answers at this request's path, asked of the router itself."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.router.routes
        )
    ]


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, ValueError | RecursionError):
            # FastAPI's 400 for a body it could not decode: a bad body is a 422 like any other. A ValueError
            # that is not a UnicodeDecodeError is json refusing an integer of more than 4,300 digits.
            if isinstance(cause, UnicodeDecodeError):
                why = "not UTF-8"
            elif isinstance(cause, RecursionError):
                why = "nested too deeply to parse"
            else:
                why = "a number too long to read"
            return _unprocessable("body", "body", f"the body is not valid JSON ({why})")
        response = _error(exc.status_code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            # Starlette names the methods of the first route the path matched; a path has one route per method.
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = []
        for problem in exc.errors():
            loc = [str(part) for part in problem.get("loc", ())]
            field = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
            detail.append({"field": field, "in": loc[0] if loc else "", "reason": problem.get("msg", "invalid")})
        message = "; ".join(f"{d['field'] or d['in']}: {d['reason']}" for d in detail)
        return _error(422, f"invalid request: {message}", detail=detail)

    @app.exception_handler(errors.SupaworkerError)
    async def supaworker_error(_: Request, exc: errors.SupaworkerError) -> JSONResponse:
        if isinstance(exc, errors.InvalidJob):
            return _unprocessable(exc.field or "", "body", str(exc))
        for kind, status in _STATUS_OF_ERROR:
            if isinstance(exc, kind):
                return _error(status, str(exc))
        log.exception("unexpected error", exc_info=exc)
        return _error(500, "internal error")

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unreachable", extra={"error": str(exc).strip()})
        return _error(503, "database unreachable; try again shortly")
