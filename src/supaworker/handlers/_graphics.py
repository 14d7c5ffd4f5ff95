"""Colour and drawing helpers shared by the image, video and render steps (Pillow only).

Fonts come from Pillow's bundled default font, so no system fonts are needed and output is the same
on every machine with the same Pillow version. That font covers Latin, Greek and Cyrillic; other
scripts render as placeholder boxes.
"""

from __future__ import annotations

import colorsys
import re
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageStat

from .base import PayloadError, get_int

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

DEFAULT_CANVAS = {"width": 320, "height": 180}
# Small canvases keep every step well under a second; the bounds also keep GIF frames distinct (the
# progress bar must grow by at least a pixel per frame, see video_generation).
WIDTH_RANGE = (96, 640)
HEIGHT_RANGE = (54, 480)
_HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def hex_to_rgb(value: str) -> RGB:
    if not isinstance(value, str) or not _HEX_RE.match(value):
        raise PayloadError(f"colour must be a '#rrggbb' string, got {value!r}")
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def rgb_to_hex(rgb: tuple[float, ...]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(channel))):02x}" for channel in rgb[:3])


def hls_hex(hue: float, lightness: float, saturation: float) -> str:
    """A colour from HLS components; ``hue`` wraps around so callers can add offsets freely."""
    return rgb_to_hex(tuple(c * 255 for c in colorsys.hls_to_rgb(hue % 1.0, lightness, saturation)))


def canvas_from(payload: dict[str, Any], fallback: Any = None) -> dict[str, int]:
    """Canvas size: payload ``width``/``height`` win, then an upstream ``canvas``, then 320x180."""
    base = dict(DEFAULT_CANVAS)
    if isinstance(fallback, dict):
        # Upstream values were validated by their own step; clamping guards against hand-made results.
        for key, (low, high) in (("width", WIDTH_RANGE), ("height", HEIGHT_RANGE)):
            value = fallback.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                base[key] = min(high, max(low, value))
    width = get_int(payload, "width", default=base["width"], low=WIDTH_RANGE[0], high=WIDTH_RANGE[1])
    height = get_int(payload, "height", default=base["height"], low=HEIGHT_RANGE[0], high=HEIGHT_RANGE[1])
    return {"width": width, "height": height}


@lru_cache(maxsize=32)
def font(size: int) -> Font:
    """Pillow's default font at ``size`` px; Pillow builds without FreeType only have a fixed bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def font_size(face: Font) -> int:
    """Nominal pixel size of a font (the bitmap fallback font has no ``size``; it is about 11 px)."""
    return int(getattr(face, "size", 11))


def _wrap(draw: ImageDraw.ImageDraw, text: str, face: Font, max_width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=face) <= max_width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def fit_text(draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int], max_size: int) -> tuple[list[str], Font]:
    """Wrap ``text`` into ``box`` (width, height) at the largest size from ``max_size`` down that fits."""
    width, height = box
    size = max_size
    while True:
        face = font(size)
        lines = _wrap(draw, text, face, width)
        fits = all(draw.textlength(line, font=face) <= width for line in lines)
        if (fits and len(lines) * size * 1.25 <= height) or size <= 10:
            break
        size -= 2
    # At the smallest size, drop lines that do not fit and shorten over-long words with an ellipsis.
    max_lines = max(1, int(height // (size * 1.25)))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += "…"
    return [_truncate(draw, line, face, width) for line in lines], face


def _truncate(draw: ImageDraw.ImageDraw, line: str, face: Font, width: int) -> str:
    while len(line) > 1 and draw.textlength(line, font=face) > width:
        line = line[:-2] + "…"
    return line


def draw_text_block(
    draw: ImageDraw.ImageDraw,
    text: str,
    box: tuple[int, int, int, int],
    fill: RGB,
    max_size: int,
    shadow: RGB | None = None,
) -> None:
    """Draw ``text`` centred in ``box`` (left, top, right, bottom), wrapped and shrunk to fit."""
    left, top, right, bottom = box
    lines, face = fit_text(draw, text, (right - left, bottom - top), max_size)
    line_height = round(font_size(face) * 1.25)
    y = top + (bottom - top - line_height * len(lines)) // 2
    for line in lines:
        x = left + (right - left - draw.textlength(line, font=face)) / 2
        if shadow is not None:
            draw.text((x + 1, y + 1), line, font=face, fill=shadow)
        draw.text((x, y), line, font=face, fill=fill)
        y += line_height


def gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    """A vertical two-colour gradient."""
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def average_colour(image: Image.Image) -> str:
    """The mean colour of an image as '#rrggbb': a cheap check value for the pixels written."""
    return rgb_to_hex(tuple(ImageStat.Stat(image.convert("RGB")).mean))


def slug(text: str, fallback: str = "item") -> str:
    """A lowercase ASCII file-name fragment."""
    value = re.sub(r"[^a-z0-9]+", "-", text.casefold().encode("ascii", "ignore").decode()).strip("-")
    return value[:40] or fallback
