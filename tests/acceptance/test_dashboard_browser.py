"""The dashboard in a real browser (Debian's Chromium driven by Playwright): live updates without a reload,
retry from the page with the key, and hostile job data shown as text. Screenshots go to artifacts/."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from supaworker.store import Store
from tests.conftest import REPO
from tests.integration.api_support import AUTH, KEY, claim, complete, fail, make_app, serve, wait_until

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "artifacts"
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
            "document.querySelector('.card.st-completed .n').textContent.trim() === '1'"
        )
        assert page.evaluate("window.notReloaded") is True  # type: ignore[attr-defined]
        assert page.evaluate("window.pwned") is None  # type: ignore[attr-defined]
        screenshot(page, "dashboard-jobs.png")


@pytest.mark.skipif(importlib.util.find_spec("supaworker.briefs") is None, reason="briefs are not in this build yet")
def test_brief_created_through_the_api_shows_its_steps_completing_live(
    store: Store, db: str, conn: psycopg.Connection, browser_page: object
) -> None:
    page = browser_page
    app = make_app(store, db, public_reads=True)
    with serve(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        page.goto(f"{base}/test-worker")  # type: ignore[attr-defined]
        page.locator("#live.on").wait_for()  # type: ignore[attr-defined]
        body = {
            "user_id": "user-1",
            "title": "My <i>Video</i> Project",
            "description": "Create a video about AI",
            "query": "Generate a video about artificial intelligence",
            "media_type": "video",
            "use_pipeline": True,
        }
        created = http.post("/api/briefs", json=body)
        assert created.status_code == 201, created.text
        brief = created.json()["brief"]
        steps = page.locator(f"#brief-{brief['id']} li.step")  # type: ignore[attr-defined]
        steps.first.wait_for()
        assert steps.count() == 4
        assert "My <i>Video</i> Project" in page.inner_text(f"#brief-{brief['id']} .title")  # type: ignore[attr-defined]
        for _ in range(4):  # a worker's part, one step at a time
            complete(conn, claim(conn))
        page.wait_for_function(  # type: ignore[attr-defined]
            f"[...document.querySelectorAll('#brief-{brief['id']} li.step')]"
            ".every(s => s.dataset.status === 'completed')"
        )
        assert page.get_attribute(f"#brief-{brief['id']}", "data-status") == "completed"  # type: ignore[attr-defined]
        screenshot(page, "dashboard-brief.png")
