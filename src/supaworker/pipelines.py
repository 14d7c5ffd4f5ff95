"""The brief pipelines, as plain data: which jobs a brief runs, in which order, for each media type.

This is their one definition: the SQL API's `pipelines()` and `brief_steps()` are rendered from it (see
`rules`), and the CLI, the REST API's models and the built-in steps read it here, without a database.

A brief without `use_pipeline` runs `SINGLE_STEP` only. With it, it runs `PIPELINES[media_type]`: each step
is a job that depends on the one before it (see `create_brief_with_job`), so it starts only once that one
completed, and it reads the results of the steps before it as `job.upstream`.

An application can run other sequences (for instance with `storyboard`) by passing `steps=` to
`create_brief_with_job`, or build any graph with `create_job(..., depends_on=[...])`.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import rules
from .validation import text_problem

MEDIA_TYPES: tuple[str, ...] = ("video", "image", "audio", "text")

# The built-in job types (supaworker.handlers implements each; an application may replace any of them).
JOB_TYPES: tuple[str, ...] = (
    "analysis",
    "asset_prep",
    "storyboard",
    "image_processing",
    "video_generation",
    "text_analysis",
    "render",
)

SINGLE_STEP: tuple[str, ...] = ("analysis",)

PIPELINES: dict[str, tuple[str, ...]] = {
    "video": ("analysis", "asset_prep", "video_generation", "render"),
    "image": ("analysis", "asset_prep", "image_processing", "render"),
    "audio": ("analysis", "asset_prep", "render"),
    "text": ("analysis", "text_analysis", "render"),
}

MAX_STEPS = rules.MAX_STEPS


def steps_for(media_type: str, use_pipeline: bool) -> tuple[str, ...]:
    """The job types a brief runs, in order."""
    if media_type not in PIPELINES:
        raise ValueError(f"media_type must be one of {', '.join(MEDIA_TYPES)}, not {media_type!r}")
    return PIPELINES[media_type] if use_pipeline else SINGLE_STEP


def check_steps(steps: Sequence[str]) -> tuple[str, ...]:
    """Validates an application's own step list; returns it as a tuple. Raises ValueError naming the problem."""
    if isinstance(steps, str) or not isinstance(steps, Sequence):
        raise ValueError("steps must be a list of job types")
    if not 1 <= len(steps) <= MAX_STEPS:
        raise ValueError(rules.STEPS_MESSAGE)
    for step in steps:
        if not isinstance(step, str) or not step.strip() or len(step) > rules.MAX_TYPE_LENGTH:
            raise ValueError(f"{rules.STEP_MESSAGE}{step!r}")
        problem = text_problem(step)
        if problem:
            raise ValueError(f"step {problem}: {step!r}")
    return tuple(steps)
