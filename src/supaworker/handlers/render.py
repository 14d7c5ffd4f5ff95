"""The ``render`` step: the brief's final artifact plus a ``manifest.json`` describing how it was made.

Artifacts by media type: video copies the upstream animation and adds ``poster.png``; image builds
``contact_sheet.png`` from the upstream images; audio synthesises ``audio.wav`` (one pentatonic tone
per keyword, from asset_prep's tone assets or the analysis); text writes ``report.md`` from the
upstream text analysis (computed here if absent). Video and image need their upstream step.

The manifest lists the brief, every upstream step with its result, and every file (upstream files
and this step's own) with its size and sha256. Upstream files that are not on this machine are
listed with ``"exists": false`` instead of failing the render.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import _media
from .analysis import analyse_payload
from .asset_prep import tone_frequency
from .base import (
    MEDIA_TYPES,
    PIPELINES,
    PayloadError,
    StepContext,
    brief_fields,
    ensure_artifacts_dir,
    get_int,
    payload_of,
    sha256_file,
    upstream_result,
    write_json,
)
from .text_analysis import analyse_text

# Which upstream step implies which media type, for standalone renders without a media_type.
_STEP_MEDIA = {"video_generation": "video", "image_processing": "image", "text_analysis": "text"}


def _media_type(ctx: StepContext, brief: dict[str, Any], analysis: dict[str, Any] | None) -> str:
    if brief["media_type"]:
        return brief["media_type"]
    if analysis and analysis.get("media_type") in MEDIA_TYPES:
        return str(analysis["media_type"])
    for step, media in _STEP_MEDIA.items():
        if step in (ctx.upstream or {}):
            return media
    raise PayloadError(f"payload field 'media_type' is required (one of {', '.join(MEDIA_TYPES)})")


def _required(ctx: StepContext, step: str, media_type: str) -> dict[str, Any]:
    result = upstream_result(ctx, step)
    if result is None:
        raise PayloadError(f"render for media_type '{media_type}' needs the upstream '{step}' result")
    return result


def _tones(ctx: StepContext, analysis: dict[str, Any] | None) -> list[tuple[str, float]]:
    """(keyword, frequency) pairs: asset_prep's tone assets if present, else one per keyword."""
    assets = (upstream_result(ctx, "asset_prep") or {}).get("assets")
    if isinstance(assets, list):
        tones = [a for a in assets if isinstance(a, dict) and a.get("kind") == "tone"]
        if tones:
            return [(str(a.get("keyword", "")), float(a["frequency_hz"])) for a in tones]
    analysis = analysis or analyse_payload(payload_of(ctx))
    keywords = [str(word) for word in analysis.get("keywords", [])][:8] or [str(analysis.get("title", "tone"))]
    return [(keyword, tone_frequency(keyword)) for keyword in keywords]


def _file_entry(path: Path, step: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": str(path), "name": path.name, "step": step}
    if path.is_file():
        return entry | {"exists": True, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return entry | {"exists": False}


def _ordered_steps(ctx: StepContext, media_type: str) -> list[str]:
    # Pipeline order first, then any extra steps (e.g. an app's storyboard) alphabetically.
    upstream = ctx.upstream or {}
    pipeline = [step for step in PIPELINES[media_type] if step in upstream]
    return pipeline + sorted(step for step in upstream if step not in pipeline)


def render(ctx: StepContext) -> dict[str, Any]:
    """Handler for ``render`` jobs."""
    payload = payload_of(ctx)
    brief = brief_fields(payload)
    analysis = upstream_result(ctx, "analysis")
    media_type = _media_type(ctx, brief, analysis)
    note_ms = get_int(payload, "note_ms", default=400, low=100, high=2000)
    directory = ensure_artifacts_dir(ctx)
    brief["media_type"] = media_type
    brief["title"] = brief["title"] or (analysis or {}).get("title") or ""
    if media_type == "video":
        built = _media.video_artifact(_required(ctx, "video_generation", media_type), directory)
    elif media_type == "image":
        built = _media.image_artifact(_required(ctx, "image_processing", media_type), directory)
    elif media_type == "audio":
        built = _media.audio_artifact(_tones(ctx, analysis), note_ms / 1000, directory)
    else:
        report = upstream_result(ctx, "text_analysis") or analyse_text(ctx)
        built = _media.text_artifact(brief, report, analysis or {}, directory)
    artifact, extra_files, details = built
    steps = _ordered_steps(ctx, media_type)
    results = {step: upstream_result(ctx, step) or {} for step in steps}
    files = []
    for step in steps:
        for value in results[step].get("files") or []:
            if isinstance(value, str):
                files.append(_file_entry(Path(value), step))
    files += [_file_entry(path, ctx.job_type) for path in [artifact, *extra_files]]
    artifact_entry = files[-1 - len(extra_files)]
    manifest = {
        "brief": brief,
        "job": {"id": ctx.job_id, "type": ctx.job_type},
        "steps": [{"step": step, "result": results[step]} for step in steps],
        "artifact": {"kind": artifact.suffix.lstrip("."), "media_type": media_type, **artifact_entry},
        "details": details,
        "files": files,
    }
    manifest_path = write_json(directory / "manifest.json", manifest)
    return {
        "media_type": media_type,
        "manifest_path": str(manifest_path),
        "artifact_path": str(artifact),
        "artifact_kind": artifact.suffix.lstrip("."),
        "artifact_sha256": artifact_entry["sha256"],
        "details": details,
        "steps": steps,
        "file_count": len(files),
        "total_bytes": sum(entry.get("bytes", 0) for entry in files),
        "files": [str(path) for path in [artifact, *extra_files, manifest_path]],
    }
