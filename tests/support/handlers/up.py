"""An application's handler for the `supaworker up` test: `echo` returns its payload (the built-in job types
run beside it)."""

from __future__ import annotations

from typing import Any

import supaworker


@supaworker.handler("echo")
async def echo(job: supaworker.Job) -> Any:
    return job.payload
