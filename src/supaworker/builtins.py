"""The built-in job types of `supaworker.handlers`, made into worker handlers.

`supaworker worker` registers them after importing the application's `--import` modules, and only for the
types those left unregistered: a handler an application registers for `analysis` (say) replaces the
built-in one, whatever the import order. `--no-builtins` leaves them out.

Each built-in receives a `StepContext`: the job's payload, the results of the steps before it (the job's
completed ancestors, by type, from `job.upstream`) and its own artifacts directory under the configured
`artifacts_dir` (`SUPAWORKER_ARTIFACTS_DIR`): `briefs/<brief id>/<job id>-<type>/` for a brief's steps,
`jobs/<job id>-<type>/` otherwise. A `PayloadError` (bad payload) fails the job at once, without retries.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import UnrecoverableError
from .handlers import BUILTIN_HANDLERS, PayloadError, StepContext, StepFunc
from .job import Job
from .registry import HandlerFunc, Registry


def artifacts_dir_for(root: Path, job: Job) -> Path:
    """Where one job's files go (a retry of the job writes to the same place)."""
    name = f"{job.id}-{job.type}"
    if job.brief_id is not None:
        return root / "briefs" / str(job.brief_id) / name
    return root / "jobs" / name


def as_handler(func: StepFunc, artifacts_root: Path | str) -> HandlerFunc:
    """Wraps a `StepContext -> dict` function as a worker handler `Job -> dict`."""
    root = Path(artifacts_root).resolve()

    def run(job: Job) -> dict[str, Any]:
        ctx = StepContext(
            job_id=job.id,
            job_type=job.type,
            payload=job.payload,
            upstream=MappingProxyType(dict(job.upstream)),
            artifacts_dir=artifacts_dir_for(root, job),
        )
        try:
            return func(ctx)
        except PayloadError as exc:
            raise UnrecoverableError(f"bad payload for {job.type} job {job.id}: {exc}") from exc

    run.__name__ = run.__qualname__ = f"builtin_{getattr(func, '__name__', 'step')}"
    run.__doc__ = func.__doc__
    return run


def _step(job_type: str) -> StepFunc:
    """The built-in step of `job_type`, imported when its first job runs."""

    def step(ctx: StepContext) -> dict[str, Any]:
        return BUILTIN_HANDLERS[job_type](ctx)

    step.__name__ = job_type
    return step


def register_builtins(registry: Registry, artifacts_dir: Path | str) -> list[str]:
    """Registers each built-in job type the registry has no handler for yet; returns the types registered."""
    added = []
    for job_type in BUILTIN_HANDLERS:
        if job_type not in registry:
            registry.register(job_type, as_handler(_step(job_type), artifacts_dir))
            added.append(job_type)
    return added
