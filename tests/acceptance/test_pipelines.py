"""Brief pipelines and job dependencies run by real worker subprocesses on a real database.

The handlers are the small recording ones of `pipeline_handlers` (imported with `--import`, so they also
replace any built-in handler of the same type).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import supaworker
from supaworker import Brief, BriefStatus
from supaworker.pipelines import PIPELINES
from supaworker.store import Store
from tests.support.waiting import wait_until

from ..conftest import run_cli
from .pipeline_support import WorkerProcess, reap_workers

pytestmark = [pytest.mark.acceptance]


@pytest.fixture(autouse=True)
def _no_leftover_workers() -> Iterator[None]:
    yield
    reap_workers()


HANDLERS = "tests.support.handlers.pipeline"


def start_worker(db: str, tmp_path: Path, name: str = "worker", *args: str) -> WorkerProcess:
    return WorkerProcess(db, tmp_path / f"{name}.log", "--import", HANDLERS, *args)


def brief_in(store: Store, brief_id: object, *statuses: BriefStatus) -> Brief | None:
    brief = supaworker.get_brief(brief_id, store=store)  # type: ignore[arg-type]
    return brief if brief.status in statuses else None


def assert_ran_in_order(brief: Brief) -> None:
    """Each step started after the one before it completed, and saw the results of every earlier step."""
    assert [s.type for s in brief.steps] == brief.pipeline
    assert all(s.status == "completed" for s in brief.steps)
    for i, step in enumerate(brief.steps):
        assert step.result["step"] == step.type
        assert step.result["upstream"] == sorted(brief.pipeline[:i])
        assert step.result["upstream_steps"] == {s.type: s.id for s in brief.steps[:i]}
        if i:
            before = brief.steps[i - 1]
            assert step.started_at is not None and before.completed_at is not None
            assert step.started_at >= before.completed_at, f"{step.type} started before {before.type} completed"


def test_every_media_type_pipeline_runs_to_completion_in_order(db: str, store: Store, tmp_path: Path) -> None:
    briefs = {
        media: supaworker.create_brief_with_job(
            user_id="u", query=f"make {media} about tides", media_type=media, use_pipeline=True, store=store
        ).brief.id
        for media in sorted(PIPELINES)
    }
    single = supaworker.create_brief_with_job(user_id="u", query="just analyse", media_type="video", store=store)
    worker = start_worker(db, tmp_path, "worker", "--concurrency", "4")
    try:
        for media, brief_id in briefs.items():
            done = wait_until(lambda b=brief_id: brief_in(store, b, BriefStatus.COMPLETED, BriefStatus.FAILED),
                              what=f"{media} brief")  # fmt: skip
            assert done.status is BriefStatus.COMPLETED, done.error
            assert done.pipeline == list(PIPELINES[media])
            assert_ran_in_order(done)
            assert done.result == done.steps[-1].result and done.result["step"] == "render"
        only = wait_until(lambda: brief_in(store, single.brief.id, BriefStatus.COMPLETED))
        assert [s.type for s in only.steps] == ["analysis"]
    finally:
        assert worker.stop() == 0, worker.log()


def test_failing_middle_step_stops_the_chain_and_cli_retry_resumes_it(db: str, store: Store, tmp_path: Path) -> None:
    brief_id = supaworker.create_brief_with_job(
        user_id="u", query="a clip fail-once:video_generation", media_type="video", use_pipeline=True, store=store
    ).brief.id
    worker = start_worker(db, tmp_path)
    try:
        failed = wait_until(lambda: brief_in(store, brief_id, BriefStatus.FAILED, BriefStatus.COMPLETED))
        assert failed.status is BriefStatus.FAILED
        assert failed.failed_step == "video_generation"
        assert "video_generation was told to fail once" in (failed.error or "")
        assert [s.status for s in failed.steps] == ["completed", "completed", "failed", "cancelled"]
        time.sleep(0.5)  # no later step runs meanwhile
        render = supaworker.get_brief(brief_id, store=store).steps[-1]
        assert (render.status, render.attempts, render.started_at) == ("cancelled", 0, None)

        shown = run_cli(db, "brief", "show", str(brief_id))
        assert shown.returncode == 0, shown.stderr
        assert f"failed at step video_generation (job {failed.failed_job_id})" in shown.stdout

        retried = run_cli(db, "retry", str(failed.failed_job_id))
        assert retried.returncode == 0, retried.stderr
        # The brief as the command read it after the retry: the worker may finish the rest of it in between.
        said = rf"job {failed.failed_job_id}: pending \(brief {brief_id}: (processing|completed)\)"
        assert re.search(said, retried.stdout), retried.stdout

        done = wait_until(lambda: brief_in(store, brief_id, BriefStatus.COMPLETED, BriefStatus.FAILED))
        assert done.status is BriefStatus.COMPLETED
        assert_ran_in_order(done)
        assert [s.attempts for s in done.steps] == [1, 1, 2, 1]
    finally:
        assert worker.stop() == 0, worker.log()


def test_fan_out_and_fan_in_with_concurrent_workers(db: str, store: Store, tmp_path: Path) -> None:
    root = supaworker.create_job("part", {"test": "slow:part=0.05"}, store=store)
    parts = [supaworker.create_job("part", {"i": i}, depends_on=[root.id], store=store).id for i in range(6)]
    join = supaworker.create_job("join", depends_on=parts, store=store)
    leaves = [supaworker.create_job("leaf", {"i": i}, depends_on=[join.id, root.id], store=store).id for i in range(3)]
    workers = [start_worker(db, tmp_path, f"w{i}", "--concurrency", "3") for i in range(2)]
    try:
        wait_until(lambda: all(supaworker.get_job(i, store=store).status == "completed" for i in leaves),
                   what="leaves")  # fmt: skip
        joined = supaworker.get_job(join.id, store=store)
        assert joined.result["upstream_ids"] == sorted([root.id, *parts])
        for part in parts:
            done = supaworker.get_job(part, store=store)
            assert joined.started_at >= done.completed_at
            assert done.result["upstream_ids"] == [root.id]
        for leaf in leaves:
            assert supaworker.get_job(leaf, store=store).result["upstream_ids"] == sorted([root.id, *parts, join.id])
    finally:
        codes = [w.stop() for w in workers]
        assert codes == [0, 0], [w.log() for w in workers]


def test_permanent_failure_of_a_parent_cancels_its_dependents_in_a_running_worker(
    db: str, store: Store, tmp_path: Path
) -> None:
    bad = supaworker.create_job("part", {"test": "fail:part"}, store=store)
    good = supaworker.create_job("part", store=store)
    join = supaworker.create_job("join", depends_on=[bad.id, good.id], store=store)
    worker = start_worker(db, tmp_path)
    try:
        cancelled = wait_until(lambda: (j := supaworker.get_job(join.id, store=store)).status == "cancelled" and j)
        assert f"dependency {bad.id} failed" in cancelled.last_error
        assert "part was told to fail" in cancelled.last_error
        assert cancelled.attempts == 0
    finally:
        assert worker.stop() == 0, worker.log()


def test_worker_killed_mid_step_loses_no_step(db: str, store: Store, tmp_path: Path) -> None:
    brief_id = supaworker.create_brief_with_job(
        user_id="u", query="a film slow:video_generation=3", media_type="video", use_pipeline=True, store=store
    ).brief.id
    first = start_worker(db, tmp_path, "first")
    try:
        wait_until(lambda: supaworker.get_brief(brief_id, store=store).steps[2].status == "processing",
                   what="video_generation to start")  # fmt: skip
    finally:
        first.kill()
    second = start_worker(db, tmp_path, "second")
    try:
        done = wait_until(lambda: brief_in(store, brief_id, BriefStatus.COMPLETED, BriefStatus.FAILED), timeout=60)
        assert done.status is BriefStatus.COMPLETED, done.error
        assert_ran_in_order(done)
        assert [s.attempts for s in done.steps] == [1, 1, 2, 1]
        assert "died while running the job" in done.steps[2].errors[0]["error"]
    finally:
        assert second.stop() == 0, second.log()


@pytest.mark.slow
def test_workers_killed_again_and_again_lose_no_step_of_any_pipeline(db: str, store: Store, tmp_path: Path) -> None:
    """SIGKILL at random moments, including between a completion and the next claim: every chain still
    completes, each step after the one before it."""
    rng = random.Random(7)
    ids = [
        supaworker.create_brief_with_job(
            user_id="u", query=f"brief {i} slow:asset_prep=0.1 slow:render=0.1", media_type=media,
            use_pipeline=True, max_attempts=50, store=store,
        ).brief.id
        for i, media in enumerate(sorted(PIPELINES) * 3)
    ]  # fmt: skip

    def all_done() -> bool:
        return all(supaworker.get_brief(b, store=store).status is BriefStatus.COMPLETED for b in ids)

    kills = 0
    deadline = time.monotonic() + 180
    while not all_done():
        if time.monotonic() > deadline:
            steps = [supaworker.get_brief(b, store=store).steps for b in ids]
            states = [[(s.type, str(s.status), s.attempts) for s in brief_steps] for brief_steps in steps]
            raise AssertionError(f"pipelines did not finish after {kills} kills: {states}")
        worker = start_worker(db, tmp_path, f"run{kills}", "--concurrency", "4")
        try:
            wait_until(lambda w=worker: w.started() or w.proc.poll() is not None, what="worker start")
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            worker.kill()
        kills += 1
    assert kills >= 2
    for b in ids:
        assert_ran_in_order(supaworker.get_brief(b, store=store))
