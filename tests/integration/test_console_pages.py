"""The console's pages on the server side: each renders with odd rows stored by plain SQL, a bad parameter
answers 400 naming it and a missing job or brief 404, panels need the key when reads are closed, and the
artifact route serves only files a job's result names inside the artifacts directory (signed links work
without the key, forged ones do not), and bidirectional controls in stored text show as markers instead of
reordering the page. The queues page's sample weighting is checked on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from supaworker.dashboard.queue_stats import PER_SLICE, compute, weighted_percentile
from supaworker.store import Store
from tests.support.api import AUTH, claim, fail, make_app
from tests.support.waiting import wait_until

ODD_ROWS = """
INSERT INTO supaworker.jobs (type, status, created_at, run_at, started_at, completed_at, worker_id, lease_expires_at,
                             attempts, payload, result, errors, last_error, progress)
VALUES ('odd', 'processing', 'infinity', '-infinity', '-infinity', NULL, 'worker-odd', 'infinity', 1,
        (repeat('[', 300) || repeat(']', 300))::jsonb, '"x"', '[1, "two", {"attempt": "?", "at": "never"}]',
        'E' || repeat('e', 100000), 50),
       ('odd2', 'failed', now(), now(), now(), 'infinity', NULL, NULL, 0, '{}', NULL, '[]', NULL, NULL)
RETURNING id
"""


def test_every_page_renders_odd_rows(store: Store, conn: psycopg.Connection) -> None:
    ids = [r[0] for r in conn.execute(ODD_ROWS)]
    conn.execute(
        "INSERT INTO supaworker.periodic_jobs (name, cron, type, last_tick_at) VALUES ('p', 'bad', 'x', 'infinity')"
    )
    brief = conn.execute(
        "INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline, created_at)"
        " VALUES ('u', 'q', 'text', '{analysis}', '-infinity') RETURNING id"
    ).fetchone()[0]
    conn.execute("UPDATE supaworker.jobs SET brief_id = %s", (brief,))
    with TestClient(make_app(store, public_reads=True)) as client:
        for path in [
            "/test-worker", "/test-worker/jobs", "/test-worker/jobs?status=processing",
            "/test-worker/jobs?status=failed",
            f"/test-worker/jobs/{ids[0]}", f"/test-worker/jobs/{ids[1]}", "/test-worker/briefs",
            f"/test-worker/briefs/{brief}", "/test-worker/queues", "/test-worker/periodic", "/test-worker/workers",
            f"/test-worker/jobs?brief_id={brief}", "/test-worker/jobs?user_id=u",
        ]:  # fmt: skip
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[-500:])
        job_page = client.get(f"/test-worker/jobs/{ids[0]}").text
        assert "infinity" in job_page and "worker-odd" in job_page


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/test-worker/jobs?status=done", 400, "status"),
        ("/test-worker/jobs?created_after=yesterday", 400, "created_after"),
        ("/test-worker/jobs?brief_id=nope", 400, "brief_id"),
        ("/test-worker/jobs?before=0", 400, "before"),
        ("/test-worker/jobs?limit=abc", 400, "limit"),
        ("/test-worker/jobs?type=%00", 400, "type"),
        ("/test-worker/jobs/abc", 400, "job_id"),
        ("/test-worker/jobs/99999999999999999999", 400, "job_id"),
        ("/test-worker/jobs/12345", 404, None),
        ("/test-worker/briefs?status=done", 400, "status"),
        ("/test-worker/briefs?before=garbage", 400, "before"),
        ("/test-worker/briefs/0b0e0000-0000-0000-0000-000000000000", 404, None),
    ],
)
def test_bad_parameters_get_4xx_naming_them(store: Store, path: str, status: int, field: str | None) -> None:
    with TestClient(make_app(store, public_reads=True)) as client:
        page = client.get(path)
        assert page.status_code == status and 'class="problem"' in page.text
        panels = client.get(path.replace("/test-worker", "/test-worker/panels", 1))
        assert panels.status_code == status
        if field:
            assert panels.json()["detail"][0]["field"] == field and field in panels.json()["error"]


def test_panels_need_the_key_when_reads_are_closed(store: Store) -> None:
    with TestClient(make_app(store)) as client:
        for path in ("/test-worker/panels/jobs", "/test-worker/panels/queues", "/test-worker/panels/workers"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers=AUTH).status_code == 200
        shell = client.get("/test-worker/jobs")
        assert shell.status_code == 200 and "Reading needs the API key" in shell.text


def test_artifacts_are_served_only_from_a_jobs_result_inside_the_artifacts_directory(
    store: Store, conn: psycopg.Connection, tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    (root / "b").mkdir(parents=True)
    (root / "b" / "report.md").write_text("# Report\n\n<script>alert(1)</script> *done*")
    (root / "b" / "poster.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    files = [
        str(root / "b" / "report.md"),
        str(root / "b" / "poster.png"),
        str(outside),
        str(root / "b" / "../../secret.txt"),
        str(root / "b" / ("x" * 300 + ".md")),  # a name longer than the file system takes: is_file() raises
    ]
    brief = conn.execute(
        "INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline) VALUES ('u', 'q', 'text', '{render}')"
        " RETURNING id"
    ).fetchone()[0]
    job = conn.execute(
        "INSERT INTO supaworker.jobs (type, status, completed_at, brief_id, result)"
        " VALUES ('render', 'completed', now(), %s, jsonb_build_object('files', %s::jsonb)) RETURNING id",
        (brief, psycopg.types.json.Json(files)),
    ).fetchone()[0]
    with TestClient(make_app(store, artifacts_dir=str(root))) as client:
        page = client.get(f"/test-worker/panels/briefs/{brief}", headers=AUTH).json()["panels"]["artifacts"]
        assert "<h1>Report</h1>" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
        assert page.count("(not on this server)") == 3
        signed = page.split('src="')[1].split('"')[0].replace("&amp;", "&")
        assert signed.startswith(f"/test-worker/artifacts/{job}/1?e=")
        image = client.get(signed)  # no key: the signature is enough
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert client.get(f"/test-worker/artifacts/{job}/1").status_code == 401
        assert client.get(signed[:-4] + "0000").status_code == 401
        assert (
            client.get(f"/test-worker/artifacts/{job}/0", headers=AUTH).headers["content-type"].startswith("text/plain")
        )
        for index in (2, 3, 4, 999999):
            assert client.get(f"/test-worker/artifacts/{job}/{index}", headers=AUTH).status_code == 404
        assert client.get("/test-worker/artifacts/x/0", headers=AUTH).status_code == 404


def test_a_failed_job_page_lists_each_attempt_with_its_error(store: Store, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO supaworker.jobs (type, max_attempts) VALUES ('t', 1)")
    job = claim(conn)
    fail(conn, job, "ValueError: <b>bad</b>\nTraceback ...")
    with TestClient(make_app(store, public_reads=True)) as client:
        attempts = client.get(f"/test-worker/panels/jobs/{job}").json()["panels"]["attempts"]
    assert 'data-attempt="1"' in attempts and "ValueError: &lt;b&gt;bad&lt;/b&gt;" in attempts
    assert "worker-test-1" in attempts and "took" in attempts


def test_a_job_runnable_from_infinity_has_its_timeline_entry_without_an_offset(
    store: Store, conn: psycopg.Connection
) -> None:
    job = conn.execute("INSERT INTO supaworker.jobs (type, run_at) VALUES ('t', 'infinity') RETURNING id").fetchone()[0]
    with TestClient(make_app(store, public_reads=True)) as client:
        timeline = client.get(f"/test-worker/panels/jobs/{job}").json()["panels"]["timeline"]
    entries = timeline.split("<li>")[1:]
    assert len(entries) == 2 and "infinity" in entries[1] and "runnable from" in entries[1]
    assert "+-" not in timeline  # an offset from a time that has none was printed as "+-"


def test_the_queues_page_shows_each_tenants_backlog_weight_and_oldest_wait(
    store: Store, conn: psycopg.Connection
) -> None:
    conn.execute(
        "INSERT INTO supaworker.jobs (type, fairness_key, run_at) SELECT 't', 'big', now() - interval '1 hour'"
        " FROM generate_series(1, 1500)"
    )
    conn.execute(
        "INSERT INTO supaworker.jobs (type, fairness_key) SELECT 't', '<b>small</b>' FROM generate_series(1, 7)"
    )
    conn.execute("INSERT INTO supaworker.fairness_weights (key, weight) VALUES ('big', 3)")
    with TestClient(make_app(store, public_reads=True)) as client:
        tenants = client.get("/test-worker/panels/queues").json()["panels"]["tenants"]
    big, small = tenants.index('data-key="tenant-big"'), tenants.index("&lt;b&gt;small&lt;/b&gt;")
    assert big < small  # the biggest backlog first
    assert "<td>3</td><td>1000+</td>" in tenants  # weight 3, backlog counted up to its cap
    assert "<td>1</td><td>7</td>" in tenants
    assert "60.0 min" in tenants  # big's oldest job has waited an hour


def test_busy_hours_are_estimated_from_their_samples_rate() -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    # Hour 0 is busy: its sample of PER_SLICE jobs covers its last 6 minutes, so it stands for ten times as many.
    busy = [
        {"slice": 0, "type": "a", "queue": "q", "status": "completed", "run_seconds": 1.0, "wait_seconds": 0.5,
         "completed_at": now - timedelta(seconds=360 * i / PER_SLICE)}
        for i in range(1, PER_SLICE + 1)
    ]  # fmt: skip
    quiet = [
        {"slice": 3, "type": "a", "queue": "q", "status": "failed", "run_seconds": 9.0, "wait_seconds": 2.0,
         "completed_at": now - timedelta(hours=3, minutes=5)}
    ]  # fmt: skip
    stats = compute(busy + quiet, now)
    assert stats.hour["a"].estimated and 9.5 * PER_SLICE < stats.hour["a"].completed < 10.5 * PER_SLICE
    assert stats.day["a"].failed == 1 and stats.estimated_slices == 1
    assert stats.hourly["a"][-1][0] == pytest.approx(stats.hour["a"].completed)
    assert stats.hourly["a"][-4] == (0.0, 1.0)
    assert stats.day["a"].run_p(0.5) == 1.0 and stats.day["a"].run_p(1.0) == 9.0
    assert weighted_percentile([(1.0, 1.0), (5.0, 3.0)], 0.5) == 5.0 and weighted_percentile([], 0.5) is None


RLO, RLI = "\u202e", "\u2067"  # right-to-left override and isolate: each reorders the text after it
BIDI_ROWS = """
WITH brief AS (
  INSERT INTO supaworker.briefs (user_id, title, query, media_type, pipeline)
  VALUES ('u' || %(rlo)s, 'Trams ' || %(rlo)s || 'nobsiL' || %(rli)s || ' plan', 'q' || %(rli)s, 'video', '{render}')
  RETURNING id
)
INSERT INTO supaworker.jobs (type, queue, payload, status, attempts, started_at, completed_at, worker_id,
                             last_error, errors, brief_id, progress, progress_message)
SELECT 'render' || %(rlo)s || 'wols', 'media' || %(rli)s, jsonb_build_object('note', 'pay' || %(rli)s || 'load'),
       'failed', 1, now(), now(), 'w' || %(rlo)s || '1', 'worker' || %(rlo)s || 'deliated' || %(rli)s || ' at step',
       jsonb_build_array(jsonb_build_object('attempt', 1, 'error', 'worker' || %(rlo)s || 'deliated', 'at', now(),
                                            'worker_id', 'w' || %(rlo)s || '1')),
       brief.id, 40, 'step ' || %(rli)s || 'one'
  FROM brief
RETURNING id, brief_id
"""


def test_bidi_controls_in_stored_text_show_as_markers_on_every_page(store: Store, conn: psycopg.Connection) -> None:
    job, brief = conn.execute(BIDI_ROWS, {"rlo": RLO, "rli": RLI}).fetchone()
    with TestClient(make_app(store, public_reads=True)) as client:
        client.app.state.feed.poke()
        wait_until(
            lambda: f'data-key="f{job}"' in client.get("/test-worker/panels").json()["panels"]["failures"],
            "the failure on the overview",
        )
        for path in [
            "/test-worker", "/test-worker/jobs", f"/test-worker/jobs/{job}", "/test-worker/briefs",
            f"/test-worker/briefs/{brief}", "/test-worker/queues",
        ]:  # fmt: skip
            page = client.get(path).text
            panels = client.get(path.replace("/test-worker", "/test-worker/panels", 1)).json()["panels"]
            for html in [page, *panels.values()]:
                assert RLO not in html and RLI not in html, path
            assert '<span class="bidi-mark"' in page and "&lt;U+202E&gt;</span>" in page, path
            assert "&lt;U+2067&gt;</span>" in page, path
        job_page = client.get(f"/test-worker/jobs/{job}").text
        # Isolated and marked in the content; marked as plain text in a tooltip.
        assert '<pre class="error"><bdi>worker<span class="bidi-mark"' in job_page
        assert 'title="render&lt;U+202E&gt;wols"' in client.get("/test-worker/jobs").text
        # A search field keeps the text as typed, so searching again finds the same jobs.
        found = client.get("/test-worker/jobs", params={"type": f"render{RLO}wols"}).text
        assert f'value="render{RLO}wols"' in found and f'data-job-id="{job}"' in found
