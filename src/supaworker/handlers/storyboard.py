"""The ``storyboard`` step: split a brief into timed scenes, one focus keyword per scene.

Not part of the built-in brief pipelines; apps add it to their own (for example before
``video_generation``, which then animates these scenes instead of bare keywords).
"""

from __future__ import annotations

from typing import Any

from .analysis import analysis_for
from .base import StepContext, ensure_artifacts_dir, get_int, payload_of, stable_seed, write_json

MAX_SCENES = 12
# Narration pace of a calm voice-over; scene lengths follow from it, within readable bounds.
WORDS_PER_SECOND = 2.5
MIN_SCENE_SECONDS, MAX_SCENE_SECONDS = 2.0, 10.0

_MIDDLE_TEMPLATES = (
    "Next, {k}: what it is and why it matters here.",
    "A closer look at {k}, and how it relates to {other}.",
    "{K} in practice: one concrete example to make it tangible.",
    "Why {k} matters for {topic}.",
)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _list_phrase(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _narration(index: int, count: int, focus: str, keywords: list[str], analysis: dict[str, Any]) -> str:
    topic = keywords[0] if keywords else str(analysis.get("title", ""))
    query = str(analysis.get("query", "")).rstrip(".!? ")
    if index == 0:
        lead = f"{_capitalise(query)}." if query else f"{analysis.get('title', '')}."
        return f"{lead} We start with {_list_phrase(keywords[:3]) or focus}."
    if index == count - 1:
        return f"Finally, {focus}. To sum up: {_list_phrase(keywords[:4]) or topic}."
    other = keywords[(index + 1) % len(keywords)] if keywords else topic
    # The template is picked by hash, not at random, so the same brief always gets the same script.
    template = _MIDDLE_TEMPLATES[stable_seed("scene", focus.casefold(), index) % len(_MIDDLE_TEMPLATES)]
    return template.format(k=focus, K=_capitalise(focus), other=other, topic=topic)


def scene_seconds(narration: str) -> float:
    """Time to read the narration aloud, rounded to half a second and clamped to 2..10 s."""
    seconds = len(narration.split()) / WORDS_PER_SECOND
    return min(MAX_SCENE_SECONDS, max(MIN_SCENE_SECONDS, round(seconds * 2) / 2))


def make_scenes(analysis: dict[str, Any], scene_count: int | None = None) -> list[dict[str, Any]]:
    """The scene list for an analysis; ``scene_count`` defaults to one scene per keyword (1..12)."""
    keywords = [word for word in analysis.get("keywords", []) if isinstance(word, str)]
    title = str(analysis.get("title") or analysis.get("query") or "Untitled")
    count = scene_count if scene_count is not None else min(MAX_SCENES, max(1, len(keywords)))
    scenes: list[dict[str, Any]] = []
    start = 0.0
    for index in range(count):
        focus = keywords[index % len(keywords)] if keywords else title
        narration = _narration(index, count, focus, keywords, analysis)
        duration = scene_seconds(narration)
        scenes.append(
            {
                "index": index,
                "heading": title if index == 0 else _capitalise(focus),
                "keyword": focus,
                "narration": narration,
                "start_seconds": start,
                "duration_seconds": duration,
            }
        )
        start += duration
    return scenes


def build_storyboard(ctx: StepContext) -> dict[str, Any]:
    """Handler for ``storyboard`` jobs: scenes from the analysis, also written to ``storyboard.json``."""
    payload = payload_of(ctx)
    scene_count = None
    if payload.get("scene_count") is not None:
        scene_count = get_int(payload, "scene_count", default=1, low=1, high=MAX_SCENES)
    analysis = analysis_for(ctx)
    scenes = make_scenes(analysis, scene_count)
    result = {
        "title": str(analysis.get("title") or ""),
        "media_type": analysis.get("media_type"),
        "scenes": scenes,
        "scene_count": len(scenes),
        "total_duration_seconds": sum(scene["duration_seconds"] for scene in scenes),
    }
    path = write_json(ensure_artifacts_dir(ctx) / "storyboard.json", result)
    return result | {"storyboard_path": str(path), "files": [str(path)]}
