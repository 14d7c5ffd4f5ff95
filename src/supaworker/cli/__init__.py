"""The `supaworker` command.

`app` holds the command group, its context and the exit codes (listed there); each other module adds the
commands of one topic: `jobs`, `briefs`, `controls`, `periodic`, `operations` (the database's upkeep) and
`running` (`worker` and `up`). `main` imports a topic's module when one of its commands is asked for
(`app.COMMAND_MODULES` says which), so a command loads only what it needs.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
