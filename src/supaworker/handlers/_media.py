"""The final artifact for each media type, used by the ``render`` step.

Each builder writes into ``directory`` and returns ``(artifact_path, extra_files, details)``;
``details`` is merged into render's result and manifest.
"""

from __future__ import annotations

import array
import math
import shutil
import wave
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from . import _graphics
from .base import PayloadError

Built = tuple[Path, list[Path], dict[str, Any]]
SAMPLE_RATE = 22_050
# Short linear fades at note edges avoid the click a sine makes when it starts or stops mid-wave.
FADE_SECONDS = 0.02
CELL = (160, 90)
PADDING = 8
LABEL_HEIGHT = 16


def existing_file(value: Any, what: str) -> Path:
    """A path from an upstream result that must exist on this machine."""
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{what} must be a file path string")
    path = Path(value)
    if not path.is_file():
        raise PayloadError(f"{what} does not exist: {value}")
    return path


def video_artifact(video: dict[str, Any], directory: Path) -> Built:
    """Copy the animation next to the manifest and extract its middle frame as a poster PNG."""
    source = existing_file(video.get("path"), "upstream 'video_generation' path")
    target = directory / f"video{source.suffix.lower()}"
    shutil.copyfile(source, target)
    poster_path = directory / "poster.png"
    with Image.open(target) as animation:
        frames = getattr(animation, "n_frames", 1)
        # The first frame is often mostly empty (the title has not scrolled in yet); the middle is typical.
        animation.seek(frames // 2)
        poster = animation.convert("RGB")
    poster.save(poster_path, format="PNG")
    details = {
        "frame_count": frames,
        "duration_seconds": video.get("duration_seconds"),
        "poster_path": str(poster_path),
        "poster_size": [poster.width, poster.height],
    }
    return target, [poster_path], details


def image_artifact(images: dict[str, Any], directory: Path) -> Built:
    """A contact sheet: every image as a labelled thumbnail on a grid, on the palette's background."""
    entries = images.get("images")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise PayloadError("upstream 'image_processing' result needs 'images' as a non-empty list of objects")
    paths = [existing_file(entry.get("path"), "upstream 'image_processing' image path") for entry in entries]
    columns = min(4, math.ceil(math.sqrt(len(paths))))
    rows = math.ceil(len(paths) / columns)
    width = columns * (CELL[0] + PADDING) + PADDING
    height = rows * (CELL[1] + LABEL_HEIGHT + PADDING) + PADDING
    palette = images.get("palette")
    palette = palette if isinstance(palette, dict) else {}
    background = _graphics.hex_to_rgb(palette.get("background", "#202020"))
    text = _graphics.hex_to_rgb(palette.get("text", "#f0f0f0"))
    sheet = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(sheet)
    label_font = _graphics.font(11)
    for number, path in enumerate(paths):
        row, column = divmod(number, columns)
        left = PADDING + column * (CELL[0] + PADDING)
        top = PADDING + row * (CELL[1] + LABEL_HEIGHT + PADDING)
        with Image.open(path) as source:
            thumb = source.convert("RGB")
        thumb.thumbnail(CELL, Image.Resampling.LANCZOS)
        sheet.paste(thumb, (left + (CELL[0] - thumb.width) // 2, top + (CELL[1] - thumb.height) // 2))
        label = _graphics.fit_text(draw, path.name, (CELL[0], LABEL_HEIGHT), 11)[0][0]
        draw.text((left, top + CELL[1] + 2), label, font=label_font, fill=text)
    target = directory / "contact_sheet.png"
    sheet.save(target, format="PNG")
    details = {"image_count": len(paths), "columns": columns, "rows": rows, "sheet_size": [width, height]}
    return target, [], details


def synthesise_tones(notes: list[tuple[str, float]], note_seconds: float) -> array.array[int]:
    """16-bit mono samples: each note a sine plus a quieter octave, with fades at both ends."""
    per_note = round(note_seconds * SAMPLE_RATE)
    fade = min(per_note // 2, round(FADE_SECONDS * SAMPLE_RATE))
    samples = array.array("h")
    for _, frequency in notes:
        step = 2 * math.pi * frequency / SAMPLE_RATE
        for n in range(per_note):
            envelope = min(1.0, n / fade, (per_note - 1 - n) / fade) if fade else 1.0
            value = 0.8 * math.sin(step * n) + 0.2 * math.sin(2 * step * n)
            samples.append(round(0.45 * 32767 * envelope * value))
    return samples


def audio_artifact(notes: list[tuple[str, float]], note_seconds: float, directory: Path) -> Built:
    """A WAV file playing one tone per keyword."""
    samples = synthesise_tones(notes, note_seconds)
    target = directory / "audio.wav"
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    start = 0.0
    timeline = []
    for keyword, frequency in notes:
        timeline.append({"keyword": keyword, "frequency_hz": frequency, "start_seconds": round(start, 3)})
        start += note_seconds
    details = {
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
        "sample_width_bytes": 2,
        "duration_seconds": round(len(samples) / SAMPLE_RATE, 3),
        "note_seconds": note_seconds,
        "notes": timeline,
    }
    return target, [], details


def text_artifact(brief: dict[str, Any], report: dict[str, Any], analysis: dict[str, Any], directory: Path) -> Built:
    """A Markdown report of the text analysis (and the brief analysis, when available)."""
    readability, mood = report.get("readability", {}), report.get("sentiment", {})
    lines = [f"# {brief.get('title') or report.get('title') or 'Report'}", ""]
    if brief.get("description"):
        lines += [str(brief["description"]), ""]
    if brief.get("query"):
        lines += [f"> {brief['query']}", ""]
    lines += ["## Summary", "", str(report.get("summary_text") or "(no summary)"), ""]
    lines += [
        "## Statistics",
        "",
        "| Measure | Value |",
        "| --- | --- |",
        f"| Words | {report.get('word_count')} |",
        f"| Sentences | {report.get('sentence_count')} |",
        f"| Words per sentence | {report.get('average_words_per_sentence')} |",
        f"| Flesch reading ease | {readability.get('flesch_reading_ease')} ({readability.get('label')}) |",
        f"| Flesch-Kincaid grade | {readability.get('flesch_kincaid_grade')} |",
        f"| Sentiment | {mood.get('label')} ({mood.get('score')}) |",
        "",
        "## Keywords",
        "",
        ", ".join(str(word) for word in report.get("keywords", [])) or "(none)",
        "",
    ]
    entities = [e for e in analysis.get("entities", []) if isinstance(e, dict)]
    if entities:
        lines += ["## Entities", ""] + [f"- {e.get('text')} ({e.get('kind')})" for e in entities] + [""]
    target = directory / "report.md"
    target.write_text("\n".join(lines), encoding="utf-8")
    return target, [], {"word_count": report.get("word_count"), "line_count": len(lines)}
