"""The ``image_processing`` step: draw a title card and one image per keyword, and transform an input image.

Images use the palette and per-asset colours from ``asset_prep`` (or a plan computed from the
payload when run standalone). With payload ``source_image`` (a path, absolute or relative to the
worker's working directory) the step also writes that image resized to the canvas (cover crop),
as a thumbnail and in grayscale; ``transforms`` (a subset of those three names) narrows that down.
Every image is a PNG in the artifacts directory; each entry reports its size, mode and mean colour.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from . import _graphics
from .asset_prep import assets_for
from .base import PayloadError, StepContext, ensure_artifacts_dir, get_int, get_str, get_str_list, payload_of

TRANSFORMS = ("resize", "thumbnail", "grayscale")
# Decoding a huge upload would blow the step's time budget; real briefs never need more than this.
MAX_SOURCE_PIXELS = 40_000_000


def _save(image: Image.Image, path: Path, kind: str, **extra: Any) -> dict[str, Any]:
    image.save(path, format="PNG")
    return {
        "kind": kind,
        "name": path.name,
        "path": str(path),
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "average_colour": _graphics.average_colour(image),
        **extra,
    }


def draw_title_card(asset: dict[str, Any], palette: dict[str, str], size: tuple[int, int]) -> Image.Image:
    """Title over a background-to-secondary gradient, optional subtitle, and an accent bar at the bottom."""
    width, height = size
    top, bottom = (
        _graphics.hex_to_rgb(c) for c in asset.get("colours") or [palette["background"], palette["secondary"]]
    )
    image = _graphics.gradient(size, top, bottom)
    draw = ImageDraw.Draw(image)
    text_colour = _graphics.hex_to_rgb(palette["text"])
    shadow = _graphics.hex_to_rgb(palette["background"])
    title_box = (width * 8 // 100, height * 12 // 100, width * 92 // 100, height * 62 // 100)
    _graphics.draw_text_block(draw, str(asset.get("text") or ""), title_box, text_colour, height // 6, shadow)
    if asset.get("subtitle"):
        subtitle_box = (width // 10, height * 64 // 100, width * 9 // 10, height * 88 // 100)
        _graphics.draw_text_block(draw, str(asset["subtitle"]), subtitle_box, text_colour, max(10, height // 14))
    draw.rectangle((0, height - max(3, height // 30), width, height), fill=_graphics.hex_to_rgb(palette["accent"]))
    return image


def draw_keyword_image(
    asset: dict[str, Any], palette: dict[str, str], size: tuple[int, int], label: str
) -> Image.Image:
    """Keyword over its gradient, with translucent shapes placed by the asset's seed (reproducible)."""
    width, height = size
    colours = asset.get("colours") or [palette["primary"], palette["background"]]
    image = _graphics.gradient(size, *(_graphics.hex_to_rgb(c) for c in colours[:2])).convert("RGBA")
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    shapes = ImageDraw.Draw(overlay)
    seed = asset.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PayloadError(f"asset {asset.get('id')!r} has a non-integer 'seed': {seed!r}")
    rng = random.Random(seed)
    choices = [_graphics.hex_to_rgb(palette[role]) for role in ("primary", "secondary", "accent")]
    for _ in range(7):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(height // 10, height // 3)
        fill = (*rng.choice(choices), rng.randrange(50, 140))
        box = (x - radius, y - radius, x + radius, y + radius)
        if rng.random() < 0.5:
            shapes.ellipse(box, fill=fill)
        else:
            shapes.rectangle(box, fill=fill)
    image = Image.alpha_composite(image, overlay).convert("RGB")
    draw = ImageDraw.Draw(image)
    text_colour = _graphics.hex_to_rgb(palette["text"])
    box = (width // 10, height // 5, width * 9 // 10, height * 4 // 5)
    _graphics.draw_text_block(draw, str(asset.get("keyword", "")), box, text_colour, height // 5, (0, 0, 0))
    draw.text((6, 4), label, font=_graphics.font(max(10, height // 16)), fill=text_colour)
    return image


def _open_source(payload: dict[str, Any]) -> Image.Image | None:
    path_text = get_str(payload, "source_image")
    if not path_text:
        return None
    path = Path(path_text)
    if not path.is_file():
        raise PayloadError(f"payload field 'source_image' is not an existing file: {path_text!r}")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_SOURCE_PIXELS:
                raise PayloadError(f"payload field 'source_image' is too large ({image.width}x{image.height})")
            # Photos often store their rotation in EXIF; apply it so outputs are upright.
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise PayloadError(f"payload field 'source_image' is not a readable image: {exc}") from None


def process_images(ctx: StepContext) -> dict[str, Any]:
    """Handler for ``image_processing`` jobs."""
    payload = payload_of(ctx)
    transforms = get_str_list(payload, "transforms") or list(TRANSFORMS)
    unknown = sorted(set(transforms) - set(TRANSFORMS))
    if unknown:
        raise PayloadError(f"payload field 'transforms' has unknown names {unknown}; allowed: {list(TRANSFORMS)}")
    thumbnail_size = get_int(payload, "thumbnail_size", default=96, low=16, high=256)
    source = _open_source(payload)  # validated before any drawing, so a bad path fails fast
    plan = assets_for(ctx)
    palette, size = plan["palette"], (plan["canvas"]["width"], plan["canvas"]["height"])
    directory = ensure_artifacts_dir(ctx)
    images: list[dict[str, Any]] = []
    backgrounds = [asset for asset in plan["assets"] if asset.get("kind") == "background"]
    for asset in plan["assets"]:
        if asset.get("kind") == "title_card":
            images.append(_save(draw_title_card(asset, palette, size), directory / "title_card.png", "title_card"))
    for number, asset in enumerate(backgrounds, start=1):
        keyword = str(asset.get("keyword", ""))
        path = directory / f"keyword_{number:02d}_{_graphics.slug(keyword)}.png"
        image = draw_keyword_image(asset, palette, size, f"{number:02d}/{len(backgrounds):02d}")
        images.append(_save(image, path, "keyword", keyword=keyword))
    if source is not None:
        fitted = ImageOps.fit(source, size, method=Image.Resampling.LANCZOS)
        if "resize" in transforms:
            images.append(_save(fitted, directory / "source_resized.png", "resize"))
        if "thumbnail" in transforms:
            thumb = source.copy()
            thumb.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.LANCZOS)
            images.append(_save(thumb, directory / "source_thumbnail.png", "thumbnail"))
        if "grayscale" in transforms:
            images.append(_save(ImageOps.grayscale(fitted), directory / "source_grayscale.png", "grayscale"))
    return {
        "title": plan.get("title", ""),
        "palette": palette,
        "canvas": plan["canvas"],
        "images": images,
        "image_count": len(images),
        "source_image": str(Path(get_str(payload, "source_image")).resolve()) if source is not None else None,
        "files": [entry["path"] for entry in images],
    }
