"""Briefs on a real database: creation, validation, derived status, cancel and retry (jobs driven by hand)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

import supaworker
from supaworker import BriefNotFound, BriefStatus, InvalidBrief, InvalidJob, InvalidTransition, JobStatus
from supaworker.pipelines import PIPELINES
from supaworker.store import Store

from .test_dependencies import fail_for_good, run

BRIEF = {"user_id": "user-1", "title": "AI", "description": "a short film", "query": "make a video about AI"}


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    return conn.execute(
        "SELECT (SELECT count(*) FROM supaworker.briefs), (SELECT count(*) FROM supaworker.jobs)"
    ).fetchone()


def test_brief_without_pipeline_runs_one_analysis_job(store: Store) -> None:
    brief, job = supaworker.create_brief_with_job(**BRIEF, media_type="video", store=store)
    assert brief.status is BriefStatus.PENDING and brief.pipeline == ["analysis"] and not brief.use_pipeline
    assert (job.type, job.status, job.brief_id) == ("analysis", JobStatus.PENDING, brief.id)
    assert job.payload == {
        "brief_id": str(brief.id),
        "title": "AI",
        "description": "a short film",
        "query": "make a video about AI",
        "media_type": "video",
    }
    assert [s.id for s in brief.steps] == [job.id]


@pytest.mark.parametrize("media_type", sorted(PIPELINES))
def test_brief_with_pipeline_creates_the_chain_of_its_media_type(
    store: Store, conn: psycopg.Connection, media_type: str
) -> None:
    brief, job = supaworker.create_brief_with_job(**BRIEF, media_type=media_type, use_pipeline=True, store=store)
    assert [s.type for s in brief.steps] == list(PIPELINES[media_type]) == brief.pipeline
    assert [s.status for s in brief.steps] == [JobStatus.PENDING] + [JobStatus.WAITING] * (len(brief.steps) - 1)
    ids = [s.id for s in brief.steps]
    assert [s.extra["depends_on"] for s in brief.steps] == [[]] + [[i] for i in ids[:-1]]
    assert job.id == ids[0]
    # Each step becomes runnable only when the previous one completed.
    for i, step_id in enumerate(ids):
        run(conn, step_id, {"step": brief.steps[i].type})
        current = supaworker.get_brief(brief.id, store=store)
        expected = BriefStatus.COMPLETED if i == len(ids) - 1 else BriefStatus.PROCESSING
        assert current.status is expected
        assert current.steps_completed == i + 1
    done = supaworker.get_brief(str(brief.id), store=store)
    assert done.result == {"step": "render"}
    assert done.completed_at is not None and done.error is None


def test_brief_and_jobs_roll_back_with_the_callers_transaction(db: str) -> None:
    with psycopg.connect(db) as app:
        created = supaworker.create_brief_with_job(**BRIEF, media_type="text", use_pipeline=True, conn=app)
        assert len(created.brief.steps) == 3
        app.rollback()
    with psycopg.connect(db) as check:
        assert counts(check) == (0, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"media_type": "hologram"}, "media_type must be one of video, image, audio, text"),
        ({"media_type": "Video"}, "media_type must be one of"),
        ({"media_type": None}, "media_type must be one of"),
        ({"query": ""}, "query must be a non-empty string"),
        ({"query": "   "}, "query must be a non-empty string"),
        ({"query": 42}, "query must be a string"),
        ({"query": "x" * 20_001}, "query must be at most 20000"),
        ({"title": None}, "title must be a string"),
        ({"description": ["a"]}, "description must be a string"),
        ({"user_id": ""}, "user_id must be a non-empty string"),
        ({"user_id": 7}, "user_id must be a string"),
        ({"use_pipeline": "yes"}, "use_pipeline must be true or false"),
        ({"use_pipeline": 1}, "use_pipeline must be true or false"),
        ({"steps": []}, "between 1 and"),
        ({"steps": "analysis"}, "steps must be a list"),
        ({"steps": ["analysis", ""]}, "non-empty job type"),
        ({"options": {"f": object()}}, "JSON-serialisable"),
        ({"options": ["x"]}, "options must be a mapping"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_brief_is_rejected_and_nothing_is_written(
    store: Store, conn: psycopg.Connection, change: dict, message: str
) -> None:
    fields = {**BRIEF, "media_type": "video", **change}
    with pytest.raises(InvalidBrief, match=message) as caught:
        supaworker.create_brief_with_job(**fields, store=store)
    assert isinstance(caught.value, InvalidJob)
    assert counts(conn) == (0, 0)


def test_database_refuses_a_bad_brief_in_plain_sql(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="briefs_media_type_valid"):
        conn.execute("INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline) "
                     "VALUES ('u', 'q', 'smell', '{analysis}')")  # fmt: skip
    with pytest.raises(psycopg.errors.CheckViolation, match="briefs_query_valid"):
        conn.execute("INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline) "
                     "VALUES ('u', ' ', 'text', '{analysis}')")  # fmt: skip


def test_user_id_may_be_a_uuid(store: Store) -> None:
    user = uuid.uuid4()
    brief, _ = supaworker.create_brief_with_job(**{**BRIEF, "user_id": user}, media_type="text", store=store)
    assert brief.user_id == str(user)
    assert [b.id for b in supaworker.list_briefs(user_id=str(user), store=store)] == [brief.id]


def test_failed_step_marks_brief_failed_and_retry_resumes_from_it(store: Store, conn: psycopg.Connection) -> None:
    brief, _ = supaworker.create_brief_with_job(**BRIEF, media_type="image", use_pipeline=True, store=store)
    analysis, asset_prep, image_processing, render = (s.id for s in brief.steps)
    run(conn, analysis)
    fail_for_good(conn, asset_prep, "ValueError: no palette")
    failed = supaworker.get_brief(brief.id, store=store)
    assert failed.status is BriefStatus.FAILED
    assert (failed.failed_step, failed.failed_job_id, failed.error) == (
        "asset_prep",
        asset_prep,
        "ValueError: no palette",
    )
    assert [s.status for s in failed.steps] == ["completed", "failed", "cancelled", "cancelled"]
    # No later step can run.
    assert conn.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'pending'").fetchone() == (0,)

    assert supaworker.retry_job(asset_prep, store=store) == "pending"
    resumed = supaworker.get_brief(brief.id, store=store)
    assert resumed.status is BriefStatus.PROCESSING and resumed.error is None
    assert [s.status for s in resumed.steps] == ["completed", "pending", "waiting", "waiting"]
    for step in (asset_prep, image_processing, render):
        run(conn, step)
    assert supaworker.get_brief(brief.id, store=store).status is BriefStatus.COMPLETED
    # The completed first step ran once.
    assert conn.execute("SELECT attempts FROM supaworker.jobs WHERE id = %s", (analysis,)).fetchone() == (1,)


def test_retry_brief_resumes_a_failed_brief(store: Store, conn: psycopg.Connection) -> None:
    brief, job = supaworker.create_brief_with_job(**BRIEF, media_type="audio", use_pipeline=True, store=store)
    fail_for_good(conn, job.id)
    assert supaworker.get_brief(brief.id, store=store).status is BriefStatus.FAILED
    resumed = supaworker.retry_brief(brief.id, store=store)
    assert resumed.status is BriefStatus.PROCESSING  # the first step has been tried
    assert [s.status for s in resumed.steps] == ["pending", "waiting", "waiting"]
    with pytest.raises(InvalidTransition, match="only failed or cancelled briefs"):
        supaworker.retry_brief(brief.id, store=store)


def test_cancel_brief_cancels_pending_steps_and_retry_brings_them_back(store: Store, conn: psycopg.Connection) -> None:
    brief, _ = supaworker.create_brief_with_job(**BRIEF, media_type="video", use_pipeline=True, store=store)
    first, *_ = (s.id for s in brief.steps)
    run(conn, first)
    cancelled = supaworker.cancel_brief(brief.id, "user changed their mind", store=store)
    assert cancelled.status is BriefStatus.CANCELLED and cancelled.error == "user changed their mind"
    assert [s.status for s in cancelled.steps] == ["completed", "cancelled", "cancelled", "cancelled"]
    assert cancelled.completed_at is not None
    with pytest.raises(InvalidTransition, match="no unfinished step"):
        supaworker.cancel_brief(brief.id, store=store)

    resumed = supaworker.retry_brief(brief.id, store=store)
    assert [s.status for s in resumed.steps] == ["completed", "pending", "waiting", "waiting"]
    assert resumed.status is BriefStatus.PROCESSING


def test_cancel_brief_drops_a_running_step(store: Store, conn: psycopg.Connection) -> None:
    brief, job = supaworker.create_brief_with_job(**BRIEF, media_type="text", use_pipeline=True, store=store)
    conn.execute("SELECT supaworker.claim_jobs('w', ARRAY['analysis'], 1)")
    supaworker.cancel_brief(brief.id, store=store)
    # The worker's completion is fenced out, and nothing after it runs.
    assert conn.execute("SELECT supaworker.complete_job(%s, 'w')", (job.id,)).fetchone() == (False,)
    assert {s.status for s in supaworker.get_brief(brief.id, store=store).steps} == {"cancelled"}


def test_application_pipeline_with_storyboard(store: Store, conn: psycopg.Connection) -> None:
    steps = ["analysis", "storyboard", "video_generation", "render"]
    brief, _ = supaworker.create_brief_with_job(
        **BRIEF, media_type="video", steps=steps, options={"scene_count": 3}, store=store
    )
    assert brief.pipeline == steps and brief.use_pipeline
    assert [s.type for s in brief.steps] == steps
    assert all(s.payload["scene_count"] == 3 and s.payload["media_type"] == "video" for s in brief.steps)


def test_jobs_created_later_with_the_brief_id_count_towards_its_status(store: Store, conn: psycopg.Connection) -> None:
    brief, job = supaworker.create_brief_with_job(**BRIEF, media_type="text", store=store)
    extra = supaworker.create_job("thumbnail", brief_id=brief.id, depends_on=[job.id], store=store)
    run(conn, job.id, {"from": "analysis"})
    assert supaworker.get_brief(brief.id, store=store).status is BriefStatus.PROCESSING
    run(conn, extra.id, {"from": "thumbnail"})
    done = supaworker.get_brief(brief.id, store=store)
    assert done.status is BriefStatus.COMPLETED and done.result == {"from": "thumbnail"}


def test_get_brief_of_unknown_or_malformed_id_is_not_found(store: Store) -> None:
    with pytest.raises(BriefNotFound):
        supaworker.get_brief(uuid.uuid4(), store=store)
    with pytest.raises(BriefNotFound, match="not a UUID"):
        supaworker.get_brief("nope", store=store)


def test_list_briefs_filters_by_user_and_status(store: Store, conn: psycopg.Connection) -> None:
    a, job = supaworker.create_brief_with_job(**BRIEF, media_type="text", store=store)
    b, _ = supaworker.create_brief_with_job(**{**BRIEF, "user_id": "user-2"}, media_type="image", store=store)
    run(conn, job.id)
    assert [x.id for x in supaworker.list_briefs(store=store)] == [b.id, a.id]
    assert [x.id for x in supaworker.list_briefs(user_id="user-2", store=store)] == [b.id]
    assert [x.id for x in supaworker.list_briefs(status="completed", store=store)] == [a.id]
    with pytest.raises(InvalidBrief, match="status must be one of"):
        supaworker.list_briefs(status="done", store=store)


def test_create_brief_with_default_client(default_client: None) -> None:
    brief, job = supaworker.create_brief_with_job(user_id="u", query="a poem about tea", media_type="text")
    assert supaworker.get_brief(brief.id).steps[0].id == job.id


def test_listings_narrow_by_their_filters_and_refuse_an_unknown_one(store: Store) -> None:
    supaworker.create_brief_with_job(user_id="u1", query="q", media_type="text", store=store)
    supaworker.create_brief_with_job(user_id="u2", query="q", media_type="text", store=store)
    assert [b["user_id"] for b in store.list_briefs(user_id="u1")] == ["u1"]
    assert len(store.list_jobs(type="analysis")) == 2 and store.list_jobs(status="failed") == []
    with pytest.raises(TypeError, match="unexpected filter 'users_id'"):
        store.list_briefs(users_id="u1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected filter 'stauts'"):
        store.list_jobs(stauts="failed")  # type: ignore[call-arg]
