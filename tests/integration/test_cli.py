"""The `supaworker` command: output, and exit codes scripts can rely on (bad input writes nothing)."""

from __future__ import annotations

import json
import socket

import psycopg
import pytest

from supaworker.db import CONNECT_TIMEOUT_SECONDS

from ..conftest import run_cli, subprocess_env


def count_jobs(db: str) -> int:
    with psycopg.connect(db) as c:
        return c.execute("SELECT count(*) FROM supaworker.jobs").fetchone()[0]


def test_enqueue_prints_ids_and_jobs_lists_them(db: str) -> None:
    result = run_cli(db, "enqueue", "analysis", "--payload", '{"video_url": "a.mp4"}', "--priority", "2")
    assert result.returncode == 0, result.stderr
    (job_id,) = result.stdout.split()
    listing = run_cli(db, "jobs", "--status", "pending", "--json")
    rows = json.loads(listing.stdout)
    assert [(r["id"], r["type"], r["priority"], r["payload"]) for r in rows] == [
        (int(job_id), "analysis", 2, {"video_url": "a.mp4"})
    ]
    table = run_cli(db, "jobs", "--type", "analysis")
    assert table.stdout.splitlines()[0].split()[:3] == ["id", "type", "status"]


def test_enqueue_count_uses_one_bulk_insert(db: str) -> None:
    result = run_cli(db, "enqueue", "render", "--count", "250")
    assert result.returncode == 0 and "enqueued 250 jobs" in result.stdout
    assert count_jobs(db) == 250


def test_enqueue_with_delay_schedules_the_job(db: str) -> None:
    assert run_cli(db, "enqueue", "render", "--delay", "3600").returncode == 0
    with psycopg.connect(db) as c:
        assert c.execute("SELECT run_at > now() + interval '59 minutes' FROM supaworker.jobs").fetchone() == (True,)


def test_stats_shows_the_job_stats_view(db: str) -> None:
    run_cli(db, "enqueue", "render", "--count", "3")
    result = run_cli(db, "stats")
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:3] == ["type", "status", "count"] and row.split()[:3] == ["render", "pending", "3"]
    assert json.loads(run_cli(db, "stats", "--json").stdout)[0]["count"] == 3


def test_retry_and_cancel_change_the_job_and_report_the_status(db: str) -> None:
    (job_id,) = run_cli(db, "enqueue", "render").stdout.split()
    cancelled = run_cli(db, "cancel", job_id)
    assert (cancelled.returncode, cancelled.stdout.strip()) == (0, f"job {job_id}: cancelled")
    retried = run_cli(db, "retry", job_id)
    assert (retried.returncode, retried.stdout.strip()) == (0, f"job {job_id}: pending")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["enqueue", "render", "--payload", "{not json"], 2, "--payload is not valid JSON"),
        (["enqueue", "render", "--max-attempts", "0"], 2, "--max-attempts"),
        (["enqueue", "render", "--priority", "soon"], 2, "--priority"),
        (["enqueue", "", "--payload", "{}"], 2, "type must be a non-empty string"),
        (["jobs", "--status", "exploded"], 2, "'exploded' is not one of"),
        (["retry", "999999"], 5, "no job with id 999999"),
        (["cancel", "abc"], 2, "'abc' is not a valid integer"),
        (["worker", "--import", "no_such_module_here"], 2, "cannot import handler module"),
        (["worker", "--import", "tests.support.handlers.basic", "--type", "nope"], 2, "no handler registered"),
    ],
)
def test_bad_input_gets_one_line_error_exit_code_and_writes_nothing(
    db: str, args: list[str], code: int, message: str
) -> None:
    result = run_cli(db, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert count_jobs(db) == 0


def test_retrying_a_completed_job_is_a_conflict(db: str) -> None:
    (job_id,) = run_cli(db, "enqueue", "render").stdout.split()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE supaworker.jobs SET status = 'completed', completed_at = now() WHERE id = %s", (job_id,))
    result = run_cli(db, "retry", job_id)
    assert result.returncode == 6 and "only failed or cancelled jobs can be retried" in result.stderr


def test_unreachable_database_exits_3_with_the_reason() -> None:
    env = subprocess_env("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    result = run_cli(None, "stats", env=env)
    assert result.returncode == 3
    assert result.stderr.startswith("error: cannot connect to the database")


def test_worker_on_an_unreachable_database_exits_3_with_the_reason() -> None:
    env = subprocess_env("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    result = run_cli(None, "worker", "--import", "tests.support.handlers.basic", env=env)
    assert result.returncode == 3
    assert result.stderr.startswith("error: cannot connect to the database")


def test_worker_reports_a_bad_handler_module_without_waiting_for_the_database() -> None:
    # A server that accepts the connection and never answers: an attempt to connect waits out its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        env = subprocess_env(f"postgresql://postgres@127.0.0.1:{port}/silent")
        result = run_cli(None, "worker", "--import", "nowhere_here", env=env, timeout=CONNECT_TIMEOUT_SECONDS / 2)
    assert result.returncode == 2 and "cannot import handler module" in result.stderr


def test_invalid_setting_exits_3_naming_it(db: str) -> None:
    result = run_cli(None, "stats", env=subprocess_env(db, LOG_LEVEL="loud"))
    assert result.returncode == 3 and "LOG_LEVEL must be one of" in result.stderr


@pytest.mark.parametrize("args", [["stats"], ["worker", "--import", "tests.support.handlers.basic"]])
def test_unmigrated_database_exits_4(empty_db: str, args: list[str]) -> None:
    result = run_cli(empty_db, *args)
    assert result.returncode == 4 and "supaworker migrate" in result.stderr


def test_an_invalid_setting_names_its_environment_variable(db: str) -> None:
    result = run_cli(None, "stats", env=subprocess_env(db, WORKER_MAX_CONCURRENT_JOBS="0"))
    assert result.returncode == 3
    assert "WORKER_MAX_CONCURRENT_JOBS: Input should be greater than or equal to 1" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [("MAX_CONCURRENT_JOBS", "0", ["stats"]), ("JOB_TIMEOUT_MS", "x", ["stats"]), ("PORT", "-1", ["up"])],
)
def test_an_invalid_setting_names_the_alias_it_was_set_by(db: str, variable: str, value: str, args: list[str]) -> None:
    # Pydantic names a setting's first name: `PORT=-1` was reported as SUPAWORKER_API_PORT, which nobody set.
    result = run_cli(None, *args, env=subprocess_env(db, **{variable: value}))
    assert result.returncode == 3, result.stderr
    assert f"invalid configuration: {variable}: " in result.stderr


def test_brief_show_gives_a_steps_error_only_while_it_is_not_completed(db: str) -> None:
    # A step retried after a cancel and completed still showed "brief cancelled by request".
    created = run_cli(db, "brief", "create", "--user-id", "u", "--query", "q", "--media-type", "text", "--json")
    assert created.returncode == 0, created.stderr
    brief_id = json.loads(created.stdout)["id"]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE supaworker.jobs SET status = 'completed', completed_at = now(), last_error = 'old trouble'"
            " WHERE brief_id = %s",
            (brief_id,),
        )
    shown = run_cli(db, "brief", "show", brief_id)
    assert shown.returncode == 0 and "completed" in shown.stdout and "old trouble" not in shown.stdout, shown.stdout
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE supaworker.jobs SET status = 'failed' WHERE brief_id = %s", (brief_id,))
    assert "old trouble" in run_cli(db, "brief", "show", brief_id).stdout
