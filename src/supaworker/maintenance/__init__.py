"""Maintenance services: leader election, the periodic-job scheduler and the pruner.

Each is a small class whose `run_once()` does one pass and returns counts (tests call it directly);
`MaintenanceService` is the worker's hook that runs them on intervals, the last two on the leader only.
"""

from .leader import LEADER_RENEW_SECONDS, LEADER_TTL_SECONDS, LeaderElector
from .pruner import PRUNE_BATCH_SIZE, Pruner, PrunerConfig
from .scheduler import PeriodicScheduler
from .service import MaintenanceConfig, MaintenanceService

__all__ = [
    "LEADER_RENEW_SECONDS",
    "LEADER_TTL_SECONDS",
    "PRUNE_BATCH_SIZE",
    "LeaderElector",
    "MaintenanceConfig",
    "MaintenanceService",
    "PeriodicScheduler",
    "Pruner",
    "PrunerConfig",
]
