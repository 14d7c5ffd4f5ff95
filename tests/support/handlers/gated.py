"""A handler module that takes as long to import as a test wants: a worker held at that moment of its start-up.

With $IMPORT_GATE set, importing it waits for the worker's start-up thread (connecting and checking the
schema) to finish, creates `$IMPORT_GATE.<pid>` to say so, then waits until the file $IMPORT_GATE exists.
With $IMPORT_GATE_ONLY_IN set, only a process whose command line has that word waits (`worker-process`: the
children of `worker --processes N`, not their supervisor).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

GATE_POLL_SECONDS = 0.01
GATE_MAX_SECONDS = 120.0


def _held_here() -> bool:
    only_in = os.environ.get("IMPORT_GATE_ONLY_IN")
    return "IMPORT_GATE" in os.environ and (not only_in or only_in in sys.argv)


if _held_here():
    gate = Path(os.environ["IMPORT_GATE"])
    for thread in threading.enumerate():
        if thread.name == "supaworker-start":  # cli/running.py's start-up thread
            thread.join()
    Path(f"{gate}.{os.getpid()}").touch()
    deadline = time.monotonic() + GATE_MAX_SECONDS
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(GATE_POLL_SECONDS)
