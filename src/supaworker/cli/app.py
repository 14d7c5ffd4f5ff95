"""The `supaworker` command group: its context, input checks shared by commands, and errors as exit codes.

Exit codes (stable, for scripts):
    0  success
    1  unexpected error
    2  bad input: invalid option, JSON, status or job field (nothing was written); a port `up` needs is taken;
       `migrate`/`up`: SUPAWORKER_SCHEMA is `public` or a schema holding other objects (nothing was changed)
    3  configuration: no database configured, or the database cannot be reached
    4  schema: not migrated (run `supaworker migrate`), or migrated by a newer supaworker
    5  not found: no job or brief with that id
    6  conflict: the job's state does not allow the action (e.g. retrying a completed job)
    7  `wait`: the job ended failed or cancelled
    8  `wait`: the job did not finish within --timeout
    9  doctor: at least one check failed
  130  stopped at once before running jobs finished: by a second SIGINT/SIGTERM, or a stop still unfinished
       after the grace period and a lease (a database that stopped answering mid-statement)
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any, NoReturn, TypeVar

import click
import psycopg
from pydantic import ValidationError

from ..config import Settings, get_settings
from ..db import ConnectionProfile, probe, resolve_conninfo
from ..errors import (
    BriefNotFound,
    ConfigError,
    DatabaseUnavailable,
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    MigrationError,
    SchemaInUse,
)
from ..log import configure_logging
from ..rules import MAX_PAYLOAD_DEPTH
from .output import printable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_CONFIG = 3
EXIT_SCHEMA = 4
EXIT_NOT_FOUND = 5
EXIT_CONFLICT = 6
EXIT_JOB_FAILED = 7
EXIT_WAIT_TIMEOUT = 8
EXIT_DOCTOR_FAILED = 9

F = TypeVar("F", bound=Callable[..., Any])

_ERROR_EXITS: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidJob, EXIT_BAD_INPUT),
    (SchemaInUse, EXIT_BAD_INPUT),
    (ConfigError, EXIT_CONFIG),
    (DatabaseUnavailable, EXIT_CONFIG),
    (MigrationError, EXIT_SCHEMA),
    (JobNotFound, EXIT_NOT_FOUND),
    (BriefNotFound, EXIT_NOT_FOUND),
    (InvalidTransition, EXIT_CONFLICT),
)


def fail(message: str, code: int) -> NoReturn:
    """Prints `error: MESSAGE` on stderr and exits with `code`."""
    # A message can quote what the database holds (`wait` gives the job's error).
    click.echo(f"error: {printable(message, multiline=True)}", err=True)
    sys.exit(code)


def _variable(loc: tuple[int | str, ...]) -> str:
    """The variable a bad setting came from. Pydantic names the first of a setting's names (`PORT=-1` was
    reported as SUPAWORKER_API_PORT); the one the environment sets is the one to name."""
    from ..api.settings import ApiSettings
    from ..config import Settings

    name = ".".join(map(str, loc))
    present = {key.upper() for key in os.environ}
    for settings in (Settings, ApiSettings):
        for field in settings.model_fields.values():
            alias = field.validation_alias
            choices = [c for c in getattr(alias, "choices", ()) if isinstance(c, str)]
            if name in choices:
                return next((c for c in choices if c.upper() in present), name)
    return name


def handle_errors(func: F) -> F:
    """Turns the errors supaworker raises on purpose into one line and a documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            # The location is the environment variable (or .env.local key) that holds the bad value.
            problems = "; ".join(f"{_variable(e['loc']) or exc.title}: {e['msg']}" for e in exc.errors())
            fail(f"invalid configuration: {problems}", EXIT_CONFIG)
        except psycopg.errors.UndefinedTable as exc:
            fail(
                f"supaworker schema not found ({str(exc).splitlines()[0]}); run `supaworker migrate`",
                EXIT_SCHEMA,
            )
        except psycopg.OperationalError as exc:
            fail(f"cannot reach the database: {str(exc).strip()}", EXIT_CONFIG)
        except Exception as exc:
            for kind, code in _ERROR_EXITS:
                if isinstance(exc, kind):
                    fail(str(exc), code)
            raise

    return wrapper  # type: ignore[return-value]


class CommandContext:
    """Settings and the database connection, resolved once and only when a command needs them."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._profile: ConnectionProfile | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
            configure_logging(self._settings.log_level, self._settings.log_format)
        return self._settings

    @property
    def profile(self) -> ConnectionProfile:
        return self.connect()

    def connect(self, then: Callable[[psycopg.Connection[Any]], None] | None = None) -> ConnectionProfile:
        """The profile, probed on first use; `then` runs on a connection to the database (the probe's, when this
        call probes)."""
        if self._profile is not None:
            if then is not None:
                with psycopg.connect(self._profile.conninfo, prepare_threshold=None) as conn:
                    then(conn)
            return self._profile
        settings = self.settings
        conninfo = resolve_conninfo(settings, allow_embedded=True)
        if not settings.database_url:
            from .. import embedded

            click.echo(
                f"note: no DATABASE_URL, so this uses the embedded PostgreSQL in {embedded.data_dir(settings)}; "
                "it keeps running after this command (`supaworker embedded stop` stops it)",
                err=True,
            )
        self._profile = probe(conninfo, settings.pooler_mode, then=then)
        return self._profile

    def store(self) -> Any:
        from .. import client

        # The database the profile found (the embedded one included), for the process-wide pool.
        settings = self.settings.model_copy(update={"database_url": self.profile.conninfo})
        return client.get_store(settings)


pass_ctx = click.make_pass_decorator(CommandContext, ensure=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def command(group: click.Group, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """`group.command(...)` for a function taking the `CommandContext` first, its errors mapped to exit codes."""

    def decorate(func: Callable[..., Any]) -> click.Command:
        return group.command(*args, **kwargs)(pass_ctx(handle_errors(func)))

    return decorate


# The module of `supaworker.cli` that registers each command on `main`, imported when that command runs.
COMMAND_MODULES: dict[str, str] = {
    **dict.fromkeys(("cancel", "enqueue", "jobs", "retry", "show", "stats", "wait"), "jobs"),
    "brief": "briefs",
    **dict.fromkeys(("controls", "fairness", "limit", "pause", "resume"), "controls"),
    "periodic": "periodic",
    **dict.fromkeys(
        ("doctor", "embedded", "history", "migrate", "prune", "schema", "supabase", "tables"), "operations"
    ),
    **dict.fromkeys(("up", "worker", "worker-process"), "running"),
}


class LazyGroup(click.Group):
    """A group whose commands are registered by modules imported on first use: `supaworker worker` does not
    load what enqueueing, briefs or the database's upkeep need (a third of its start-up).

    `lazy_commands` maps each command's name to the module (under this package) whose import registers it.
    Anything that needs every command (the group's help, completion, a name that is not a command, for its
    "did you mean") imports them all first, so it reads the same as with every module imported up front.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def _load(self, module: str) -> None:
        import_module(f"{__package__}.{module}")

    def _load_all(self) -> None:
        for module in sorted(set(self.lazy_commands.values())):
            self._load(module)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module = self.lazy_commands.get(cmd_name)
            if module is None:
                self._load_all()
            else:
                self._load(module)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=COMMAND_MODULES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="supaworker")
def main() -> None:
    """supaworker: a PostgreSQL job queue and worker (Redis/Bull without Redis)."""


def parse_payload(payload: str | None, option: str = "--payload") -> Any:
    """The JSON an option holds (`{}` when it is absent); exits 2 on invalid or too deeply nested JSON, or on
    an integer too long for Python to read."""
    if payload is None:
        return {}
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not valid JSON: {exc}", EXIT_BAD_INPUT)
    except ValueError:
        # Python converts at most sys.get_int_max_str_digits() digits of text to an int.
        fail(
            f"{option} holds an integer of more than {sys.get_int_max_str_digits()} digits, which cannot be read",
            EXIT_BAD_INPUT,
        )
    except RecursionError:
        fail(f"{option} is nested too deeply (the limit is {MAX_PAYLOAD_DEPTH} levels)", EXIT_BAD_INPUT)
