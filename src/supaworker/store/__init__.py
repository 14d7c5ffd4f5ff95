"""The one place that executes the queue's SQL: `Store` for applications, the API and the CLI; `WorkerStore` for
the worker's hot path on an async pool. Every query is a named file in `sql/queries/`; each part of the Store
owns the queries of one area.

Imported on first use, so that a worker, which needs only `WorkerStore` to start, does not load the rest
(and what it needs: new jobs' checks, briefs, the console's queries).
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .base import StoreBase, reading_cursor
    from .sync import Store
    from .worker import OPEN_TIMEOUT_SECONDS, WorkerStore

_WHERE = {
    "OPEN_TIMEOUT_SECONDS": "worker",
    "Store": "sync",
    "StoreBase": "base",
    "WorkerStore": "worker",
    "reading_cursor": "base",
}

__getattr__ = lazy_attributes(__name__, _WHERE)


__all__ = ["OPEN_TIMEOUT_SECONDS", "Store", "StoreBase", "WorkerStore", "reading_cursor"]
