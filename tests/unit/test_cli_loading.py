"""The `supaworker` command loads a command's module when that command is asked for, and only then."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from supaworker.cli import main
from supaworker.cli.app import COMMAND_MODULES
from tests.support.worker import OTHER_COMMAND_MODULES

from ..conftest import REPO

# What enqueueing, briefs, controls and the database's upkeep need, and `supaworker worker` does not.
NOT_FOR_THE_WORKER = [
    *OTHER_COMMAND_MODULES,
    "supaworker.briefs",
    "supaworker.client",
    "supaworker.controls",
    "supaworker.embedded",
    "supaworker.pipelines",
]


def loaded_after(code: str) -> set[str]:
    """The supaworker modules a fresh interpreter holds after running `code`."""
    report = "import json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('supaworker'))))"
    script = f"{code}\n{report}"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_importing_the_command_loads_no_command_module() -> None:
    loaded = loaded_after("import supaworker.cli")
    assert not loaded & {f"supaworker.cli.{module}" for module in COMMAND_MODULES.values()}
    assert not loaded & set(NOT_FOR_THE_WORKER)


def test_worker_command_loads_only_what_the_worker_needs() -> None:
    code = "from supaworker.cli import main\nmain(['worker', '--help'], standalone_mode=False)"
    loaded = loaded_after(code)
    assert "supaworker.cli.running" in loaded
    assert not loaded & set(NOT_FOR_THE_WORKER)


def test_every_command_is_registered_by_the_module_the_group_names() -> None:
    ctx = click.Context(main)
    names = main.list_commands(ctx)  # loads every module
    assert sorted(COMMAND_MODULES) == names
    for name in names:
        command = main.get_command(ctx, name)
        assert command is not None and command.callback is not None
        assert command.callback.__module__ == f"supaworker.cli.{COMMAND_MODULES[name]}", name
