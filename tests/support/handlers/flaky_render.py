"""An application's `render`, loaded with `--import`: it refuses to run while the file named by
FAIL_RENDER_FLAG exists and otherwise runs the built-in render, so a test can watch a step fail, fix the
cause, and retry it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import supaworker
from supaworker.builtins import as_handler
from supaworker.config import get_settings
from supaworker.handlers import BUILTIN_HANDLERS

_builtin_render = as_handler(BUILTIN_HANDLERS["render"], get_settings().artifacts_dir)


@supaworker.handler("render")
def render(job: supaworker.Job) -> dict[str, Any]:
    flag = Path(os.environ["FAIL_RENDER_FLAG"])
    if flag.exists():
        raise supaworker.UnrecoverableError(f"cannot render {job.payload['title']!r}: {flag.read_text()}")
    return _builtin_render(job)
