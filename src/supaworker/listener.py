"""One LISTEN connection kept open: the worker's wake-ups and cancels, and the live feed's new-job pokes.

NOTIFY is a hint, never the only path: whoever listens also polls. A notification sent while the connection
was down is lost, so every (re)connection is reported (`on_connect`) and the owner looks for what it missed.
Behind a transaction pooler LISTEN receives nothing; owners that know they are behind one do not listen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql as pgsql

from .retry import Backoff

log = logging.getLogger("supaworker.listener")


def listen_statement(channel: str) -> pgsql.Composed:
    """`LISTEN "channel"`, quoted (a channel is an identifier, not a string)."""
    return pgsql.SQL("LISTEN {}").format(pgsql.Identifier(channel))


class Listener:
    """`run()` keeps a connection LISTENing on `channels` and calls `on_notify(channel, payload)` for each
    notification, reconnecting with backoff until cancelled. The first failure is logged once as
    "LISTEN unavailable" (the owner keeps polling meanwhile)."""

    def __init__(
        self,
        conninfo: str,
        channels: Sequence[str],
        on_notify: Callable[[str, str], None],
        *,
        on_connect: Callable[[], None] | None = None,
        connect_kwargs: dict[str, Any] | None = None,
        level: int = logging.WARNING,
    ) -> None:
        self.conninfo = conninfo
        self.channels = list(channels)
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.connect_kwargs = connect_kwargs or {}
        self.level = level  # how loudly the first failure is reported (an optional listener says it at INFO)
        self.connects = 0

    async def run(self) -> None:
        backoff = Backoff()
        warned = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, **{**self.connect_kwargs, "autocommit": True, "prepare_threshold": None}
                ) as conn:
                    for channel in self.channels:
                        await conn.execute(listen_statement(channel))
                    backoff.reset()
                    self.connects += 1
                    if self.on_connect is not None:
                        self.on_connect()
                    async for notify in conn.notifies():
                        self.on_notify(notify.channel, notify.payload)
            except psycopg.Error as exc:
                if not warned:
                    log.log(self.level, "LISTEN unavailable, polling meanwhile", extra={"error": str(exc).strip()})
                    warned = True
            await backoff.sleep()
