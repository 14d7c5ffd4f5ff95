"""The dashboard in a real browser (Debian's Chromium driven by Playwright): live updates without a reload,
retry from the page with the key, hostile job data shown as text, and briefs run by a real worker with the
built-in handlers. Screenshots go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from supaworker.pipelines import PIPELINES
from supaworker.store import Store
from tests.acceptance.pipeline_support import WorkerProcess
from tests.conftest import REPO
from tests.support.api import AUTH, KEY, claim, complete, fail, make_app, serve
from tests.support.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
BRIEF_WAIT_MS = 120_000  # only bounds a broken run; each wait ends as soon as the page shows the state
BRIEF = {
    "user_id": "user-1",
    "title": "My Video Project",
    "description": "Create a video about AI",
    "query": "Generate a video about artificial intelligence",
    "media_type": "video",
    "use_pipeline": True,
}
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def browser_page() -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        try:
            yield page
        finally:
            browser.close()


def screenshot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)  # type: ignore[attr-defined]


def test_dashboard_updates_live_retries_from_the_page_and_shows_html_as_text(
    store: Store, db: str, conn: psycopg.Connection, browser_page: object
) -> None:
    page = browser_page
    app = make_app(store, db)  # reads closed: the page needs the key for everything
    with serve(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        failed = http.post("/api/jobs", json={"type": "render", "payload": {"note": HOSTILE}}).json()["job"]
        fail(conn, claim(conn), HOSTILE)

        page.goto(f"{base}/test-worker")  # type: ignore[attr-defined]
        page.fill("#key", KEY)  # type: ignore[attr-defined]
        page.click("#key-form button")  # type: ignore[attr-defined]
        row = page.locator(f'#panel-failures tr[data-job-id="{failed["id"]}"]')  # type: ignore[attr-defined]
        row.wait_for()
        assert HOSTILE in row.locator("td.error").inner_text()
        assert page.evaluate("window.pwned") is None  # type: ignore[attr-defined]
        page.evaluate("window.notReloaded = true")  # type: ignore[attr-defined]
        page.locator("#live.on").wait_for()  # type: ignore[attr-defined]

        # Created through the API: shows up in the pending queue without a reload.
        fresh = http.post("/api/jobs", json={"type": "analysis", "payload": {"n": 1}}).json()["job"]
        page.locator(f'#panel-pending tr[data-job-id="{fresh["id"]}"]').wait_for()  # type: ignore[attr-defined]

        # Retry the failed job from the page.
        row.locator('button[data-action="retry"]').click()
        wait_until(
            lambda: (
                conn.execute("SELECT status::text FROM supaworker.jobs WHERE id = %s", (failed["id"],)).fetchone()[0]
                == "pending"
            ),
            "the retried job to be pending",
        )
        page.locator(f'#panel-pending tr[data-job-id="{failed["id"]}"]').wait_for()  # type: ignore[attr-defined]
        assert "retry done" in page.inner_text("#flash")  # type: ignore[attr-defined]

        # Work moves: the fresh job completes and the statistics follow, still without a reload.
        complete(conn, claim(conn))
        page.locator('#panel-stats td:has-text("analysis")').wait_for()  # type: ignore[attr-defined]
        page.wait_for_function(  # type: ignore[attr-defined]
            # A function, not a bare expression: Playwright evaluates the latter with eval(), which the
            # dashboard's Content-Security-Policy forbids.
            "() => document.querySelector('.card.st-completed .n').textContent.trim() === '1'"
        )
        assert page.evaluate("window.notReloaded") is True  # type: ignore[attr-defined]
        assert page.evaluate("window.pwned") is None  # type: ignore[attr-defined]
        screenshot(page, "dashboard-jobs.png")


def steps_of(page: Any, brief_id: str) -> list[tuple[str, str]]:
    """(type, status) of each step the page shows for a brief."""
    return page.eval_on_selector_all(
        f"#brief-{brief_id} li.step", "steps => steps.map(s => [s.dataset.step, s.dataset.status])"
    )


def wait_for_steps(page: Any, brief_id: str, expected: list[str]) -> None:
    """Waits until the page shows the brief's steps in exactly these statuses (pushed over SSE, no reload)."""
    page.wait_for_function(
        "([id, expected]) => JSON.stringify([...document.querySelectorAll(`#brief-${id} li.step`)]"
        ".map(s => s.dataset.status)) === JSON.stringify(expected)",
        arg=[brief_id, expected],
        timeout=BRIEF_WAIT_MS,
    )


def wait_for_brief_status(page: Any, brief_id: str, status: str) -> None:
    """Waits until the brief's own status reads `status`: it comes from the briefs view, read beside its steps
    in a panel refresh, and may follow them by one refresh."""
    page.wait_for_function(
        "([id, status]) => document.querySelector(`#brief-${id}`)?.dataset.status === status",
        arg=[brief_id, status],
        timeout=BRIEF_WAIT_MS,
    )


def test_briefs_run_by_a_real_worker_show_their_steps_completing_live_and_a_failed_step_retries_from_the_page(
    store: Store, db: str, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    flag = tmp_path / "render-is-broken"
    worker = WorkerProcess(
        db,
        tmp_path / "worker.log",
        "--import",
        "tests.support.handlers.flaky_render",
        SUPAWORKER_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
        FAIL_RENDER_FLAG=str(flag),
    )
    app = make_app(store, db, public_reads=True)
    try:
        with serve(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
            page.goto(f"{base}/test-worker")
            page.fill("#key", KEY)
            page.click("#key-form button")
            page.locator("#live.on").wait_for()
            page.evaluate("window.notReloaded = true")

            # A text brief through the API: the built-in handlers run each step, and the page follows.
            text = http.post("/api/briefs", json={**BRIEF, "media_type": "text", "title": "Release notes"})
            assert text.status_code == 201, text.text
            text_id = text.json()["brief"]["id"]
            page.locator(f"#brief-{text_id} li.step").first.wait_for()
            assert [t for t, _ in steps_of(page, text_id)] == list(PIPELINES["text"])
            wait_for_steps(page, text_id, ["completed"] * 3)
            wait_for_brief_status(page, text_id, "completed")
            assert page.get_attribute(f"#brief-{text_id}", "data-status") == "completed"

            # A video brief whose render fails (and whose title is hostile markup): it stops at that step.
            flag.write_text("the render farm is down")
            video = http.post("/api/briefs", json={**BRIEF, "title": HOSTILE})
            assert video.status_code == 201, video.text
            video_id = video.json()["brief"]["id"]
            wait_for_steps(page, video_id, ["completed", "completed", "completed", "failed"])
            brief = page.locator(f"#brief-{video_id}")
            assert brief.get_attribute("data-status") == "failed"
            assert brief.locator(".title").inner_text() == HOSTILE
            assert "render failed" in brief.locator(".error").inner_text()
            assert "the render farm is down" in brief.locator(".error").inner_text()
            assert page.evaluate("window.pwned") is None

            # Fix the cause, retry the failed step from the page: the brief completes, still without a reload.
            flag.unlink()
            brief.locator('li.step[data-step="render"] button[data-action="retry"]').click()
            wait_for_steps(page, video_id, ["completed"] * 4)
            wait_for_brief_status(page, video_id, "completed")
            assert page.get_attribute(f"#brief-{video_id}", "data-status") == "completed"
            assert "retry done" in page.inner_text("#flash")
            done = http.get(f"/api/briefs/{video_id}").json()["brief"]
            assert done["status"] == "completed" and done["step_statuses"][-1]["attempts"] == 2
            assert page.evaluate("window.notReloaded") is True
            assert page.evaluate("window.pwned") is None
            screenshot(page, "dashboard-briefs.png")
    finally:
        assert worker.stop() == 0, worker.log()
