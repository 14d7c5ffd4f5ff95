"""`GET /health` for a worker or a supervisor: 200 while the database answers (and a supervisor has all its
worker processes running), 503 when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("supaworker.health")

PING_TIMEOUT_SECONDS = 2.0


@dataclass
class HealthSource:
    """What the endpoint reports: who is asking, how busy it is, and whether the database answers."""

    worker_id: Callable[[], str]
    active_jobs: Callable[[], Awaitable[int]]
    uptime_seconds: Callable[[], float]
    ping: Callable[[float], Awaitable[None]]
    children: Callable[[], list[int]] | None = None  # a supervisor's worker processes
    # What is wrong besides the database (a supervisor short of worker processes); None when nothing is.
    problem: Callable[[], str | None] | None = None


def build_app(source: HealthSource) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        body: dict[str, object] = {"worker_id": source.worker_id(), "uptime": round(source.uptime_seconds())}
        if source.children is not None:
            body["children"] = source.children()
        problem = source.problem() if source.problem is not None else None
        if problem:
            return JSONResponse({"status": "unhealthy", **body, "error": problem}, status_code=503)
        try:
            ping = asyncio.ensure_future(source.ping(PING_TIMEOUT_SECONDS))
            finished, _still = await asyncio.wait({ping}, timeout=PING_TIMEOUT_SECONDS + 0.5)
            if not finished:
                # Behind a pooler that holds the query, psycopg waits seconds for a cancelled query to stop:
                # answer now and let the cancellation finish in the background.
                ping.cancel()
                raise TimeoutError(f"no answer within {PING_TIMEOUT_SECONDS:g}s")
            ping.result()
            async with asyncio.timeout(PING_TIMEOUT_SECONDS + 0.5):
                body["active_jobs"] = await source.active_jobs()
        except Exception as exc:
            body.update(status="unhealthy", error=f"database unreachable: {str(exc).strip() or type(exc).__name__}")
            return JSONResponse({"status": "unhealthy", **body}, status_code=503)
        return JSONResponse({"status": "healthy", **body})

    return Starlette(routes=[Route("/health", health)])


class _QuietServer(uvicorn.Server):
    # The worker owns SIGINT/SIGTERM; the health server must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(source: HealthSource, host: str, port: int) -> None:
    """Serves until cancelled. A port in use is logged, not fatal: the worker keeps working."""
    config = uvicorn.Config(
        build_app(source), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = _QuietServer(config)
    try:
        await server.serve()
    except OSError as exc:
        log.error("health check endpoint could not start", extra={"port": port, "error": str(exc)})
    except SystemExit:  # uvicorn's way of saying it could not bind (it logged the errno)
        log.error("health check endpoint could not start", extra={"port": port, "error": "port in use or not allowed"})
    finally:
        server.should_exit = True
