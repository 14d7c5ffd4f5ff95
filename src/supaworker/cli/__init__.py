"""The `supaworker` command.

`app` holds the command group, its context and the exit codes (listed there); each other module adds the
commands of one topic: `jobs`, `briefs`, `controls`, `periodic`, `operations` (the database's upkeep) and
`running` (`worker` and `up`). Importing this package registers them all on `main`.
"""

from __future__ import annotations

# Imported for the commands they register on `main`.
from . import briefs, controls, jobs, operations, periodic, running  # noqa: F401
from .app import main

__all__ = ["main"]
