"""Serving the API and the dashboard together with uvicorn inside a caller's event loop (signals stay the
caller's). The one place that puts the two on one app: the API knows nothing of the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from .api.app import create_app
from .api.settings import ApiSettings
from .dashboard import add_dashboard
from .db import ConnectionProfile
from .store import Store

POOL_MAX_SIZE = 10
GRACEFUL_SHUTDOWN_SECONDS = 3


class _Server(uvicorn.Server):
    # The process that embeds the server decides what SIGINT/SIGTERM do.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """The API and dashboard on a pool of their own; `start()` returns once the port listens.

    With `read_profile` (SUPAWORKER_READ_URL, a streaming replica) a second pool serves what the API and the
    dashboard only show; writes, reads of a client's own writes, the workers' sessions and LISTEN stay on
    `profile`. Without it both are the one pool. `create_app` says which route reads where.
    """

    def __init__(
        self,
        profile: ConnectionProfile,
        schema: str,
        settings: ApiSettings,
        read_profile: ConnectionProfile | None = None,
    ) -> None:
        self.pool = _pool(profile, "supaworker:api")
        self.read_pool = _pool(read_profile, "supaworker:api-read") if read_profile is not None else None
        store = Store(self.pool, schema)
        self.app: FastAPI = create_app(
            store,
            settings,
            read_store=Store(self.read_pool, schema) if self.read_pool is not None else store,
            listen_conninfo=profile.conninfo if profile.can_listen else None,
        )
        add_dashboard(self.app)
        config = uvicorn.Config(
            self.app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self.server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float) -> None:
        """Opens the pools and starts serving; raises OSError when the port cannot be bound."""
        for pool in self._pools():
            await asyncio.to_thread(pool.open, True, timeout)
        self._task = asyncio.create_task(self._serve(), name="api-server")
        async with asyncio.timeout(timeout):
            while not self.server.started:
                if self._task.done():
                    port = self.server.config.port
                    raise OSError(f"the API server could not listen on {self.server.config.host}:{port} (in use?)")
                await asyncio.sleep(0.05)

    async def _serve(self) -> None:
        # uvicorn exits the process (SystemExit) when it cannot bind; keep that a failed start instead.
        with contextlib.suppress(SystemExit):
            await self.server.serve()

    async def stop(self) -> None:
        """Ends open event streams first (uvicorn waits for open responses), then the server and the pool."""
        await self.app.state.feed.close()
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception, SystemExit):
                await self._task
        for pool in self._pools():
            await asyncio.to_thread(pool.close)

    def _pools(self) -> list[ConnectionPool]:
        return [self.pool] if self.read_pool is None else [self.pool, self.read_pool]


def _pool(profile: ConnectionProfile, application_name: str) -> ConnectionPool:
    return ConnectionPool(
        profile.conninfo,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        kwargs={**profile.connect_kwargs, "application_name": application_name},
        # A connection the server closed (a restart, pg_terminate_backend, a pooler recycling it) is
        # replaced when it is handed out, instead of failing the request that gets it.
        check=ConnectionPool.check_connection,
        open=False,
    )
