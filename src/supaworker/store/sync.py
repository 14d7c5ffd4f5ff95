"""`Store`: every query but the worker's, synchronous, for applications, the API and the CLI."""

from .base import StoreBase
from .briefs import BriefQueries
from .console import ConsoleQueries
from .jobs import JobQueries
from .monitoring import MonitoringQueries
from .operations import OperationQueries


class Store(JobQueries, BriefQueries, MonitoringQueries, OperationQueries, ConsoleQueries, StoreBase):
    """Synchronous access to every query but the worker's: each call borrows a connection from the pool, or
    uses the caller's `conn` (and then runs inside the caller's transaction, committing nothing itself)."""
