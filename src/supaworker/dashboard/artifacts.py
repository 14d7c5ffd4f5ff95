"""The files a job's result names (the built-in steps' images, animations, audio, reports and manifests), listed
for the brief page and served at `/test-worker/artifacts/{job id}/{n}`.

A file is served only when the job's result names it (by absolute path, in `files`, `artifact_path` or
`manifest_path`) and it lies inside the server's artifacts directory (SUPAWORKER_ARTIFACTS_DIR): a result
cannot make the server read anything else. Text files are served as plain text, never as HTML, and SVG is
not previewed. An `<img>` or `<audio>` element sends no Authorization header, so when reads need the key
the brief page (itself fetched with the key) links each file with a signature that expires.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from markdown_it import MarkdownIt
from markupsafe import Markup

from ..api.auth import check_key, reads_are_open
from ..rules import MAX_BIGINT

SIGNED_URL_SECONDS = 3600
SIGNED_URL_ROUNDING_SECONDS = 600
INLINE_TEXT_BYTES = 65_536  # Markdown, JSON and text shown inline up to this size
FILES_PER_JOB = 50
KINDS = {
    ".png": ("image", "image/png"),
    ".jpg": ("image", "image/jpeg"),
    ".jpeg": ("image", "image/jpeg"),
    ".gif": ("image", "image/gif"),
    ".webp": ("image", "image/webp"),
    ".wav": ("audio", "audio/wav"),
    ".mp3": ("audio", "audio/mpeg"),
    ".ogg": ("audio", "audio/ogg"),
    ".md": ("markdown", "text/plain; charset=utf-8"),
    ".json": ("json", "text/plain; charset=utf-8"),
    ".txt": ("text", "text/plain; charset=utf-8"),
}
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})

router = APIRouter(include_in_schema=False)


@dataclass
class Artifact:
    job_id: int
    index: int
    path: str
    name: str
    kind: str  # image, audio, markdown, json, text or file
    url: str = ""
    inline: Markup | None = None  # Markdown, JSON or text shown on the page
    missing: bool = False


def paths_in(result: Any) -> list[str]:
    """The absolute paths a result names, in order, once each (at most FILES_PER_JOB)."""
    if not isinstance(result, dict):
        return []
    found: list[str] = []
    candidates = [result.get("artifact_path"), *(result.get("files") or []), result.get("manifest_path")]
    for value in candidates:
        if isinstance(value, str) and value.startswith("/") and value not in found and "\x00" not in value:
            found.append(value)
    return found[:FILES_PER_JOB]


def _root(request: Request) -> Path:
    return Path(request.app.state.settings.artifacts_dir).resolve()


def _inside(root: Path, raw: str) -> Path | None:
    try:
        path = Path(raw).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None
    except (OSError, RuntimeError, ValueError):  # a name too long for the file system, a symlink loop
        return None


def _signature(request: Request, job_id: int, index: int, expires: int) -> str:
    keys = request.app.state.settings.keys
    secret = (keys[0] if keys else "").encode()
    return hmac.new(secret, f"artifact:{job_id}:{index}:{expires}".encode(), hashlib.sha256).hexdigest()


def artifacts_of(request: Request, job_id: int, result: Any) -> list[Artifact]:
    """The files of one job's result, each with its URL and, for text kinds, its content rendered inline."""
    root = _root(request)
    signed = not reads_are_open(request)
    # Rounded, so a re-rendered page keeps the same URLs (and the browser its images) for a while.
    expires = (int(time.time()) // SIGNED_URL_ROUNDING_SECONDS) * SIGNED_URL_ROUNDING_SECONDS + SIGNED_URL_SECONDS
    found = []
    for index, raw in enumerate(paths_in(result)):
        name = raw.rsplit("/", 1)[-1]
        suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
        kind = KINDS.get(suffix, ("file", ""))[0]
        url = f"/test-worker/artifacts/{job_id}/{index}"
        if signed:
            url += f"?e={expires}&s={_signature(request, job_id, index, expires)}"
        item = Artifact(job_id, index, raw, name, kind, url)
        path = _inside(root, raw)
        if path is None:
            item.missing = True
        elif kind in ("markdown", "json", "text"):
            item.inline = _inline(path, kind)
        found.append(item)
    return found


def _inline(path: Path, kind: str) -> Markup:
    with path.open("rb") as handle:
        data = handle.read(INLINE_TEXT_BYTES + 1)
    text = data[:INLINE_TEXT_BYTES].decode("utf-8", "replace")
    cut = (
        Markup('<p class="muted">shown up to {} bytes</p>').format(INLINE_TEXT_BYTES)
        if len(data) > INLINE_TEXT_BYTES
        else ""
    )
    if kind == "markdown":
        # Raw HTML in the file is not rendered (html=False): it shows as text.
        return Markup('<div class="markdown">{}</div>{}').format(Markup(_markdown.render(text)), cut)
    if kind == "json":
        with contextlib.suppress(ValueError, RecursionError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return Markup('<pre class="json">{}</pre>{}').format(text, cut)


def _denied(message: str, status: int = 404) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.get("/test-worker/artifacts/{job_id}/{index}")
def artifact(request: Request, job_id: str, index: str) -> Response:
    """One file of a job's result: with open reads, the key, or a valid signature from the brief page."""
    if not (job_id.isdigit() and index.isdigit()) or not 1 <= int(job_id) <= MAX_BIGINT or int(index) > 10_000:
        return _denied("no such artifact")
    job, number = int(job_id), int(index)
    if not reads_are_open(request):
        expires, signature = request.query_params.get("e", ""), request.query_params.get("s", "")
        valid = (
            expires.isdigit()
            and int(expires) >= time.time()
            and hmac.compare_digest(signature, _signature(request, job, number, int(expires)))
        )
        if not valid:
            check_key(request, request.app.state.settings)
    outcome = request.app.state.read_store.get_job_outcome(job)
    paths = paths_in(outcome[1]) if outcome else []
    if number >= len(paths):
        return _denied("no such artifact")
    path = _inside(_root(request), paths[number])
    if path is None:
        return _denied("the file is not in this server's artifacts directory")
    suffix = path.suffix.lower()
    media_type = KINDS.get(suffix, ("file", "application/octet-stream"))[1]
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})
