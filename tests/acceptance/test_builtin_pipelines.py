"""The built-in job types run by a real `supaworker worker` (no handler module needed), and an application's
handler replacing one of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import supaworker
from supaworker import BriefStatus
from supaworker.pipelines import PIPELINES
from supaworker.store import Store
from tests.support.waiting import wait_until

from ..conftest import run_cli, subprocess_env
from .pipeline_support import WorkerProcess, reap_workers

pytestmark = [pytest.mark.acceptance]


@pytest.fixture(autouse=True)
def _no_leftover_workers() -> Iterator[None]:
    yield
    reap_workers()


def finished(store: Store, brief_id: object) -> supaworker.Brief | None:
    brief = supaworker.get_brief(brief_id, store=store)  # type: ignore[arg-type]
    return brief if brief.status in (BriefStatus.COMPLETED, BriefStatus.FAILED, BriefStatus.CANCELLED) else None


def test_builtin_pipelines_of_every_media_type_make_their_artifacts(db: str, store: Store, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    ids = {
        media: supaworker.create_brief_with_job(
            user_id="u", title="Trams", query=f"Make a {media} about the history of Lisbon trams",
            media_type=media, use_pipeline=True, store=store,
        ).brief.id
        for media in sorted(PIPELINES)
    }  # fmt: skip
    worker = WorkerProcess(db, tmp_path / "worker.log", "--concurrency", "4", SUPAWORKER_ARTIFACTS_DIR=str(artifacts))
    try:
        for media, brief_id in ids.items():
            brief = wait_until(lambda b=brief_id: finished(store, b), timeout=120, what=f"{media} brief")
            assert brief.status is BriefStatus.COMPLETED, f"{media}: {brief.failed_step}: {brief.error}"
            assert [s.type for s in brief.steps] == list(PIPELINES[media])
            for before, step in zip(brief.steps, brief.steps[1:], strict=False):
                assert step.started_at >= before.completed_at
            analysis = brief.steps[0].result
            assert "trams" in [k.lower() for k in analysis["keywords"]]
            result = brief.result
            assert result == brief.steps[-1].result and result["media_type"] == media
            artifact, manifest = Path(result["artifact_path"]), Path(result["manifest_path"])
            assert artifact.is_file() and artifact.stat().st_size > 0
            assert artifact.is_relative_to(artifacts / "briefs" / str(brief_id))
            listed = json.loads(manifest.read_text())
            assert listed["brief"]["brief_id"] == str(brief_id)
            assert listed["artifact"]["path"] == str(artifact) and listed["artifact"]["exists"]
            assert all(Path(f["path"]).is_file() for f in listed["files"])
            assert result["steps"] == list(PIPELINES[media][:-1])
    finally:
        assert worker.stop() == 0, worker.log()


def test_application_handler_replaces_the_builtin_of_its_type(db: str, store: Store, tmp_path: Path) -> None:
    brief_id = supaworker.create_brief_with_job(
        user_id="u", query="a jingle about bicycles", media_type="audio", use_pipeline=True, store=store
    ).brief.id
    worker = WorkerProcess(db, tmp_path / "worker.log", "--import", "tests.support.handlers.overrides",
                           SUPAWORKER_ARTIFACTS_DIR=str(tmp_path / "artifacts"))  # fmt: skip
    try:
        brief = wait_until(lambda: finished(store, brief_id), timeout=120, what="brief")
        assert brief.status is BriefStatus.COMPLETED, brief.error
        assert brief.result == {"rendered_by": "application", "upstream": ["analysis", "asset_prep"]}
        assert "assets" in brief.steps[1].result  # the built-in asset_prep still ran
    finally:
        assert worker.stop() == 0, worker.log()


def test_builtin_rejects_a_bad_payload_at_once_without_retries(db: str, store: Store, tmp_path: Path) -> None:
    bad = supaworker.create_job("analysis", {"query": 5}, max_attempts=5, store=store)
    worker = WorkerProcess(db, tmp_path / "worker.log", SUPAWORKER_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    try:
        job = wait_until(lambda: (j := supaworker.get_job(bad.id, store=store)).status == "failed" and j)
        assert job.attempts == 1
        assert job.last_error.startswith(
            f"UnrecoverableError: bad payload for analysis job {bad.id}: payload field 'query' must be a string"
        )
    finally:
        assert worker.stop() == 0, worker.log()


def test_worker_without_builtins_or_handlers_refuses_to_start(db: str) -> None:
    result = run_cli(db, "worker", "--no-builtins", env=subprocess_env(db))
    assert result.returncode == 2
    assert "no handlers registered" in result.stderr
    typed = run_cli(db, "worker", "--no-builtins", "--type", "render", env=subprocess_env(db))
    assert typed.returncode == 2 and "render" in typed.stderr
