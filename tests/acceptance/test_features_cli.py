"""The queue-feature commands as a user runs them: real `supaworker` subprocesses on a real database."""

from __future__ import annotations

import json

import psycopg
import pytest

import supaworker
from supaworker.store import Store
from tests.conftest import run_cli

pytestmark = pytest.mark.acceptance


def test_pause_limit_and_controls_commands(db: str) -> None:
    assert run_cli(db, "pause", "--type", "render").returncode == 0
    assert run_cli(db, "limit", "analysis", "--rate", "10", "--per", "1").returncode == 0
    assert run_cli(db, "limit", "render", "--max-running", "2").returncode == 0
    listed = json.loads(run_cli(db, "controls", "--json").stdout)
    assert {(c["name"], c["paused"], c["max_running"], c["rate_limit"]) for c in listed} == {
        ("analysis", False, None, 10),
        ("render", True, 2, None),
    }
    assert run_cli(db, "resume", "--type", "render").returncode == 0
    assert run_cli(db, "limit", "render", "--clear").returncode == 0
    assert [c["name"] for c in json.loads(run_cli(db, "controls", "--json").stdout)] == ["analysis"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause"], "exactly one of --type or --queue"),
        (["limit", "render"], "give --max-running and/or --rate, or --clear"),
        (["periodic", "add", "n", "every day", "--type", "t"], "cron must be a cron expression"),
        (["enqueue", "t", "--unique-for", "5"], "unique_for needs a unique_key"),
        (["worker", "--import", "supaworker.handlers", "--queue", "a=x"], "N must be a whole number"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(db: str, store: Store, args: list[str], message: str) -> None:
    result = run_cli(db, *args)
    assert result.returncode == 2 and message in result.stderr
    assert supaworker.list_controls(store=store) == [] and supaworker.list_periodic_jobs(store=store) == []


def test_enqueue_with_unique_key_prints_the_existing_job(db: str) -> None:
    first = run_cli(db, "enqueue", "report", "--unique-key", "r-1")
    second = run_cli(db, "enqueue", "report", "--unique-key", "r-1")
    assert first.stdout == second.stdout and "duplicate" in second.stderr


def test_wait_prints_result_or_exits_with_the_jobs_fate(db: str, store: Store) -> None:
    done = supaworker.create_job("t", store=store)
    with store.connection() as c:
        c.execute("SELECT * FROM supaworker.claim_jobs('w', NULL, 1)")
        c.execute("""SELECT supaworker.complete_job(%s, 'w', '{"ok": true}')""", (done.id,))
    assert json.loads(run_cli(db, "wait", str(done.id)).stdout) == {"ok": True}
    cancelled = supaworker.create_job("t", store=store)
    supaworker.cancel_job(cancelled.id, "stop", store=store)
    assert run_cli(db, "wait", str(cancelled.id)).returncode == 7
    pending = supaworker.create_job("t", store=store)
    assert run_cli(db, "wait", str(pending.id), "--timeout", "0.1").returncode == 8


def test_periodic_prune_and_tables_commands(db: str) -> None:
    assert run_cli(db, "periodic", "add", "nightly", "0 3 * * *", "--type", "report").returncode == 0
    [row] = json.loads(run_cli(db, "periodic", "list", "--json").stdout)
    assert (row["name"], row["type"], row["source"]) == ("nightly", "report", "api")
    assert run_cli(db, "periodic", "disable", "nightly").returncode == 0
    assert [r["enabled"] for r in json.loads(run_cli(db, "periodic", "list", "--json").stdout)] == [False]
    assert run_cli(db, "periodic", "enable", "nightly").returncode == 0
    assert [r["enabled"] for r in json.loads(run_cli(db, "periodic", "list", "--json").stdout)] == [True]
    assert run_cli(db, "periodic", "disable", "no-such").returncode == 5
    assert run_cli(db, "periodic", "remove", "nightly").returncode == 0
    assert run_cli(db, "periodic", "remove", "nightly").returncode == 5
    assert "pruned 0 completed, 0 failed, 0 cancelled" in run_cli(db, "prune").stdout
    tables = {t["table_name"] for t in json.loads(run_cli(db, "tables", "--json").stdout)}
    assert {"jobs", "job_controls", "periodic_jobs", "leaders"} <= tables
    assert "jobs table:" in run_cli(db, "stats").stdout


def test_fairness_weights_and_tenant_keys_from_the_command_line(db: str) -> None:
    assert run_cli(db, "fairness", "set", "tenant-a", "--weight", "3").returncode == 0
    assert json.loads(run_cli(db, "fairness", "list", "--json").stdout)[0] | {"updated_at": None} == {
        "key": "tenant-a",
        "weight": 3,
        "updated_at": None,
    }
    bad = run_cli(db, "fairness", "set", "tenant-a", "--weight", "0")
    assert bad.returncode == 2 and "weight must be a whole number from 1 to 10000" in bad.stderr
    assert run_cli(db, "fairness", "remove", "tenant-a").returncode == 0
    assert run_cli(db, "fairness", "remove", "tenant-a").returncode == 5
    enqueued = run_cli(db, "enqueue", "t", "--count", "3", "--fairness-key", "tenant-b")
    assert enqueued.returncode == 0, enqueued.stderr
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT fairness_key, count(*) FROM supaworker.jobs GROUP BY 1").fetchall() == [
            ("tenant-b", 3)
        ]
