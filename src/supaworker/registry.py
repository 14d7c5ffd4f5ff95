"""Handler registration: `@supaworker.handler("type")` maps a job type to a function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .job import Job

HandlerFunc = Callable[[Job], Any]


@dataclass(frozen=True)
class Handler:
    type: str
    func: HandlerFunc
    is_async: bool
    timeout_seconds: float | None = None
    # Run a sync handler on the event loop instead of a thread: only for handlers that never block.
    inline: bool = False


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, type: str, func: HandlerFunc, *, timeout: float | None = None, inline: bool = False) -> Handler:
        if not type or not type.strip():
            raise ValueError("a handler needs a non-empty job type")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"handler timeout for {type!r} must be positive, not {timeout}")
        handler = Handler(type, func, inspect.iscoroutinefunction(func), timeout, inline)
        self._handlers[type] = handler
        return handler

    def get(self, type: str) -> Handler | None:
        return self._handlers.get(type)

    def types(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, type: object) -> bool:
        return type in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)


# The registry that `@handler` writes to and `supaworker worker` reads from.
default_registry = Registry()


def handler(
    type: str, *, timeout: float | None = None, inline: bool = False, registry: Registry | None = None
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Registers the decorated function as the handler of `type` (last registration wins)."""

    def decorate(func: HandlerFunc) -> HandlerFunc:
        (registry or default_registry).register(type, func, timeout=timeout, inline=inline)
        return func

    return decorate
