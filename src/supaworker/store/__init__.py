"""The one place that executes the queue's SQL: `Store` for applications, the API and the CLI; `WorkerStore` for
the worker's hot path on an async pool. Every query is a named file in `sql/queries/`; each part of the Store
owns the queries of one area.
"""

from .base import StoreBase, reading_cursor
from .briefs import BriefQueries
from .console import ConsoleQueries
from .jobs import JobQueries
from .monitoring import MonitoringQueries
from .operations import OperationQueries
from .worker import OPEN_TIMEOUT_SECONDS, WorkerStore


class Store(JobQueries, BriefQueries, MonitoringQueries, OperationQueries, ConsoleQueries, StoreBase):
    """Synchronous access to every query but the worker's: each call borrows a connection from the pool, or
    uses the caller's `conn` (and then runs inside the caller's transaction, committing nothing itself)."""


__all__ = ["OPEN_TIMEOUT_SECONDS", "Store", "StoreBase", "WorkerStore", "reading_cursor"]
