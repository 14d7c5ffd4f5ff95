"""The signals that stop a worker process, and what they do before its event loop takes them over.

SIGINT and SIGTERM stop a worker gracefully; its event loop handles them once the worker runs
(`worker/main.py`). Before that, while the worker command loads its handler modules and connects
(`cli/running.py`), it has claimed nothing, so there is nothing to finish or hand back:
`exit_on_stop_while_starting` makes a stop end the process at once with exit code 0, not the interpreter's
defaults (killed by SIGTERM or by a supervisor's STOP_SIGNAL; for SIGINT a KeyboardInterrupt traceback, or
click's "Aborted!" and exit 1). While asyncio builds the event loop, `hold_stops` keeps a stop for the loop.
Before the command runs (Python and the CLI's own imports) the defaults still apply.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("supaworker.worker")

# What a supervisor (`--processes N`) sends to stop a worker gracefully, and to make it exit at once. Neither
# counts as one of the worker's own signals: under systemd's control-group kill a worker gets the supervisor's
# stop and its own SIGTERM, in either order, and that is one stop.
STOP_SIGNAL = signal.SIGUSR2
FORCE_SIGNAL = signal.SIGUSR1


def exit_on_stop_while_starting(*, supervisor: bool = False) -> None:
    """From now until an event loop installs handlers of its own, SIGINT, SIGTERM and STOP_SIGNAL exit at once
    with 0: wherever the main thread is (a handler module's import, waiting for the database), it raises
    SystemExit there. The start-up thread is a daemon thread: the process does not wait for it. A supervisor
    is never sent STOP_SIGNAL, and its event loop takes over only SIGINT and SIGTERM: it keeps the default."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "signal received while starting: exiting, no job claimed",
            extra={"signal": signal.Signals(signum).name},
        )
        sys.exit(0)

    for signum in (signal.SIGINT, signal.SIGTERM) if supervisor else (signal.SIGINT, signal.SIGTERM, STOP_SIGNAL):
        signal.signal(signum, stop)


def hold_stops(signals: Sequence[int]) -> list[int]:
    """From now until an event loop takes `signals` over, each one received is only added to the list returned,
    for the loop to act on once its handlers are in place. Exiting instead (exit_on_stop_while_starting) would
    raise SystemExit while asyncio builds its loop, leaving it half-built (a traceback when it is collected)."""
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signum)

    for signum in signals:
        signal.signal(signum, hold)
    return held
