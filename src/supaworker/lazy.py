"""Packages whose parts are imported on first use (PEP 562): `__getattr__ = lazy_attributes(__name__, WHERE)`.

A worker's start-up then does not wait for what it needs only later (maintenance, the full Store).
"""

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `package.<where[name]>` the first time `name` is asked for."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{module}", package), name)

    return __getattr__
