"""The ``asset_prep`` step: choose a colour palette and list the assets later steps will draw.

The palette and every per-asset colour are derived from the keywords through a stable hash, so the
same brief always looks the same. The plan is written to ``asset_manifest.json`` in the job's
artifacts directory; the result carries the same data so later steps need not read the file.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import _graphics
from .analysis import analysis_for
from .base import (
    PayloadError,
    StepContext,
    ensure_artifacts_dir,
    payload_of,
    stable_seed,
    upstream_result,
    write_json,
)

MAX_BACKGROUNDS = 8
PALETTE_ROLES = ("background", "primary", "secondary", "accent", "text")
# A major pentatonic scale has no dissonant intervals, so any keyword-chosen sequence sounds tolerable.
_PENTATONIC_SEMITONES = (0, 2, 4, 7, 9)
_BASE_FREQUENCY_HZ = 261.63  # middle C


def base_hue(keywords: list[str]) -> float:
    """The palette's base hue in [0, 1), chosen by hashing the (case-folded) keywords."""
    return stable_seed("palette", *[word.casefold() for word in keywords]) % 360 / 360


def make_palette(hue: float) -> dict[str, str]:
    """Five role colours around ``hue``: dark background, primary, an analogous secondary, a
    complementary accent and a near-white text colour that reads on the background."""
    return {
        "background": _graphics.hls_hex(hue, 0.16, 0.45),
        "primary": _graphics.hls_hex(hue, 0.50, 0.65),
        "secondary": _graphics.hls_hex(hue + 1 / 12, 0.38, 0.55),
        "accent": _graphics.hls_hex(hue + 0.5, 0.60, 0.80),
        "text": _graphics.hls_hex(hue, 0.95, 0.25),
    }


def keyword_colours(keyword: str, hue: float) -> list[str]:
    """Two gradient colours for a keyword: a hue within 60 degrees of the palette's, then a dark shade.

    Staying near the base hue keeps a brief's images visibly related while still telling them apart.
    """
    seed = stable_seed("keyword", keyword.casefold())
    offset = ((seed % 121) - 60) / 360
    lightness = 0.35 + (seed >> 8) % 20 / 100
    return [_graphics.hls_hex(hue + offset, lightness, 0.6), _graphics.hls_hex(hue + offset, 0.12, 0.5)]


def tone_frequency(keyword: str) -> float:
    """A pentatonic note over two octaves from middle C, picked by the keyword's hash."""
    step = stable_seed("tone", keyword.casefold()) % (2 * len(_PENTATONIC_SEMITONES))
    octave, degree = divmod(step, len(_PENTATONIC_SEMITONES))
    semitones = 12 * octave + _PENTATONIC_SEMITONES[degree]
    return round(_BASE_FREQUENCY_HZ * 2 ** (semitones / 12), 2)


def plan_assets(analysis: dict[str, Any], canvas: dict[str, int]) -> dict[str, Any]:
    """The palette and asset list for an analysis (pure: writes nothing)."""
    keywords = [word for word in analysis.get("keywords", []) if isinstance(word, str)]
    title = str(analysis.get("title") or analysis.get("query") or "Untitled")
    media_type = str(analysis.get("media_type") or "text")
    query = str(analysis.get("query") or "")
    # A title derived from the query would just repeat it, so the subtitle then uses the description.
    subtitle = str(analysis.get("description") or "")
    if not subtitle and not query.startswith(title.rstrip("…")):
        subtitle = query
    hue = base_hue(keywords)
    palette = make_palette(hue)
    assets: list[dict[str, Any]] = [
        {
            "id": "title-card",
            "kind": "title_card",
            "text": title,
            "subtitle": subtitle,
            "colours": [palette["background"], palette["secondary"]],
        }
    ]
    for index, keyword in enumerate(keywords[:MAX_BACKGROUNDS], start=1):
        assets.append(
            {
                "id": f"background-{index:02d}",
                "kind": "background",
                "keyword": keyword,
                "colours": keyword_colours(keyword, hue),
                # Seed for the decorative shapes drawn by image_processing (31 bits: fits any int column).
                "seed": stable_seed("shapes", keyword.casefold()) % 2**31,
            }
        )
    if media_type == "audio":
        for index, keyword in enumerate(keywords[:MAX_BACKGROUNDS] or [title], start=1):
            assets.append(
                {
                    "id": f"tone-{index:02d}",
                    "kind": "tone",
                    "keyword": keyword,
                    "frequency_hz": tone_frequency(keyword),
                }
            )
    counts = Counter(asset["kind"] for asset in assets)
    return {
        "title": title,
        "media_type": media_type,
        "keywords": keywords,
        "palette": palette,
        "canvas": dict(canvas),
        "assets": assets,
        "asset_count": len(assets),
        "counts": {kind: counts[kind] for kind in sorted(counts)},
    }


def prepare_assets(ctx: StepContext) -> dict[str, Any]:
    """Handler for ``asset_prep`` jobs: plan the assets and write the asset manifest."""
    payload = payload_of(ctx)
    plan = plan_assets(analysis_for(ctx), _graphics.canvas_from(payload))
    manifest_path = write_json(ensure_artifacts_dir(ctx) / "asset_manifest.json", plan)
    return plan | {"manifest_path": str(manifest_path), "files": [str(manifest_path)]}


def assets_for(ctx: StepContext) -> dict[str, Any]:
    """The upstream asset_prep result if there is one, else an asset plan computed from the payload.

    Payload ``width``/``height`` still override the upstream canvas, so one step can render larger.
    """
    payload = payload_of(ctx)
    upstream = upstream_result(ctx, "asset_prep")
    if upstream is None:
        return plan_assets(analysis_for(ctx), _graphics.canvas_from(payload))
    palette, assets = upstream.get("palette"), upstream.get("assets")
    if not isinstance(palette, dict) or not all(role in palette for role in PALETTE_ROLES):
        raise PayloadError(f"upstream 'asset_prep' result needs a 'palette' with {', '.join(PALETTE_ROLES)}")
    for role in PALETTE_ROLES:
        _graphics.hex_to_rgb(palette[role])
    if not isinstance(assets, list) or not all(isinstance(asset, dict) for asset in assets):
        raise PayloadError("upstream 'asset_prep' result needs 'assets' as a list of objects")
    return upstream | {"canvas": _graphics.canvas_from(payload, upstream.get("canvas"))}
