"""An application's own `render`, loaded with `--import`: it replaces the built-in one, the other steps of the
pipeline stay built-in."""

from __future__ import annotations

from typing import Any

import supaworker
from supaworker import Job


@supaworker.handler("render")
def render(job: Job) -> dict[str, Any]:
    return {"rendered_by": "application", "upstream": sorted(job.upstream)}
