"""Waiting for something to happen, in bounded loops that fail naming what never happened.

The bounds only stop a broken test from hanging; nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")

WAIT_TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 0.05


def wait_until(
    check: Callable[[], T],
    what: str | Callable[[], str] = "",
    timeout: float = WAIT_TIMEOUT_SECONDS,
    interval: float = POLL_SECONDS,
) -> T:
    """Polls `check` until it returns something truthy, and returns that. A database error counts as "not
    yet" (the database itself may be what a test is breaking), and the last one is named if time runs out.
    A callable `what` is called only then, so logs it reads are those of the moment the wait gave up."""
    deadline = time.monotonic() + timeout
    last_error: psycopg.OperationalError | None = None
    while True:
        try:
            value = check()
        except psycopg.OperationalError as e:
            value, last_error = None, e  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            error = f"\nthe last check failed with: {last_error}" if last_error else ""
            raise AssertionError(f"gave up after {timeout:g}s waiting for: {described or check}{error}")
        time.sleep(interval)


async def wait_until_async(check: Callable[[], object], what: str = "", timeout: float = 20.0) -> None:
    """`wait_until` for async tests: polls without blocking the event loop the code under test runs on."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for: {what or check}")
        await asyncio.sleep(0.02)
