"""The operator's console in a real browser (Debian's Chromium driven by Playwright): every page at 390, 1024
and 1440 px wide without horizontal overflow, console errors or serious accessibility violations (axe-core,
bundled with axe-playwright-python: nothing is fetched); a running job's clock and progress bar moving
without a reload; a bulk retry of 100 failed jobs from the page; each attempt's error on the job page;
bidirectional controls in stored text shown as markers, by the server and by the page's live updates; long
and right-to-left text cut at its end, inside its box, with the rows' buttons and badges kept in view.
Screenshots go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from supaworker.store import Store
from tests.conftest import REPO
from tests.support.api import KEY, claim, make_app, serve

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
WIDTHS = (390, 1024, 1440)
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
WORKER = "worker-4242-1753344000000"

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
axe_base = pytest.importorskip("axe_playwright_python.base", reason="axe-playwright-python is not installed")
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


class Browser:
    """One Chromium; each context gets axe-core injected by the browser itself, which the pages' CSP allows
    (a script evaluated by the test would be refused as eval)."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser

    def page(self, width: int, height: int = 900) -> tuple[Any, list[str]]:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.add_init_script(script=axe_base.AXE_SCRIPT)
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        return page, problems


@pytest.fixture
def chromium() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield Browser(browser)
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def fail_attempt(conn: psycopg.Connection, job_id: int, error: str, retry: bool) -> None:
    conn.execute("SELECT supaworker.fail_job(%s, %s, %s, NULL, 0, 0, %s)", (job_id, WORKER, error, retry))


def seed(conn: psycopg.Connection) -> dict[str, Any]:
    """A little of everything a console shows, odd rows and hostile text included."""
    brief = conn.execute(
        "INSERT INTO supaworker.briefs (user_id, title, query, media_type, pipeline)"
        " VALUES ('user-with-a-rather-long-identifier-0123456789', %s, 'Make a video about Lisbon trams', 'video',"
        " '{analysis,render}') RETURNING id",
        (HOSTILE,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO supaworker.jobs (type, queue, payload, brief_id, priority)"
        " SELECT CASE WHEN i %% 4 = 0 THEN 'video_generation_with_a_long_type_name' ELSE 'analysis' END,"
        "        CASE WHEN i %% 3 = 0 THEN 'media' ELSE 'default' END,"
        "        jsonb_build_object('i', i, 'note', %s::text, 'text', repeat('a long payload value ', 40)),"
        "        CASE WHEN i <= 2 THEN %s::uuid END, i %% 3"
        "   FROM generate_series(1, 40) i",
        (HOSTILE, brief),
    )
    failed = claim(conn, WORKER)
    fail_attempt(conn, failed, "ValueError: first " + "x" * 300 + "\nTraceback (most recent call last):\n  ...", True)
    failed = claim(conn, WORKER)
    fail_attempt(conn, failed, "TimeoutError: job timed out after 30s\n" + HOSTILE, False)
    running = claim(conn, WORKER)
    conn.execute(
        "SELECT supaworker.update_job_progress(%s, ARRAY[%s]::bigint[], ARRAY[1], ARRAY[35]::real[],"
        " ARRAY['encoding'])",
        (WORKER, running),
    )
    odd = conn.execute(
        "INSERT INTO supaworker.jobs (type, status, created_at, run_at, completed_at, payload, result, errors)"
        " VALUES ('odd', 'failed', 'infinity', '-infinity', 'infinity', (repeat('[', 300) || repeat(']', 300))::jsonb,"
        ' \'"text result"\', \'[1, {"attempt": "x", "at": "never"}]\') RETURNING id'
    ).fetchone()[0]
    conn.execute("INSERT INTO supaworker.job_dependencies (job_id, depends_on) VALUES (2, 1)")
    conn.execute(
        "INSERT INTO supaworker.periodic_jobs (name, cron, type) VALUES ('nightly-report', '0 3 * * *', 'report'),"
        " ('broken', 'not a cron', 'x')"
    )
    conn.execute("INSERT INTO supaworker.job_controls (scope, name, paused) VALUES ('queue', 'media', true)")
    return {"brief": brief, "failed": failed, "running": running, "odd": odd}


def test_every_page_fits_each_width_without_console_errors_or_serious_accessibility_violations(
    store: Store, conn: psycopg.Connection, chromium: Browser
) -> None:
    ids = seed(conn)
    pages = {
        "overview": "/test-worker",
        "jobs": "/test-worker/jobs",
        "jobs-failed": "/test-worker/jobs?status=failed",
        "job": f"/test-worker/jobs/{ids['failed']}",
        "job-odd": f"/test-worker/jobs/{ids['odd']}",
        "job-running": f"/test-worker/jobs/{ids['running']}",
        "briefs": "/test-worker/briefs",
        "brief": f"/test-worker/briefs/{ids['brief']}",
        "queues": "/test-worker/queues",
        "periodic": "/test-worker/periodic",
        "workers": "/test-worker/workers",
    }
    app = make_app(store, public_reads=True)
    found: list[str] = []
    with serve(app) as base:
        for width in WIDTHS:
            page, problems = chromium.page(width)
            for name, path in pages.items():
                page.goto(base + path)
                page.locator("main .panel").first.wait_for()
                page.wait_for_timeout(300)
                scroll_width, inner = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
                if scroll_width > inner:
                    found.append(f"{name} at {width} px: page {scroll_width} px wide")
                violations = page.evaluate(
                    "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
                    ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                    ".map(v => v.id + ' ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ')))"
                )
                found += [f"{name} at {width} px: {v}" for v in violations]
                found += [f"{name} at {width} px: console: {p}" for p in problems]
                problems.clear()
                assert page.evaluate("() => window.pwned") is None, name
                screenshot(page, f"console-{name}-{width}.png")
            page.context.close()
    assert found == []


def test_a_running_jobs_clock_and_progress_bar_move_without_a_reload(
    store: Store, db: str, conn: psycopg.Connection, chromium: Browser
) -> None:
    conn.execute("INSERT INTO supaworker.jobs (type, payload) VALUES ('encode', '{\"file\": \"a.mov\"}')")
    job = claim(conn, WORKER)
    app = make_app(store, db)  # reads closed: the page fetches its panels with the key
    with serve(app) as base:
        page, problems = chromium.page(1024)
        page.goto(f"{base}/test-worker/jobs/{job}")
        page.fill("#key", KEY)
        page.click("#key-form button")
        clock = page.locator(".running-for time")
        clock.wait_for()
        page.locator("#live.on").wait_for()
        page.evaluate("() => { window.notReloaded = true; }")
        first = clock.inner_text()
        page.wait_for_function("(t) => document.querySelector('.running-for time').textContent !== t", arg=first)
        bar = f'progress[data-progress-job="{job}"]'
        for percent in (20, 70):
            conn.execute(
                "SELECT supaworker.update_job_progress(%s, ARRAY[%s]::bigint[], ARRAY[1], ARRAY[%s]::real[],"
                " ARRAY['step ' || %s::text])",
                (WORKER, job, percent, percent),
            )
            page.wait_for_function(
                "([sel, p]) => document.querySelector(sel) && document.querySelector(sel).value === p",
                arg=[bar, percent],
            )
            assert f"{percent}% · step {percent}" in page.inner_text(f'[data-progress-text="{job}"]')
        assert page.evaluate("() => window.notReloaded") is True
        assert problems == []
        screenshot(page, "console-job-running-live.png")


def test_bulk_retry_of_100_failed_jobs_from_the_page_retries_exactly_those(
    store: Store, db: str, conn: psycopg.Connection, chromium: Browser
) -> None:
    conn.execute(
        "INSERT INTO supaworker.jobs (type, status, attempts, completed_at, last_error)"
        " SELECT CASE WHEN i <= 100 THEN 'render' ELSE 'analysis' END, 'failed', 3, now(), 'boom ' || i"
        "   FROM generate_series(1, 120) i"
    )
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 'render' FROM generate_series(1, 30)")
    render_failed = {
        r[0] for r in conn.execute("SELECT id FROM supaworker.jobs WHERE type = 'render' AND status = 'failed'")
    }
    assert len(render_failed) == 100
    app = make_app(store, db)
    with serve(app) as base:
        page, problems = chromium.page(1440)
        page.goto(f"{base}/test-worker/jobs?status=failed&type=render")
        page.fill("#key", KEY)
        page.click("#key-form button")
        page.locator("table.jobs tbody tr").first.wait_for()
        page.check("#bulk-all")
        page.click('button.bulk-go[data-action="retry"]')
        page.locator("#bulk-preview", has_text="retry 100 jobs?").wait_for()
        screenshot(page, "console-bulk-preview.png")
        assert conn.execute("SELECT count(*) FROM supaworker.jobs WHERE status = 'failed'").fetchone()[0] == 120
        page.click("#bulk-run")
        page.locator("#bulk-result", has_text="retry: 100 jobs done").wait_for()
        rows = conn.execute("SELECT id, type, status::text FROM supaworker.jobs").fetchall()
        retried = {i for i, t, s in rows if s == "pending" and i in render_failed}
        assert retried == render_failed
        assert sorted(s for _, t, s in rows if t == "analysis") == ["failed"] * 20
        assert sum(1 for i, t, s in rows if t == "render" and i not in render_failed and s == "pending") == 30
        # Chosen rows: two of the 20 analysis failures, by their checkboxes.
        page.goto(f"{base}/test-worker/jobs?status=failed")
        page.locator("input.pick").first.wait_for()
        picked = [int(page.locator("input.pick").nth(i).get_attribute("data-id")) for i in range(2)]
        for i in range(2):
            page.locator("input.pick").nth(i).check()
        page.click('button.bulk-go[data-action="delete"]')
        page.locator("#bulk-preview", has_text="delete 2 jobs?").wait_for()
        page.click("#bulk-run")
        page.locator("#bulk-result", has_text="delete: 2 jobs done").wait_for()
        left = {r[0] for r in conn.execute("SELECT id FROM supaworker.jobs WHERE type = 'analysis'")}
        assert len(left) == 18 and not set(picked) & left
        assert problems == []
        screenshot(page, "console-bulk-done.png")


def test_the_job_page_shows_every_attempts_error_as_text(
    store: Store, db: str, conn: psycopg.Connection, chromium: Browser
) -> None:
    conn.execute("INSERT INTO supaworker.jobs (type, max_attempts) VALUES ('flaky', 3)")
    errors = ["ConnectionError: refused", "KeyError: 'frame'\n" + HOSTILE, "RuntimeError: out of memory"]
    for number, error in enumerate(errors, start=1):
        job = claim(conn, WORKER)
        fail_attempt(conn, job, error, number < 3)
    app = make_app(store, db, public_reads=True)
    with serve(app) as base:
        page, problems = chromium.page(1024)
        page.goto(f"{base}/test-worker/jobs/{job}")
        attempts = page.locator("li.attempt")
        attempts.first.wait_for()
        assert attempts.count() == 3
        for number, error in enumerate(errors, start=1):
            item = page.locator(f'li.attempt[data-attempt="{number}"]')
            assert error.split("\n")[0] in item.locator("summary").inner_text()
            assert WORKER in item.inner_text() and "took" in item.inner_text()
            item.locator("summary").click()
            assert item.locator("pre.error").inner_text() == error
        assert page.evaluate("() => window.pwned") is None
        assert problems == []
        screenshot(page, "console-job-attempts.png")


RLO, RLI = "\u202e", "\u2067"  # right-to-left override and isolate: each reorders the text after it


def test_bidi_controls_in_stored_text_show_as_markers_on_the_page_and_in_live_updates(
    store: Store, conn: psycopg.Connection, chromium: Browser
) -> None:
    brief = conn.execute(
        "INSERT INTO supaworker.briefs (user_id, title, query, media_type, pipeline)"
        " VALUES ('u', %s, 'q', 'video', '{render}') RETURNING id",
        (f"Trams {RLO}nobsiL{RLI} plan",),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO supaworker.jobs (type, payload, brief_id) VALUES (%s, %s, %s), ('encode', '{}', NULL)",
        (f"render{RLO}wols", f'{{"note": "pay{RLI}load"}}', brief),
    )
    failed = claim(conn, WORKER)
    fail_attempt(conn, failed, f"worker{RLO}deliated{RLI} at step", False)
    running = claim(conn, WORKER)
    app = make_app(store, public_reads=True)
    with serve(app) as base:
        page, problems = chromium.page(390)
        for name, path, where in [
            ("overview", "/test-worker", f'#panel-jobs tr[data-job-id="{failed}"]'),
            ("job", f"/test-worker/jobs/{failed}", "#panel-summary pre.error"),
            ("brief", f"/test-worker/briefs/{brief}", "#panel-summary .title"),
        ]:
            page.goto(base + path)
            page.locator(where).wait_for()
            text = page.inner_text("main")
            assert RLO not in text and RLI not in text, path
            assert "<U+202E>" in text and "<U+2067>" in text, path
            serious = page.evaluate(
                "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
                ".filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => v.id))"
            )
            assert serious == [], (path, serious)
            screenshot(page, f"console-bidi-{name}-390.png")
        assert page.locator("#panel-summary .title bdi .bidi-mark").count() == 2

        # Live: the event's progress message, set by the page's script (the panels' refresh held back).
        page.goto(f"{base}/test-worker/jobs/{running}")
        page.locator("#live.on").wait_for()
        page.route("**/test-worker/panels/**", lambda route: route.fulfill(status=503, json={"error": "held"}))
        conn.execute(
            "SELECT supaworker.update_job_progress(%s, ARRAY[%s]::bigint[], ARRAY[1], ARRAY[60]::real[], ARRAY[%s])",
            (WORKER, running, f"step {RLO}eno{RLI} two"),
        )
        shown = page.locator(f'[data-progress-text="{running}"]')
        page.wait_for_function(
            "(sel) => document.querySelector(sel).textContent.startsWith('60%')",
            arg=f'[data-progress-text="{running}"]',
        )
        assert shown.inner_text() == "60% · step <U+202E>eno<U+2067> two"
        assert shown.locator("bdi .bidi-mark").count() == 2
        assert problems == [] or all("503" in p for p in problems)


ARABIC_TITLE = "مشروع فيديو عن الذكاء الاصطناعي في المدارس العربية"
LONG_TYPE = "render_" + "x" * 121  # the longest type the schema allows
# Whether a piece of the page can be seen: the window scrolled to it (never a scrollable box, which would
# bring a hidden button into view), then the element at its centre must be it or inside it. A character counts
# when it is inside the element that holds its text.
SEEN = """([selector, index]) => {
  const el = document.querySelector(selector);
  const place = () => {
    if (index === null) return [el, el.getBoundingClientRect()];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let text = walker.nextNode(), at = index < 0 ? el.textContent.length + index : index;
    while (at >= text.data.length) { at -= text.data.length; text = walker.nextNode(); }
    const range = document.createRange();
    range.setStart(text, at);
    range.setEnd(text, at + 1);
    return [text.parentElement, range.getBoundingClientRect()];
  };
  window.scrollBy(0, place()[1].top - innerHeight / 2);
  const [target, rect] = place();
  const hit = document.elementFromPoint(rect.left + rect.width / 2, rect.top + rect.height / 2);
  return !!hit && (hit === target || target.contains(hit));
}"""


def seed_long_text(conn: psycopg.Connection) -> dict[str, Any]:
    """Text that must be cut, wrapped or scrolled to fit: an Arabic title, the longest type (paused), a
    deeply nested payload, and a failed job with the usual long payload and error."""
    brief = conn.execute(
        "INSERT INTO supaworker.briefs (user_id, title, query, media_type, pipeline)"
        " VALUES ('u', %s, 'q', 'audio', '{analysis}') RETURNING id",
        (ARABIC_TITLE,),
    ).fetchone()[0]
    long_job = conn.execute(
        "INSERT INTO supaworker.jobs (type, status, attempts, completed_at, last_error)"
        " VALUES (%s, 'failed', 1, now(), 'boom') RETURNING id",
        (LONG_TYPE,),
    ).fetchone()[0]
    conn.execute("INSERT INTO supaworker.job_controls (scope, name, paused) VALUES ('type', %s, true)", (LONG_TYPE,))
    deep = conn.execute(
        "INSERT INTO supaworker.jobs (type, payload) VALUES ('deep', (repeat('{\"level\": ', 60) || '1'"
        " || repeat('}', 60))::jsonb) RETURNING id"
    ).fetchone()[0]
    failed = conn.execute(
        "INSERT INTO supaworker.jobs (type, queue, status, attempts, completed_at, payload, last_error)"
        " VALUES ('video_generation', 'media', 'failed', 3, now(), jsonb_build_object('query', repeat('trams ', 40)),"
        " 'TimeoutError: the render of scene 12 took longer than its 300 s timeout ' || repeat('x', 200))"
        " RETURNING id"
    ).fetchone()[0]
    return {"brief": brief, "long": long_job, "deep": deep, "failed": failed}


def in_view(page: Any, base: str, path: str, selector: str, index: int | None) -> bool:
    """Whether `selector` on `path` (or its character at `index`, counted from the end when negative) can be
    seen: see SEEN."""
    if not page.url.endswith(path):
        page.goto(base + path)
    page.locator(selector).first.wait_for()
    return bool(page.evaluate(SEEN, [selector, index]))


def test_long_and_right_to_left_text_stays_in_its_box_and_shows_its_start(
    store: Store, db: str, conn: psycopg.Connection, chromium: Browser
) -> None:
    ids = seed_long_text(conn)
    job, failed = f"/test-worker/jobs/{ids['long']}", f'tr[data-job-id="{ids["failed"]}"] button.act'
    must_show = [
        # Cut right-to-left text keeps its first word (on the right), as left-to-right text keeps its first.
        ("the Arabic title's start", "/test-worker/briefs", f'tr[data-brief-id="{ids["brief"]}"] td.trunc a', 0),
        # A paused type's badge is outside the part of its name that is cut.
        ("the paused badge", "/test-worker/queues", f'tr[data-key="type-{LONG_TYPE}"] .badge', None),
        ("the type's end on the job's page", job, "#panel-summary .job-head strong", -1),
        # A row's buttons stay in view in a table wider than its box.
        ("the jobs list's retry button", "/test-worker/jobs", failed, None),
        ("the recent failures' retry button", "/test-worker", f"#panel-failures {failed}", None),
    ]
    app = make_app(store, public_reads=True)
    found: list[str] = []
    # A worker's connection, named as workers name theirs, for the overview's "workers alive".
    with serve(app) as base, psycopg.connect(db, application_name=f"supaworker:{WORKER}-5f3c9a"):
        for width in (390, 1440):
            page, problems = chromium.page(width)
            found += [f"{what} at {width} px: hidden" for what, *where in must_show if not in_view(page, base, *where)]
            if width == 1440:  # a third of the page: a worker's usual id leaves room for the table's last column
                page.goto(base + "/test-worker")
                page.locator("#panel-workers table").wait_for()
                if page.evaluate(
                    "() => (s => s.scrollWidth > s.clientWidth)(document.querySelector('#panel-workers .scroll'))"
                ):
                    found.append("workers alive at 1440 px: the table is wider than its panel")
            # The job's node in the graph keeps its type inside its border.
            page.goto(base + job)
            node, name = page.evaluate(
                "() => ['.node.self', '.node.self .trunc-inline']"
                ".map(s => document.querySelector(s).getBoundingClientRect().right)"
            )
            if name > node + 0.5:
                found.append(f"the graph's node at {width} px: its type ends at {name}, its border at {node}")
            # A deep payload, unfolded, scrolls in its box: the page stays as wide as the window.
            page.goto(f"{base}/test-worker/jobs/{ids['deep']}")
            page.locator("#panel-data .json-tree").wait_for()
            page.evaluate("() => document.querySelectorAll('#panel-data details').forEach(d => { d.open = true; })")
            if page.evaluate("() => document.documentElement.scrollWidth > innerWidth"):
                found.append(f"the deep payload unfolded at {width} px: the page is wider than the window")
            screenshot(page, f"console-long-text-{width}.png")
            found += [f"at {width} px: console: {p}" for p in problems]
            page.context.close()
    assert found == []
