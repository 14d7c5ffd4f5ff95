"""Maintenance services: leader election, the periodic-job scheduler, the pruner, the vacuumer and the rescuer.

Each is a small class whose `run_once()` does one pass and returns counts (tests call it directly);
`MaintenanceService` is the worker's hook that runs the first four on intervals, all but the election on the
elected leader only. Every worker runs its own rescuer (`worker/runner.py`).

Imported on first use, so that a worker's start-up does not wait for what it needs only later.
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .history import HistoryConfig, HistoryKeeper, history_config
    from .leader import LEADER_RENEW_SECONDS, LEADER_TTL_SECONDS, LeaderElector
    from .pruner import PRUNE_BATCH_SIZE, Pruner, PrunerConfig
    from .scheduler import PeriodicScheduler
    from .service import MaintenanceConfig, MaintenanceService

_WHERE = {
    "HistoryConfig": "history",
    "HistoryKeeper": "history",
    "history_config": "history",
    "LEADER_RENEW_SECONDS": "leader",
    "LEADER_TTL_SECONDS": "leader",
    "LeaderElector": "leader",
    "PRUNE_BATCH_SIZE": "pruner",
    "Pruner": "pruner",
    "PrunerConfig": "pruner",
    "PeriodicScheduler": "scheduler",
    "MaintenanceConfig": "service",
    "MaintenanceService": "service",
}

__getattr__ = lazy_attributes(__name__, _WHERE)


__all__ = [
    "LEADER_RENEW_SECONDS",
    "LEADER_TTL_SECONDS",
    "PRUNE_BATCH_SIZE",
    "HistoryConfig",
    "HistoryKeeper",
    "LeaderElector",
    "MaintenanceConfig",
    "MaintenanceService",
    "PeriodicScheduler",
    "Pruner",
    "PrunerConfig",
    "history_config",
]
