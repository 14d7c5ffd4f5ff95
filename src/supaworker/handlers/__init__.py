"""Built-in step handlers for briefs: analysis, asset preparation, storyboards, media generation, render.

Each handler is a plain synchronous function ``handler(ctx: StepContext) -> dict`` that is
deterministic (same input, same output apart from file paths), works offline, and raises
:class:`PayloadError` for unusable payloads. See :mod:`supaworker.handlers.base` for the result
conventions (JSON-serialisable results, absolute file paths, a ``files`` list).

Brief pipelines (:data:`supaworker.handlers.base.PIPELINES`):

- video: analysis -> asset_prep -> video_generation -> render
- image: analysis -> asset_prep -> image_processing -> render
- audio: analysis -> asset_prep -> render
- text: analysis -> text_analysis -> render
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import import_module
from typing import Any

from .base import PayloadError, StepContext

StepFunc = Callable[[StepContext], dict[str, Any]]

# Job type (also its module's name) -> the function that does it. Imported on first use: the media steps load
# Pillow, which a worker that never runs them should not wait for at start-up.
_STEPS = {
    "analysis": "analyse",
    "asset_prep": "prepare_assets",
    "storyboard": "build_storyboard",
    "render": "render",
    "video_generation": "generate_video",
    "image_processing": "process_images",
    "text_analysis": "analyse_text",
}


class _Steps(Mapping[str, StepFunc]):
    def __getitem__(self, job_type: str) -> StepFunc:
        func: StepFunc = getattr(import_module(f".{job_type}", __name__), _STEPS[job_type])
        return func

    def __iter__(self) -> Iterator[str]:
        return iter(_STEPS)

    def __len__(self) -> int:
        return len(_STEPS)


BUILTIN_HANDLERS: Mapping[str, StepFunc] = _Steps()

__all__ = ["BUILTIN_HANDLERS", "PayloadError", "StepContext", "StepFunc"]
