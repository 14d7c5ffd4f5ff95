"""Pure logic of pipelines, dependencies and the built-in adapter (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from supaworker import InvalidJob, Job, UnrecoverableError, pipelines
from supaworker.builtins import artifacts_dir_for, as_handler, register_builtins
from supaworker.dependencies import check_depends_on, check_parents, topological_order
from supaworker.handlers import BUILTIN_HANDLERS, PayloadError, StepContext
from supaworker.handlers.base import PIPELINES as HANDLER_PIPELINES
from supaworker.registry import Registry


def make_job(job_type: str = "analysis", payload: object = None, brief_id: UUID | None = None) -> Job:
    now = datetime.now(UTC)
    return Job(7, job_type, "default", 0, payload if payload is not None else {}, 1, 3, None, brief_id, now, now, now)


def test_pipelines_are_the_documented_chains_and_agree_with_the_handlers() -> None:
    assert pipelines.PIPELINES == {
        "video": ("analysis", "asset_prep", "video_generation", "render"),
        "image": ("analysis", "asset_prep", "image_processing", "render"),
        "audio": ("analysis", "asset_prep", "render"),
        "text": ("analysis", "text_analysis", "render"),
    }
    assert HANDLER_PIPELINES == pipelines.PIPELINES
    assert set(pipelines.JOB_TYPES) == set(BUILTIN_HANDLERS)
    assert pipelines.steps_for("video", False) == ("analysis",)
    with pytest.raises(ValueError, match="media_type"):
        pipelines.steps_for("smell", True)


def test_check_depends_on_keeps_order_drops_duplicates_and_names_bad_entries() -> None:
    assert check_depends_on(None) == []
    assert check_depends_on([3, 1, 3]) == [3, 1]
    assert check_depends_on(("a", 2, "a"), allow_keys=True) == ["a", 2]
    for bad in (7, "7", {1: 1}, [None], [-1], [2**63], [""], [1.0]):
        with pytest.raises(InvalidJob):
            check_depends_on(bad, allow_keys=True)
    with pytest.raises(InvalidJob, match="at most 1000"):
        check_depends_on(range(1, 1002))


def test_check_parents_decides_the_starting_status() -> None:
    assert check_parents("j", [1, 2], {1: "completed", 2: "completed"}) == "pending"
    assert check_parents("j", [1, 2], {1: "completed", 2: "processing"}) == "waiting"
    with pytest.raises(InvalidJob, match="unknown job id"):
        check_parents("j", [1, 9], {1: "completed"})
    with pytest.raises(InvalidJob, match="job 2 is failed"):
        check_parents("j", [1, 2], {1: "waiting", 2: "failed"})


def test_topological_order_puts_parents_first_and_names_a_cycle() -> None:
    keys = ["join", "left", "right", "root"]
    order = topological_order(keys, {0: [1, 2], 1: [3], 2: [3]})
    assert order.index(3) < order.index(1) < order.index(0) and order.index(2) < order.index(0)
    with pytest.raises(InvalidJob, match=r"cycle: 'a' -> 'b' -> 'a'"):
        topological_order(["a", "b"], {0: [1], 1: [0]})
    with pytest.raises(InvalidJob, match=r"cycle: #0 -> #0"):
        topological_order([None], {0: [0]})
    # A long chain needs no recursion.
    n = 20_000
    assert topological_order([None] * n, {i: [i + 1] for i in range(n - 1)}) == list(range(n - 1, -1, -1))


def test_artifacts_go_to_a_directory_per_job_grouped_by_brief(tmp_path: Path) -> None:
    brief = UUID(int=5)
    assert (
        artifacts_dir_for(tmp_path, make_job("render", brief_id=brief)) == tmp_path / "briefs" / str(brief) / "7-render"
    )
    assert artifacts_dir_for(tmp_path, make_job("render")) == tmp_path / "jobs" / "7-render"


def test_builtin_handler_gets_a_step_context_and_bad_payload_is_unrecoverable(tmp_path: Path) -> None:
    seen: list[StepContext] = []

    def step(ctx: StepContext) -> dict:
        seen.append(ctx)
        if ctx.payload.get("bad"):
            raise PayloadError("payload field 'bad' must not be set")
        return {"ok": True}

    handler = as_handler(step, tmp_path)
    job = make_job("analysis", {"query": "q"})
    job.upstream = {"earlier": {"x": 1}}
    assert handler(job) == {"ok": True}
    assert (seen[0].job_id, seen[0].job_type, dict(seen[0].upstream)) == (7, "analysis", {"earlier": {"x": 1}})
    assert seen[0].artifacts_dir == tmp_path.resolve() / "jobs" / "7-analysis"
    with pytest.raises(UnrecoverableError, match="bad payload for analysis job 7: payload field 'bad'"):
        handler(make_job("analysis", {"bad": True}))


def test_register_builtins_leaves_the_applications_handlers_in_place(tmp_path: Path) -> None:
    registry = Registry()

    def mine(job: Job) -> str:
        return "mine"

    registry.register("render", mine)
    added = register_builtins(registry, tmp_path)
    assert sorted(added) == sorted(t for t in pipelines.JOB_TYPES if t != "render")
    assert registry.get("render").func is mine
    assert register_builtins(registry, tmp_path) == []


def test_builtin_analysis_runs_through_the_adapter(tmp_path: Path) -> None:
    handler = as_handler(BUILTIN_HANDLERS["analysis"], tmp_path)
    result = handler(make_job("analysis", {"query": "Make a video about Lisbon trams", "media_type": "video"}))
    assert "trams" in [k.lower() for k in result["keywords"]]
