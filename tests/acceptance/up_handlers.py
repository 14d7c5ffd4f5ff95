"""Handlers for the `supaworker up` test: `echo` returns its payload; `analysis` stands in for a brief step
when the built-in handlers are not installed."""

from __future__ import annotations

from typing import Any

import supaworker


@supaworker.handler("echo")
async def echo(job: supaworker.Job) -> Any:
    return job.payload
