"""Unit tests for the built-in brief step handlers (no database needed)."""

from __future__ import annotations

import hashlib
import itertools
import json
import wave
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from supaworker import handlers
from supaworker.handlers import BUILTIN_HANDLERS, PayloadError, StepContext
from supaworker.handlers.base import PIPELINES

BRIEF_ID = "6f1c1f3e-8a2b-4c1d-9e0f-123456789abc"


def brief(media_type: str = "video", **overrides: Any) -> dict[str, Any]:
    payload = {
        "brief_id": BRIEF_ID,
        "title": "The future of AI",
        "description": "A friendly look at how artificial intelligence changes everyday work. "
        "It is exciting, but there are real risks.",
        "query": f"Make a {media_type} explaining how AI changes work in 2024, and compare it with robots",
        "media_type": media_type,
    }
    return payload | overrides


def run(step: str, payload: dict[str, Any], root: Path, upstream: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx = StepContext(job_id=1, job_type=step, payload=payload, upstream=upstream or {}, artifacts_dir=root / step)
    result = BUILTIN_HANDLERS[step](ctx)
    # Results travel through the database as JSON, so they must survive a round trip unchanged.
    assert json.loads(json.dumps(result)) == result
    return result


def run_pipeline(steps: list[str] | tuple[str, ...], payload: dict[str, Any], root: Path) -> dict[str, Any]:
    """Run steps in order, each getting all earlier results as upstream (as JSON, like the worker)."""
    results: dict[str, Any] = {}
    for step in steps:
        results[step] = json.loads(json.dumps(run(step, payload, root, dict(results))))
    return results


def normalised(result: Any, root: Path) -> str:
    return json.dumps(result, sort_keys=True).replace(str(root.resolve()), "<root>")


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def average_hex(path: str) -> str:
    with Image.open(path) as image:
        mean = ImageStat.Stat(image.convert("RGB")).mean
    return "#" + "".join(f"{round(channel):02x}" for channel in mean)


# --- interface --------------------------------------------------------------------------------------


def test_registry_exports_the_seven_handlers() -> None:
    assert set(BUILTIN_HANDLERS) == {
        "analysis",
        "asset_prep",
        "storyboard",
        "render",
        "video_generation",
        "image_processing",
        "text_analysis",
    }
    assert all(callable(handler) for handler in BUILTIN_HANDLERS.values())
    assert handlers.__all__ == sorted(handlers.__all__)
    assert issubclass(PayloadError, ValueError)


def test_artifacts_dir_is_created(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "nested"
    ctx = StepContext(job_id=7, job_type="asset_prep", payload=brief("image"), upstream={}, artifacts_dir=target)
    result = BUILTIN_HANDLERS["asset_prep"](ctx)
    assert target.is_dir()
    assert Path(result["manifest_path"]).parent == target.resolve()


# --- analysis ---------------------------------------------------------------------------------------


def test_analysis_extracts_keywords_entities_intent_and_plan(tmp_path: Path) -> None:
    result = run("analysis", brief("video"), tmp_path)
    assert result["keywords"][0] == "AI"  # most frequent content word, capitals kept for the acronym
    assert "changes" in result["keywords"]
    # Request words and intent verbs describe the ask, not the subject.
    assert not {"make", "video", "explaining", "compare"} & {word.casefold() for word in result["keywords"]}
    details = result["keyword_details"]
    assert [d["count"] for d in details] == sorted((d["count"] for d in details), reverse=True)
    assert {"text": "AI", "kind": "name"} in result["entities"]
    assert {"text": "2024", "kind": "number"} in result["entities"]
    assert result["intent"]["action"] == "create"
    assert result["intent"]["secondary"] == ["explain", "compare"]
    assert result["intent"]["media_type"] == "video"
    assert result["plan"] == ["asset_prep", "video_generation", "render"]
    assert result["word_count"] == 15
    assert result["word_counts"]["total"] == sum(result["word_counts"][k] for k in ("title", "description", "query"))
    assert result["brief_id"] == BRIEF_ID
    assert result["script"] == "LATIN"


@pytest.mark.parametrize("media_type", sorted(PIPELINES))
def test_analysis_plan_matches_pipeline(tmp_path: Path, media_type: str) -> None:
    result = run("analysis", brief(media_type), tmp_path)
    assert result["plan"] == list(PIPELINES[media_type][1:])


def test_analysis_standalone_infers_media_type_and_title(tmp_path: Path) -> None:
    result = run(
        "analysis",
        {"query": 'Explain "machine learning" to Alice in 3 steps, with a short podcast'},
        tmp_path,
    )
    assert result["media_type"] == "audio"
    assert result["media_type_source"] == "inferred"
    assert result["intent"]["action"] == "explain"
    assert result["title"].startswith('"Machine learning"')  # request verb stripped from the derived title
    kinds = {(e["kind"], e["text"]) for e in result["entities"]}
    assert {("quote", "machine learning"), ("name", "Alice"), ("number", "3")} <= kinds
    assert run("analysis", {"query": "how do vaccines work?"}, tmp_path)["media_type"] == "text"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("the of and", ["the", "of", "and"]),  # only stopwords: fall back rather than return nothing
        ("Créer une vidéo sur la Tour Eiffel à Paris", ["créer", "vidéo", "Tour", "Eiffel", "Paris"]),
        ("人工知能についてのビデオを作る", ["人工知能", "ビデオ", "作"]),
        ("人工智能视频制作", ["人工", "工智", "智能", "能视", "视频", "频制", "制作"]),
    ],
)
def test_analysis_language_fallbacks(tmp_path: Path, query: str, expected: list[str]) -> None:
    assert run("analysis", {"query": query}, tmp_path)["keywords"] == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "'query' is required"),
        ({"query": "   "}, "'query' is required"),
        ({"query": 42}, "'query' must be a string, got int"),
        ({"query": "ok", "media_type": "hologram"}, "'media_type' must be one of"),
        ({"query": "ok", "media_type": 3}, "'media_type' must be a string"),
        ({"query": "ok", "brief_id": "not-a-uuid"}, "'brief_id' is not a valid UUID"),
        ({"query": "ok", "title": ["x"]}, "'title' must be a string, got list"),
        ({"query": "x" * 20_001}, "'query' is too long"),
    ],
)
def test_analysis_bad_payloads(tmp_path: Path, payload: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        run("analysis", payload, tmp_path)


def test_payload_must_be_an_object(tmp_path: Path) -> None:
    ctx = StepContext(job_id=1, job_type="analysis", payload=["query"], upstream={}, artifacts_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="payload must be a JSON object, got list"):
        BUILTIN_HANDLERS["analysis"](ctx)


# --- asset_prep -------------------------------------------------------------------------------------


def test_asset_prep_writes_manifest_matching_result(tmp_path: Path) -> None:
    analysis = run("analysis", brief("image"), tmp_path)
    result = run("asset_prep", brief("image"), tmp_path, {"analysis": analysis})
    manifest = json.loads(Path(result["manifest_path"]).read_text())
    assert result["files"] == [result["manifest_path"]]
    assert manifest == {k: v for k, v in result.items() if k not in ("manifest_path", "files")}
    assert set(result["palette"]) == {"background", "primary", "secondary", "accent", "text"}
    assert all(len(c) == 7 and c.startswith("#") for c in result["palette"].values())
    backgrounds = [a for a in result["assets"] if a["kind"] == "background"]
    assert [a["keyword"] for a in backgrounds] == analysis["keywords"][:8]
    assert result["counts"] == {"background": len(backgrounds), "title_card": 1}
    assert result["asset_count"] == len(result["assets"])
    assert result["canvas"] == {"width": 320, "height": 180}


def test_asset_prep_palette_follows_keywords(tmp_path: Path) -> None:
    def palette(keywords: list[str]) -> dict[str, str]:
        upstream = {"analysis": {"keywords": keywords, "title": "T", "media_type": "image"}}
        return run("asset_prep", {}, tmp_path, upstream)["palette"]

    assert palette(["ocean", "waves"]) == palette(["Ocean", "WAVES"])  # case does not matter
    assert palette(["ocean", "waves"]) != palette(["desert", "sand"])


def test_asset_prep_audio_adds_tones_and_works_standalone(tmp_path: Path) -> None:
    result = run("asset_prep", {"query": "A calm song about rain and thunder", "media_type": "audio"}, tmp_path)
    tones = [a for a in result["assets"] if a["kind"] == "tone"]
    assert [t["keyword"] for t in tones] == ["calm", "rain", "thunder"]
    assert all(261 <= t["frequency_hz"] <= 1050 for t in tones)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"query": "ok", "width": 10}, "'width' must be between 96 and 640"),
        ({"query": "ok", "height": "tall"}, "'height' must be an integer"),
        ({"title": "no query"}, "'query' is required"),
    ],
)
def test_asset_prep_bad_payloads(tmp_path: Path, payload: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        run("asset_prep", payload, tmp_path)


def test_bad_upstream_result_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PayloadError, match="upstream 'analysis' result must have 'keywords'"):
        run("asset_prep", brief(), tmp_path, {"analysis": {"keywords": "ai"}})
    with pytest.raises(PayloadError, match="upstream 'asset_prep' result needs a 'palette'"):
        run("image_processing", brief("image"), tmp_path, {"asset_prep": {"palette": {}, "assets": []}})


# --- storyboard -------------------------------------------------------------------------------------


def test_storyboard_scenes(tmp_path: Path) -> None:
    analysis = run("analysis", brief("video"), tmp_path)
    result = run("storyboard", brief("video"), tmp_path, {"analysis": analysis})
    scenes = result["scenes"]
    assert result["scene_count"] == len(scenes) == len(analysis["keywords"])
    assert [s["index"] for s in scenes] == list(range(len(scenes)))
    assert scenes[0]["heading"] == "The future of AI"
    assert [s["keyword"] for s in scenes] == analysis["keywords"]
    assert analysis["query"].rstrip(".") in scenes[0]["narration"]
    assert scenes[-1]["narration"].startswith("Finally,")
    for previous, scene in itertools.pairwise(scenes):
        assert scene["start_seconds"] == previous["start_seconds"] + previous["duration_seconds"]
    assert all(2 <= s["duration_seconds"] <= 10 for s in scenes)
    assert result["total_duration_seconds"] == sum(s["duration_seconds"] for s in scenes)
    assert json.loads(Path(result["storyboard_path"]).read_text())["scenes"] == scenes


def test_storyboard_scene_count_and_bounds(tmp_path: Path) -> None:
    assert run("storyboard", brief(scene_count=12), tmp_path)["scene_count"] == 12
    assert run("storyboard", brief(scene_count=1), tmp_path)["scene_count"] == 1
    assert run("storyboard", {"query": "dragons"}, tmp_path)["scene_count"] == 1
    for bad in (0, 13, "3", True, 2.5):
        with pytest.raises(PayloadError, match="'scene_count'"):
            run("storyboard", brief(scene_count=bad), tmp_path)


# --- image_processing -------------------------------------------------------------------------------


def test_image_processing_makes_real_pngs(tmp_path: Path) -> None:
    upstream = run_pipeline(["analysis", "asset_prep"], brief("image"), tmp_path)
    result = run("image_processing", brief("image"), tmp_path, upstream)
    keywords = upstream["analysis"]["keywords"][:8]
    assert [i["kind"] for i in result["images"]] == ["title_card"] + ["keyword"] * len(keywords)
    assert [i.get("keyword") for i in result["images"][1:]] == keywords
    assert result["image_count"] == len(result["images"]) == len(result["files"])
    assert result["palette"] == upstream["asset_prep"]["palette"]
    for entry in result["images"]:
        with Image.open(entry["path"]) as image:
            assert image.format == "PNG"
            assert image.size == (entry["width"], entry["height"]) == (320, 180)
            assert image.mode == entry["mode"] == "RGB"
        assert average_hex(entry["path"]) == entry["average_colour"]
    # Different keywords draw different pictures.
    assert len({sha256(path) for path in result["files"]}) == len(result["files"])


def test_image_processing_transforms_source_image(tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    Image.new("RGB", (400, 300), (200, 40, 40)).save(source)
    payload = brief("image", source_image=str(source), width=200, height=100, thumbnail_size=64)
    result = run("image_processing", payload, tmp_path)
    by_kind = {entry["kind"]: entry for entry in result["images"]}
    assert result["source_image"] == str(source.resolve())
    assert (by_kind["title_card"]["width"], by_kind["title_card"]["height"]) == (200, 100)
    with Image.open(by_kind["resize"]["path"]) as image:
        assert image.size == (200, 100)
    with Image.open(by_kind["thumbnail"]["path"]) as image:
        assert image.size == (64, 48)  # aspect ratio kept
    with Image.open(by_kind["grayscale"]["path"]) as image:
        assert image.mode == "L" and image.size == (200, 100)
    red, green, blue = (int(by_kind["resize"]["average_colour"][i : i + 2], 16) for i in (1, 3, 5))
    assert red > 180 and green < 60 and blue < 60
    gray = by_kind["grayscale"]["average_colour"]
    assert gray[1:3] == gray[3:5] == gray[5:7]

    only = run("image_processing", brief("image", source_image=str(source), transforms=["grayscale"]), tmp_path)
    assert [entry["kind"] for entry in only["images"] if entry["kind"] not in ("title_card", "keyword")] == [
        "grayscale"
    ]


def test_image_processing_bad_payloads(tmp_path: Path) -> None:
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    cases = [
        ({"source_image": str(tmp_path / "missing.png")}, "not an existing file"),
        ({"source_image": str(not_image)}, "not a readable image"),
        ({"source_image": 5}, "'source_image' must be a string"),
        ({"transforms": ["blur"]}, "unknown names \\['blur'\\]"),
        ({"transforms": "resize"}, "'transforms' must be a list"),
        ({"thumbnail_size": 4}, "'thumbnail_size' must be between"),
    ]
    for extra, message in cases:
        with pytest.raises(PayloadError, match=message):
            run("image_processing", brief("image", **extra), tmp_path)


# --- video_generation -------------------------------------------------------------------------------


def test_video_generation_writes_animated_gif(tmp_path: Path) -> None:
    upstream = run_pipeline(["analysis", "asset_prep"], brief("video"), tmp_path)
    result = run("video_generation", brief("video"), tmp_path, upstream)
    assert result["format"] == "GIF"
    assert (result["frame_count"], result["fps"], result["frame_duration_ms"]) == (36, 12, 80)
    assert result["duration_seconds"] == pytest.approx(36 * 0.08)
    with Image.open(result["path"]) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 36
        assert gif.size == (result["width"], result["height"]) == (320, 180)
        assert gif.info["duration"] == 80
    headings = [scene["heading"] for scene in result["scenes"]]
    assert headings == [upstream["asset_prep"]["title"], *upstream["analysis"]["keywords"][:8]]
    assert result["scenes"][0]["first_frame"] == 0
    assert result["bytes"] == Path(result["path"]).stat().st_size


def test_video_generation_options_and_storyboard(tmp_path: Path) -> None:
    payload = brief("video", frame_count=24, fps=10, format="webp", width=160, height=90, scene_count=3)
    upstream = run_pipeline(["analysis", "asset_prep", "storyboard"], payload, tmp_path)
    result = run("video_generation", payload, tmp_path, upstream)
    with Image.open(result["path"]) as webp:
        assert webp.format == "WEBP"
        assert webp.n_frames == result["frame_count"] == 24
        assert webp.size == (160, 90)
    assert result["duration_seconds"] == pytest.approx(2.4)
    assert [s["heading"] for s in result["scenes"]] == [s["heading"] for s in upstream["storyboard"]["scenes"]]
    assert [s["first_frame"] for s in result["scenes"]] == [0, 8, 16]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"frame_count": 4}, "'frame_count' must be between 8 and 96"),
        ({"fps": 0}, "'fps' must be between"),
        ({"format": "mp4"}, "'format' must be one of gif, webp"),
    ],
)
def test_video_generation_bad_payloads(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        run("video_generation", brief("video", **extra), tmp_path)


def test_video_generation_rejects_bad_storyboard(tmp_path: Path) -> None:
    with pytest.raises(PayloadError, match="upstream 'storyboard' result needs 'scenes'"):
        run("video_generation", brief("video"), tmp_path, {"storyboard": {"scenes": []}})


# --- text_analysis ----------------------------------------------------------------------------------

ARTICLE = (
    "Solar power is growing fast. Cheap panels made solar the best option in many countries. "
    "However, storage is still a problem, and grids are not always reliable. Batteries are improving. "
    "Solar power and batteries together could make clean energy the default."
)


def test_text_analysis_statistics_and_summary(tmp_path: Path) -> None:
    result = run("text_analysis", {"text": ARTICLE, "summary_sentences": 2}, tmp_path)
    assert result["source"] == "text"
    assert result["sentence_count"] == len(result["sentences"]) == 5
    assert result["word_count"] == 41
    assert result["average_words_per_sentence"] == pytest.approx(41 / 5, abs=0.01)
    assert result["keywords"][:3] == ["solar", "power", "batteries"]
    assert result["keyword_counts"][0] == {"term": "solar", "count": 3}
    # Extractive: the summary is made of original sentences, in their original order.
    assert len(result["summary"]) == 2
    positions = [result["sentences"].index(sentence) for sentence in result["summary"]]
    assert positions == sorted(positions)
    assert result["summary_text"] == " ".join(result["summary"])
    ease = result["readability"]["flesch_reading_ease"]
    expected = 206.835 - 1.015 * 41 / 5 - 84.6 * result["syllable_count"] / 41
    assert ease == pytest.approx(expected, abs=0.05)
    assert result["readability"]["label"] in {"standard", "fairly easy", "fairly difficult"}


def test_text_analysis_readability_orders_texts(tmp_path: Path) -> None:
    easy = run("text_analysis", {"text": "The cat sat on the mat. It was a good day. We had fun."}, tmp_path)
    hard = run(
        "text_analysis",
        {"text": "Institutional interoperability necessitates comprehensive organisational standardisation."},
        tmp_path,
    )
    assert easy["readability"]["flesch_reading_ease"] > 90 > 0 > hard["readability"]["flesch_reading_ease"]
    assert easy["readability"]["label"] == "very easy"
    assert hard["readability"]["label"] == "very difficult"


def test_text_analysis_sentiment(tmp_path: Path) -> None:
    def mood(text: str) -> dict[str, Any]:
        return run("text_analysis", {"text": text}, tmp_path)["sentiment"]

    assert mood("What a wonderful, happy day. I love it.")["label"] == "positive"
    assert mood("This is a terrible failure and a sad loss.")["label"] == "negative"
    negated = mood("The result is not good.")
    assert negated["negative"] == ["not good"] and negated["label"] == "negative"
    assert mood("The train leaves at noon.") == {
        "score": 0.0,
        "label": "neutral",
        "positive": [],
        "negative": [],
    }


def test_text_analysis_uses_brief_fields_and_upstream(tmp_path: Path) -> None:
    upstream = run_pipeline(["analysis"], brief("text"), tmp_path)
    result = run("text_analysis", brief("text"), tmp_path, upstream)
    assert result["source"] == "brief"
    assert result["title"] == "The future of AI"
    assert result["sentences"][-1] == brief("text")["query"]
    assert "risks" in result["sentiment"]["negative"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "needs a non-empty 'text', 'query' or 'description'"),
        ({"text": "?! ..."}, "contains no words"),
        ({"text": 12}, "'text' must be a string"),
        ({"text": "Fine.", "summary_sentences": 0}, "'summary_sentences' must be between 1 and 10"),
    ],
)
def test_text_analysis_bad_payloads(tmp_path: Path, payload: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        run("text_analysis", payload, tmp_path)


# --- render and full pipelines ----------------------------------------------------------------------


def check_manifest(result: dict[str, Any], results: dict[str, Any], media_type: str) -> dict[str, Any]:
    manifest = json.loads(Path(result["manifest_path"]).read_text())
    assert manifest["brief"] == {
        "brief_id": BRIEF_ID,
        "title": "The future of AI",
        "description": brief()["description"],
        "query": brief(media_type)["query"],
        "media_type": media_type,
    }
    assert [step["step"] for step in manifest["steps"]] == list(PIPELINES[media_type][:-1])
    assert [step["result"] for step in manifest["steps"]] == [results[s] for s in PIPELINES[media_type][:-1]]
    upstream_files = [path for step in PIPELINES[media_type][:-1] for path in results[step].get("files", [])]
    listed = [entry["path"] for entry in manifest["files"]]
    assert listed[: len(upstream_files)] == upstream_files
    assert result["artifact_path"] in listed
    for entry in manifest["files"]:
        assert entry["exists"] is True
        assert entry["sha256"] == sha256(entry["path"])
        assert entry["bytes"] == Path(entry["path"]).stat().st_size
    assert manifest["artifact"]["sha256"] == sha256(result["artifact_path"]) == result["artifact_sha256"]
    assert result["file_count"] == len(manifest["files"])
    assert result["total_bytes"] == sum(entry["bytes"] for entry in manifest["files"])
    return manifest


@pytest.mark.parametrize("media_type", sorted(PIPELINES))
def test_full_pipeline(tmp_path: Path, media_type: str) -> None:
    results = run_pipeline(PIPELINES[media_type], brief(media_type), tmp_path)
    assert results["analysis"]["plan"] == list(PIPELINES[media_type][1:])
    result = results["render"]
    assert result["media_type"] == media_type
    assert result["steps"] == list(PIPELINES[media_type][:-1])
    manifest = check_manifest(result, results, media_type)
    artifact = Path(result["artifact_path"])
    details = result["details"]
    assert manifest["details"] == details
    if media_type == "video":
        assert sha256(artifact) == sha256(results["video_generation"]["path"])  # a faithful copy
        with Image.open(artifact) as gif:
            assert gif.n_frames == details["frame_count"] == results["video_generation"]["frame_count"]
        with Image.open(details["poster_path"]) as poster:
            assert poster.format == "PNG" and list(poster.size) == details["poster_size"] == [320, 180]
    elif media_type == "image":
        with Image.open(artifact) as sheet:
            assert sheet.format == "PNG" and list(sheet.size) == details["sheet_size"]
        assert details["image_count"] == results["image_processing"]["image_count"]
    elif media_type == "audio":
        with wave.open(str(artifact)) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (
                1,
                2,
                details["sample_rate"],
            )
            assert wav.getnframes() / wav.getframerate() == pytest.approx(details["duration_seconds"], abs=1e-3)
        tones = [a for a in results["asset_prep"]["assets"] if a["kind"] == "tone"]
        assert [n["keyword"] for n in details["notes"]] == [t["keyword"] for t in tones]
        assert details["duration_seconds"] == pytest.approx(len(tones) * 0.4)
    else:
        report = artifact.read_text()
        assert report.startswith("# The future of AI\n")
        assert results["text_analysis"]["summary_text"] in report
        assert "| Flesch reading ease |" in report
        assert "- 2024 (number)" in report


def test_app_pipeline_with_storyboard(tmp_path: Path) -> None:
    steps = ["analysis", "asset_prep", "storyboard", "video_generation", "render"]
    results = run_pipeline(steps, brief("video", scene_count=4), tmp_path)
    manifest = json.loads(Path(results["render"]["manifest_path"]).read_text())
    assert [s["step"] for s in manifest["steps"]] == [
        "analysis",
        "asset_prep",
        "video_generation",
        "storyboard",
    ]
    assert "storyboard.json" in [entry["name"] for entry in manifest["files"]]
    assert results["video_generation"]["scene_count"] == 4


@pytest.mark.parametrize("media_type", sorted(PIPELINES))
def test_pipelines_are_deterministic(tmp_path: Path, media_type: str) -> None:
    first = run_pipeline(PIPELINES[media_type], brief(media_type), tmp_path / "a")
    second = run_pipeline(PIPELINES[media_type], brief(media_type), tmp_path / "b")
    assert normalised(first, tmp_path / "a") == normalised(second, tmp_path / "b")
    for step, result in first.items():
        for path_a, path_b in zip(result.get("files", []), second[step].get("files", []), strict=True):
            if Path(path_a).name != "manifest.json":  # the manifest records absolute paths
                assert sha256(path_a) == sha256(path_b), path_a


def test_render_audio_and_text_standalone(tmp_path: Path) -> None:
    audio = run("render", {"query": "rain on a tin roof", "media_type": "audio", "note_ms": 250}, tmp_path)
    assert [n["keyword"] for n in audio["details"]["notes"]] == ["rain", "tin", "roof"]
    with wave.open(audio["artifact_path"]) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(0.75, abs=1e-3)
    text = run("render", {"text": ARTICLE, "title": "Solar", "media_type": "text"}, tmp_path)
    assert Path(text["artifact_path"]).read_text().startswith("# Solar\n")


@pytest.mark.parametrize(
    ("payload", "upstream", "message"),
    [
        (brief("video"), {}, "needs the upstream 'video_generation' result"),
        (brief("image"), {}, "needs the upstream 'image_processing' result"),
        ({"query": "x"}, {}, "'media_type' is required"),
        (brief("audio", note_ms=50), {}, "'note_ms' must be between 100 and 2000"),
        (brief("video"), {"video_generation": {"path": "/nonexistent/video.gif"}}, "does not exist"),
        (brief("image"), {"image_processing": {"images": []}}, "needs 'images' as a non-empty list"),
        (brief("text"), {"analysis": "oops"}, "upstream 'analysis' result must be an object"),
    ],
)
def test_render_bad_inputs(tmp_path: Path, payload: dict[str, Any], upstream: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        run("render", payload, tmp_path, upstream)


def test_render_infers_media_type_from_upstream(tmp_path: Path) -> None:
    upstream = {"text_analysis": run("text_analysis", {"text": ARTICLE}, tmp_path)}
    result = run("render", {}, tmp_path, upstream)
    assert result["media_type"] == "text" and result["artifact_kind"] == "md"
