"""The ``video_generation`` step: a short animation drawn frame by frame with Pillow, saved as GIF or WebP.

No ffmpeg: the "video" is an animated image. Scenes come from an upstream ``storyboard`` when there is
one, otherwise from the title and keywords of the asset plan. Each scene shows its heading over its
keyword colours; the brief title scrolls across a band at the bottom and a progress bar grows, so
every frame differs from the previous one (GIF encoders merge identical consecutive frames, which
would silently change the frame count).
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from . import _graphics
from .asset_prep import assets_for
from .base import (
    PayloadError,
    StepContext,
    ensure_artifacts_dir,
    get_int,
    get_str,
    payload_of,
    upstream_result,
)

FORMATS = ("gif", "webp")
FRAME_RANGE = (8, 96)  # at most the minimum canvas width, so the progress bar moves on every frame
FPS_RANGE = (2, 25)


def _scenes(ctx: StepContext, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Scene headings and colours: from the storyboard if present, else title card plus one per keyword."""
    colours_by_keyword = {
        str(asset.get("keyword", "")).casefold(): asset.get("colours")
        for asset in plan["assets"]
        if asset.get("kind") == "background"
    }
    palette = plan["palette"]
    default_colours = [palette["background"], palette["secondary"]]
    storyboard = upstream_result(ctx, "storyboard")
    if storyboard is not None:
        scenes = storyboard.get("scenes")
        if not isinstance(scenes, list) or not scenes or not all(isinstance(s, dict) for s in scenes):
            raise PayloadError("upstream 'storyboard' result needs 'scenes' as a non-empty list of objects")
        headings = [(str(s.get("heading", "")), str(s.get("keyword", ""))) for s in scenes]
    else:
        headings = [(str(plan.get("title", "")), "")]
        headings += [
            (str(a.get("keyword", "")), str(a.get("keyword", "")))
            for a in plan["assets"]
            if a.get("kind") == "background"
        ]
    return [
        {"heading": heading, "colours": colours_by_keyword.get(keyword.casefold()) or default_colours}
        for heading, keyword in headings
    ]


def _scene_background(scene: dict[str, Any], palette: dict[str, str], size: tuple[int, int]) -> Image.Image:
    # The heading is static within a scene, so it is drawn once here instead of on every frame.
    width, height = size
    top, bottom = (_graphics.hex_to_rgb(colour) for colour in scene["colours"][:2])
    image = _graphics.gradient(size, top, bottom)
    draw = ImageDraw.Draw(image)
    box = (width // 12, height // 10, width * 11 // 12, height * 68 // 100)
    text = _graphics.hex_to_rgb(palette["text"])
    _graphics.draw_text_block(draw, scene["heading"], box, text, height // 6, (0, 0, 0))
    return image


def make_frames(scenes: list[dict[str, Any]], plan: dict[str, Any], frame_count: int) -> list[Image.Image]:
    """Render ``frame_count`` RGB frames, splitting them evenly between the scenes."""
    width, height = plan["canvas"]["width"], plan["canvas"]["height"]
    palette = plan["palette"]
    scenes = scenes[:frame_count]  # every scene gets at least one frame
    backgrounds = [_scene_background(scene, palette, (width, height)) for scene in scenes]
    band_top = height * 78 // 100
    ticker_font = _graphics.font(max(10, height // 12))
    title = str(plan.get("title", ""))
    probe = ImageDraw.Draw(backgrounds[0])
    title_width = probe.textlength(title, font=ticker_font)
    band, text, accent = (_graphics.hex_to_rgb(palette[role]) for role in ("background", "text", "accent"))
    frames = []
    for number in range(frame_count):
        frame = backgrounds[number * len(scenes) // frame_count].copy()
        draw = ImageDraw.Draw(frame)
        draw.rectangle((0, band_top, width, height), fill=band)
        # The title scrolls from the right edge until it has left on the left, over the whole clip.
        progress = number / max(1, frame_count - 1)
        x = width - progress * (width + title_width)
        draw.text(
            (x, band_top + (height - band_top - _graphics.font_size(ticker_font)) // 2),
            title,
            font=ticker_font,
            fill=text,
        )
        bar_width = round(width * (number + 1) / frame_count)
        draw.rectangle((0, height - max(2, height // 45), bar_width, height), fill=accent)
        frames.append(frame)
    return frames


def generate_video(ctx: StepContext) -> dict[str, Any]:
    """Handler for ``video_generation`` jobs."""
    payload = payload_of(ctx)
    frame_count = get_int(payload, "frame_count", default=36, low=FRAME_RANGE[0], high=FRAME_RANGE[1])
    fps = get_int(payload, "fps", default=12, low=FPS_RANGE[0], high=FPS_RANGE[1])
    fmt = get_str(payload, "format", default="gif").lower()
    if fmt not in FORMATS:
        raise PayloadError(f"payload field 'format' must be one of {', '.join(FORMATS)}, got {fmt!r}")
    plan = assets_for(ctx)
    scenes = _scenes(ctx, plan)
    frames = make_frames(scenes, plan, frame_count)
    # GIF stores frame delays in hundredths of a second; round here so the reported timing is exact.
    frame_ms = max(20, round(100 / fps) * 10)
    path = ensure_artifacts_dir(ctx) / f"video.{fmt}"
    options: dict[str, Any] = {"lossless": True, "method": 4} if fmt == "webp" else {"optimize": False}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0, **options)
    with Image.open(path) as written:  # report what is in the file, not what was intended
        written_frames = getattr(written, "n_frames", 1)
    shown = min(len(scenes), frame_count)
    return {
        "title": plan.get("title", ""),
        "path": str(path),
        "format": fmt.upper(),
        "width": plan["canvas"]["width"],
        "height": plan["canvas"]["height"],
        "frame_count": written_frames,
        "fps": fps,
        "frame_duration_ms": frame_ms,
        "duration_seconds": round(written_frames * frame_ms / 1000, 3),
        "scene_count": shown,
        # Frame n shows scene n * shown // frame_count, so scene i starts at ceil(i * frame_count / shown).
        "scenes": [
            {"heading": scene["heading"], "first_frame": -(-index * frame_count // shown)}
            for index, scene in enumerate(scenes[:shown])
        ],
        "palette": plan["palette"],
        "bytes": path.stat().st_size,
        "files": [str(path)],
    }
