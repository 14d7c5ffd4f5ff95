"""Interface shared by the built-in step handlers: the step context, the payload error and validators.

A handler is a plain synchronous function ``handler(ctx: StepContext) -> dict``. Its result must be
JSON-serialisable (the worker stores it and hands it to the next steps as ``upstream``), so results
use only dicts, lists, strings, numbers, booleans and None, and keep order-sensitive data in lists
(JSONB does not preserve key order).

File convention: every path in a result is an absolute path string. Steps of one brief usually get
different ``artifacts_dir`` directories, so relative paths could not be resolved by later steps.
Every handler that writes files also returns them in ``result["files"]`` (a list of absolute paths),
which is what ``render`` collects into the final manifest.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# One definition of the brief pipelines; ``analysis`` reports the tail of its media type's one as its plan.
from ..pipelines import MEDIA_TYPES as MEDIA_TYPES
from ..pipelines import PIPELINES as PIPELINES

# Free-text fields are bounded so one oversized payload cannot make a step slow or huge.
MAX_TEXT_CHARS = 20_000


class PayloadError(ValueError):
    """Raised when a job's payload (or an upstream result it relies on) is unusable."""


@dataclass(frozen=True)
class StepContext:
    """Everything a handler gets: the job, its payload, upstream results and a directory for files."""

    job_id: int
    job_type: str
    payload: dict[str, Any]
    upstream: Mapping[str, dict[str, Any]]
    artifacts_dir: Path


def payload_of(ctx: StepContext) -> dict[str, Any]:
    """Return the payload, checking that it is a JSON object."""
    if not isinstance(ctx.payload, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(ctx.payload).__name__}")
    return ctx.payload


def get_str(payload: Mapping[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    """Return a stripped string field; ``required`` also rejects empty or whitespace-only values."""
    value = payload.get(name)
    if value is None:
        if required:
            raise PayloadError(f"payload field '{name}' is required (a non-empty string)")
        return default
    if not isinstance(value, str):
        raise PayloadError(f"payload field '{name}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise PayloadError(f"payload field '{name}' must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        raise PayloadError(f"payload field '{name}' is too long ({len(value)} > {MAX_TEXT_CHARS} characters)")
    return value


def get_int(payload: Mapping[str, Any], name: str, *, default: int, low: int, high: int) -> int:
    """Return an integer field within ``[low, high]``, or ``default`` when the field is absent."""
    value = payload.get(name)
    if value is None:
        return default
    # bool is an int subclass; ``"scene_count": true`` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"payload field '{name}' must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise PayloadError(f"payload field '{name}' must be between {low} and {high}, got {value}")
    return value


def get_str_list(payload: Mapping[str, Any], name: str, *, max_items: int = 50) -> list[str] | None:
    """Return a list of non-empty strings, or None when the field is absent."""
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise PayloadError(f"payload field '{name}' must be a list of non-empty strings")
    if len(value) > max_items:
        raise PayloadError(f"payload field '{name}' has {len(value)} items; at most {max_items} allowed")
    return [item.strip() for item in value]


def get_media_type(payload: Mapping[str, Any], *, required: bool = False) -> str | None:
    """Return ``media_type`` if present, checking it is one of :data:`MEDIA_TYPES`."""
    if payload.get("media_type") is None and not required:
        return None
    value = get_str(payload, "media_type", required=True).lower()
    if value not in MEDIA_TYPES:
        raise PayloadError(f"payload field 'media_type' must be one of {', '.join(MEDIA_TYPES)}, got {value!r}")
    return value


def brief_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return the validated brief fields (query is not required here; each handler decides)."""
    brief_id = payload.get("brief_id")
    if brief_id is not None:
        if not isinstance(brief_id, str):
            raise PayloadError(f"payload field 'brief_id' must be a UUID string, got {type(brief_id).__name__}")
        try:
            brief_id = str(uuid.UUID(brief_id))
        except ValueError:
            raise PayloadError(f"payload field 'brief_id' is not a valid UUID: {brief_id!r}") from None
    return {
        "brief_id": brief_id,
        "title": get_str(payload, "title"),
        "description": get_str(payload, "description"),
        "query": get_str(payload, "query"),
        "media_type": get_media_type(payload),
    }


def upstream_result(ctx: StepContext, step: str) -> dict[str, Any] | None:
    """Return the result of upstream step ``step``, or None when it is not among the upstream results."""
    result = ctx.upstream.get(step) if ctx.upstream else None
    if result is None:
        return None
    if not isinstance(result, Mapping):
        raise PayloadError(f"upstream '{step}' result must be an object, got {type(result).__name__}")
    return dict(result)


def ensure_artifacts_dir(ctx: StepContext) -> Path:
    """Create (if needed) and return the job's artifacts directory as an absolute path."""
    directory = Path(ctx.artifacts_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as stable, human-readable JSON (sorted keys so equal data gives equal bytes)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def stable_seed(*parts: object) -> int:
    """A 64-bit seed derived from the inputs; unlike ``hash()`` it does not change between processes."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(65536), b""):
            digest.update(chunk)
    return digest.hexdigest()
