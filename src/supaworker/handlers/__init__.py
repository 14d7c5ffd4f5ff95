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

from collections.abc import Callable
from typing import Any

from .analysis import analyse
from .asset_prep import prepare_assets
from .base import PayloadError, StepContext
from .image_processing import process_images
from .render import render
from .storyboard import build_storyboard
from .text_analysis import analyse_text
from .video_generation import generate_video

BUILTIN_HANDLERS: dict[str, Callable[[StepContext], dict[str, Any]]] = {
    "analysis": analyse,
    "asset_prep": prepare_assets,
    "storyboard": build_storyboard,
    "render": render,
    "video_generation": generate_video,
    "image_processing": process_images,
    "text_analysis": analyse_text,
}

__all__ = ["BUILTIN_HANDLERS", "PayloadError", "StepContext"]
