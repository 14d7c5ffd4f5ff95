"""The `supaworker` command given odd input: arguments Python or PostgreSQL cannot take exit 2 and write nothing,
and odd values in the database print without driving the terminal or breaking the JSON."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

from ..conftest import run_cli

BRIEF_CREATE = ["brief", "create", "--user-id", "u", "--query", "q", "--media-type", "video"]
# More digits than Python converts from text to an int (4,300 by default).
HUGE_INTEGER = '{"n": ' + "9" * 5000 + "}"
# An argument holding the byte 0xff, which is not UTF-8: Python passes it on as the lone surrogate U+DCFF.
NOT_UTF8 = "\udcff"
# What a terminal acts on: C0 controls but tab and newline, DEL and C1 controls.
TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
EVIL_TYPE = "evil\x1b[2J\x1b]0;owned\x07"
EVIL_ERROR = "bad\x9b31m\x7f\x08hidden"


def row_counts(db: str) -> tuple[int, int, int]:
    """(jobs, briefs, periodic jobs): compared before and after each rejected command."""
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM supaworker.jobs), (SELECT count(*) FROM supaworker.briefs),"
            " (SELECT count(*) FROM supaworker.periodic_jobs)"
        ).fetchone()


def strict_json(text: str) -> Any:
    """JSON as any parser reads it: the bare NaN and Infinity Python's json accepts are refused."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["enqueue", "t", "--payload", HUGE_INTEGER], "--payload"),
        (["periodic", "add", "p", "* * * * *", "--type", "t", "--payload", HUGE_INTEGER], "--payload"),
        ([*BRIEF_CREATE, "--options", HUGE_INTEGER], "--options"),
    ],
)
def test_an_integer_too_long_for_python_exits_2_naming_the_option(db: str, args: list[str], option: str) -> None:
    before = row_counts(db)
    result = run_cli(db, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {option} holds an integer of more than")
    assert "Traceback" not in result.stderr
    assert row_counts(db) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "--type", NOT_UTF8], "type must be valid Unicode"),
        (["periodic", "remove", NOT_UTF8], "name must be valid Unicode"),
        ([*BRIEF_CREATE, "--step", "analysis", "--step", NOT_UTF8], "step must be valid Unicode"),
    ],
)
def test_an_argument_that_is_not_utf8_exits_2_naming_it(db: str, args: list[str], message: str) -> None:
    before = row_counts(db)
    result = run_cli(db, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert row_counts(db) == before


def test_human_output_escapes_control_characters_stored_in_the_database(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        job_id = conn.execute(
            "INSERT INTO supaworker.jobs (type, queue, status, completed_at, last_error)"
            " VALUES (%s, %s, 'failed', now(), %s) RETURNING id",
            (EVIL_TYPE, EVIL_TYPE, EVIL_ERROR),
        ).fetchone()[0]
        conn.execute(f'CREATE TABLE supaworker."{EVIL_TYPE}" ()')
    brief = run_cli(db, *BRIEF_CREATE, "--title", EVIL_TYPE, "--step", EVIL_TYPE, "--json")
    assert brief.returncode == 0, brief.stderr
    brief_id = json.loads(brief.stdout)["id"]
    assert run_cli(db, "periodic", "add", "p", "* * * * *", "--type", EVIL_TYPE).returncode == 0

    outputs = [
        run_cli(db, *args)
        for args in (
            ["jobs"],
            ["stats"],
            ["brief", "show", brief_id],
            ["periodic", "list"],
            ["wait", str(job_id)],
            ["doctor"],
        )
    ]
    for result in outputs:
        assert not TERMINAL_CONTROL.search(result.stdout + result.stderr), (result.args, result.stdout, result.stderr)
    jobs, stats, shown, periodic, waited, doctor = outputs
    assert "evil\\x1b[2J\\x1b]0;owned\\x07" in jobs.stdout and "bad\\x9b31m\\x7f\\x08hidden" in jobs.stdout
    assert "evil\\x1b[2J" in stats.stdout
    assert "title: evil\\x1b[2J" in shown.stdout and "pipeline evil\\x1b[2J" in shown.stdout
    assert "evil\\x1b[2J" in periodic.stdout
    assert waited.returncode == 7 and "bad\\x9b31m" in waited.stderr
    assert 'supaworker."evil\\x1b[2J' in doctor.stdout

    # JSON escapes them already, and gives back exactly what is stored.
    listed = json.loads(run_cli(db, "jobs", "--json").stdout)
    assert [(j["type"], j["last_error"]) for j in listed if j["id"] == job_id] == [(EVIL_TYPE, EVIL_ERROR)]
    assert json.loads(run_cli(db, "show", str(job_id)).stdout)["queue"] == EVIL_TYPE


def test_json_output_gives_non_finite_floats_as_strings(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        nan_id, infinite_id = (
            conn.execute(
                "INSERT INTO supaworker.jobs (type, timeout_seconds) VALUES ('t', %s::float8) RETURNING id", (value,)
            ).fetchone()[0]
            for value in ("NaN", "Infinity")
        )
        conn.execute(
            "INSERT INTO supaworker.job_controls (scope, name, rate_limit, rate_period_seconds)"
            " VALUES ('type', 't', 1, 'NaN')"
        )
    for job_id, shown in ((nan_id, "NaN"), (infinite_id, "Infinity")):
        result = run_cli(db, "show", str(job_id))
        assert result.returncode == 0, result.stderr
        assert strict_json(result.stdout)["timeout_seconds"] == shown
    listed = strict_json(run_cli(db, "jobs", "--json").stdout)
    assert sorted(j["timeout_seconds"] for j in listed) == ["Infinity", "NaN"]
    controls = strict_json(run_cli(db, "controls", "--json").stdout)
    assert controls[0]["rate_period_seconds"] == "NaN"
