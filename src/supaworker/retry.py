"""Riding out a database that is away for a while: which errors are worth retrying, and how long to wait.

`TRANSIENT_ERRORS` are what a lost connection, a restarting server, a full pool or an unreachable PostgREST
raise; the stores raise a session a pooler ended as one too (`ended_sessions_as_lost`). Anything else (a bad statement,
a constraint) is a bug or bad input and is never retried blindly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from psycopg_pool import PoolTimeout

from .errors import DatabaseUnavailable

T = TypeVar("T")


class SessionEnded(psycopg.OperationalError):
    """The server, or a pooler in front of it, ended the session with a FATAL error of a class psycopg does not
    take for a lost connection. Supavisor, Supabase's pooler, reports the server connection it lost or could
    not check out so: SQLSTATE XX000, `(EDBHANDLEREXITED) connection to database closed ...` or `(ECHECKOUTTIMEOUT)
    ...`. The session is gone either way; another connection may well work."""


@contextmanager
def ended_sessions_as_lost() -> Iterator[None]:
    """Raises an error that ended the session (see SessionEnded) as a SessionEnded; any other as it is."""
    try:
        yield
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.OperationalError) or exc.diag.severity_nonlocalized != "FATAL":
            raise
        raise SessionEnded(str(exc).strip()) from exc


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    PoolTimeout,
    DatabaseUnavailable,
)

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 15.0


class Backoff:
    """Delays between attempts: `first`, doubled after each failure up to `cap`; `reset()` after a success."""

    def __init__(self, first: float = FIRST_DELAY_SECONDS, cap: float = MAX_DELAY_SECONDS) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (capped)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay

    async def sleep(self) -> None:
        await asyncio.sleep(self.next())


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    extra: dict[str, object] | None = None,
    on_error: Callable[[], None] | None = None,
    backoff: Backoff | None = None,
) -> T:
    """Runs `operation` until it succeeds, waiting with backoff after each transient error, which is logged as
    "`what` failed, retrying" (and reported to `on_error`, e.g. to note that the database had trouble).
    Other errors and cancellation go to the caller."""
    backoff = backoff or Backoff()
    while True:
        try:
            return await operation()
        except TRANSIENT_ERRORS as exc:
            if on_error is not None:
                on_error()
            delay = backoff.next()
            log.warning(
                f"{what} failed, retrying", extra={**(extra or {}), "error": str(exc).strip(), "retry_in": delay}
            )
            await asyncio.sleep(delay)


# What a background pass (maintenance, the live feed's sample) survives: a transient error, or any other the
# database raised, logged and tried again on the next pass, so that one bad pass never ends the loop.
DATABASE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error, *TRANSIENT_ERRORS)
