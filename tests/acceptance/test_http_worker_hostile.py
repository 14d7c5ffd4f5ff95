"""The HTTP worker when PostgREST, or the gateway in front of it, misbehaves: restarts, 502/503 answers, schema
reloads, statement timeouts, a key that stops working, odd rows and results. A real PostgREST and real worker
processes; waits are bounded loops, nothing is timed."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.acceptance import test_http_worker
from tests.acceptance.test_http_worker import FAST, key
from tests.faults.harness import Fleet, enqueue_effects, status_counts, tally, worker_env
from tests.servers import PostgREST
from tests.support.gateway import Gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.acceptance

supa = test_http_worker.supa  # the fixture: a migrated database and a PostgREST serving it

# A handler module the worker imports (from the test's tmp dir): it returns what its payload names.
RESULT_HANDLERS = """
import supaworker

RESULTS = {
    "large": lambda: {"blob": "\\u00e9\\U0001F600\\u202e" * 1_000_000},
    "unicode": lambda: {"s": "\\u202eRTL e\\u0301 \\U0001F600 \\u2028 \\ufeff \\uffff", "k\\u00e9": ["\\u0430"]},
    "nan": lambda: {"x": float("nan")},
    "huge_int": lambda: 10 ** 5000,
}


@supaworker.handler("returns")
def returns(job):
    return RESULTS[job.payload["kind"]]()
"""


class FailingGateway(Gateway):
    """The gateway, answering `failing` (502, 503) while that is set: every request, or those to `failing_path`
    only, `times` times."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.failing: int | None = None
        self.failing_path: str | None = None
        self.times = 1_000_000

    def refuse(self, path: str) -> int | None:
        with self.lock:
            if self.failing and self.times > 0 and path.startswith(self.failing_path or "/"):
                self.times -= 1
                return self.failing
        return None


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet()
    yield f
    f.stop_all()


def http_env(url: str, rest_url: str, token: str | None = None, **extra: str) -> dict[str, str]:
    # No DATABASE_URL: the worker can only go through PostgREST.
    token = token or key("service_role")
    return worker_env(None, url, SUPAWORKER_POSTGREST_URL=rest_url, SUPABASE_SERVICE_ROLE_KEY=token, **FAST, **extra)


def answers(server: PostgREST) -> bool:
    response = httpx.post(
        f"{server.url}/rpc/heartbeat_jobs",
        json={"p_worker_id": "probe", "p_ids": []},
        headers={"Authorization": f"Bearer {key('service_role')}", "Content-Profile": "supaworker"},
    )
    return response.status_code == 200


def test_the_http_worker_rides_out_gateway_errors_a_restart_and_schema_reloads(
    supa: tuple[str, PostgREST], fleet: Fleet
) -> None:
    url, server = supa
    gateway = FailingGateway(server.url)
    try:
        w = fleet.start(http_env(url, gateway.url), "--concurrency", "4")
        fleet.wait_started()
        enqueue_effects(url, 200, sleep=0.01)

        def completed_at_least(n: int) -> None:
            wait_until(lambda: status_counts(url)["completed"] >= n, fleet.explain(f"{n} jobs completed"))

        completed_at_least(20)
        for status in (503, 502):
            gateway.failing = status
            met = fleet.explain(f"the worker to meet {status}s")
            wait_until(lambda: gateway.answered.get(gateway.failing or 0, 0) >= 5, met)
        gateway.failing = None
        completed_at_least(80)
        server.stop()  # the gateway answers 502 meanwhile, as Supabase's does
        wait_until(lambda: gateway.answered.get(502, 0) >= 10, fleet.explain("the worker to meet a stopped API"))
        server.start()  # same port
        completed_at_least(140)
        assert server.proc is not None
        for _ in range(5):
            server.proc.send_signal(signal.SIGUSR1)  # what NOTIFY pgrst, 'reload schema' does
        wait_until(lambda: status_counts(url)["completed"] == 200, fleet.explain("200 jobs completed"))
        assert w.stop() == 0, fleet.logs()
    finally:
        gateway.close()
    result = tally(url, fleet)
    # Nothing was down for a lease: no job ran again, none was completed twice or lost.
    assert (result.lost, result.executions, result.jobs_run_twice, result.completed_twice) == (0, 200, 0, 0), (
        result.line()
    )


def test_a_claim_whose_follow_up_call_fails_still_runs_its_jobs(supa: tuple[str, PostgREST], fleet: Fleet) -> None:
    # A claim over HTTP is two calls: claim_jobs_v2, then jobs_with_parents. When the second failed, the claimed
    # jobs were dropped, and stayed `processing` under the live worker for good (a worker never rescues its own).
    url, server = supa
    gateway = FailingGateway(server.url)
    try:
        gateway.failing, gateway.failing_path, gateway.times = 503, "/rpc/jobs_with_parents", 1
        w = fleet.start(http_env(url, gateway.url))
        fleet.wait_started()
        enqueue_effects(url, 20)
        wait_until(lambda: status_counts(url)["completed"] == 20, fleet.explain("20 jobs completed"))
        assert w.stop() == 0
        assert gateway.answered[503] == 1
    finally:
        gateway.close()
    assert tally(url, fleet).executions == 20


def test_a_statement_timeout_under_postgrest_is_retried_not_fatal(supa: tuple[str, PostgREST], fleet: Fleet) -> None:
    # PostgREST passes a statement or lock timeout, a deadlock or a serialization failure on as a 500 with the
    # SQLSTATE; the worker died of its first one, which the Postgres worker retries. Here: a table lock (an
    # ALTER TABLE, a VACUUM FULL) outlasting the statement_timeout of PostgREST's role, as Supabase sets one.
    url, server = supa
    with psycopg.connect(url, autocommit=True) as conn:
        dbname = conninfo_to_dict(url)["dbname"]
        conn.execute(f"ALTER ROLE authenticator IN DATABASE \"{dbname}\" SET statement_timeout = '300ms'")
    server.stop()
    server.start()
    wait_until(lambda: answers(server), "PostgREST to answer")
    enqueue_effects(url, 10)
    w = fleet.start(http_env(url, server.url))
    wait_until(lambda: status_counts(url)["completed"] == 10, fleet.explain("10 jobs completed"))
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE supaworker.jobs IN ACCESS EXCLUSIVE MODE")
        wait_until(lambda: "57014" in w.log_text() or w.proc.poll() is not None, fleet.explain("a claim to time out"))
    enqueue_effects(url, 10)
    wait_until(
        lambda: status_counts(url)["completed"] == 20 or w.proc.poll() is not None, fleet.explain("20 jobs completed")
    )
    assert w.proc.poll() is None, w.log_text()[-3000:]
    assert w.stop() == 0
    assert "claiming failed, retrying" in w.log_text()


def test_a_key_that_stops_working_stops_the_worker_naming_the_variable(
    supa: tuple[str, PostgREST], fleet: Fleet
) -> None:
    # The project's JWT secret is replaced while the worker runs: every call is refused with 401 PGRST301. The
    # worker exits with the configuration error's code and says what to change, rather than idling or retrying.
    url, server = supa
    enqueue_effects(url, 5)
    w = fleet.start(http_env(url, server.url))
    wait_until(lambda: status_counts(url)["completed"] == 5, fleet.explain("5 jobs completed"))
    server.stop()
    server.jwt_secret = "a-replaced-secret-at-least-32-characters-long"
    server.start()
    assert w.proc.wait(60) == 3, w.log_text()[-3000:]
    last = w.log_text().strip().splitlines()[-1]
    assert "SUPABASE_SERVICE_ROLE_KEY" in last and "expired, or was replaced" in last, last
    # An expired key is told apart from the wrong role before the worker starts.
    expired = jwt.encode({"role": "service_role", "exp": int(time.time()) - 3600}, server.jwt_secret, "HS256")
    again = fleet.start(http_env(url, server.url, expired))
    assert again.proc.wait(60) == 3
    assert "JWT expired" in again.log_text() and "expired, or was replaced" in again.log_text()


def test_odd_rows_inserted_by_sql_are_claimed_and_end_with_a_reason(supa: tuple[str, PostgREST], fleet: Fleet) -> None:
    url, server = supa
    texts = {
        "huge": json.dumps({"blob": "x" * 20_000_000}),
        "digits": '{"n": ' + "7" * 4000 + "}",
        "beyond_float": '{"n": ' + "9" * 400 + ".5}",
        "wide": json.dumps({f"k{i}": i for i in range(50_000)}),
        "scalar": json.dumps("a string \u2028 \U0001f600"),
    }
    with psycopg.connect(url, autocommit=True) as conn:
        ids = {
            name: conn.execute(
                "INSERT INTO supaworker.jobs (type, payload, max_attempts) VALUES ('echo_upstream', %s::jsonb, 1)"
                " RETURNING id",
                (text,),
            ).fetchone()[0]  # type: ignore[index]
            for name, text in texts.items()
        }
        ids["edge_columns"] = conn.execute(
            "INSERT INTO supaworker.jobs (type, payload, run_at, created_at, priority, max_attempts, timeout_seconds)"
            " VALUES ('effect', '{}', '4713-01-01 BC', '294276-01-01', 2147483647, 2147483647, 2147483647)"
            " RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
    w = fleet.start(http_env(url, server.url))
    wait_until(lambda: status_counts(url) == {"completed": 5, "failed": 1}, fleet.explain("the odd jobs to end"))
    assert w.stop() == 0, w.log_text()[-3000:]
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, status::text, last_error, result FROM supaworker.jobs").fetchall()
    outcome = {job_id: (status, error, result) for job_id, status, error, result in rows}
    for name, text in texts.items():
        if name != "beyond_float":
            assert outcome[ids[name]][2]["payload"] == json.loads(text), name
    status, error, _ = outcome[ids["beyond_float"]]
    assert status == "failed" and error.startswith("InvalidJob: the payload cannot be read") and "float" in error
    assert outcome[ids["edge_columns"]][0] == "completed"


def test_handler_results_are_stored_exactly_or_fail_their_job_with_a_reason(
    supa: tuple[str, PostgREST], fleet: Fleet, tmp_path: Path
) -> None:
    url, server = supa
    (tmp_path / "result_handlers.py").write_text(RESULT_HANDLERS)
    with psycopg.connect(url, autocommit=True) as conn:
        ids = {
            kind: conn.execute(
                "INSERT INTO supaworker.jobs (type, payload, max_attempts) VALUES ('returns', %s::jsonb, 1)"
                " RETURNING id",
                (json.dumps({"kind": kind}),),
            ).fetchone()[0]  # type: ignore[index]
            for kind in ("large", "unicode", "nan")
        }
    env = http_env(url, server.url)
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    w = fleet.start(env, "--import", "result_handlers")
    wait_until(lambda: status_counts(url) == {"completed": 2, "failed": 1}, fleet.explain("the 3 jobs to end"))
    assert w.stop() == 0, w.log_text()[-3000:]
    with psycopg.connect(url) as conn:
        rows: dict[int, object] = dict(
            conn.execute("SELECT id, coalesce(result, to_jsonb(last_error)) FROM supaworker.jobs").fetchall()
        )
    assert rows[ids["large"]] == {"blob": "\u00e9\U0001f600\u202e" * 1_000_000}
    assert rows[ids["unicode"]] == {"s": "\u202eRTL e\u0301 \U0001f600 \u2028 \ufeff \uffff", "k\u00e9": ["\u0430"]}
    assert "must be a finite number, not nan" in str(rows[ids["nan"]])


def test_a_result_python_cannot_write_fails_its_own_job(
    supa: tuple[str, PostgREST], fleet: Fleet, tmp_path: Path
) -> None:
    url, server = supa
    (tmp_path / "result_handlers.py").write_text(RESULT_HANDLERS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO supaworker.jobs (type, payload, max_attempts) VALUES ('returns', %s, 1)",
                     (json.dumps({"kind": "huge_int"}),))  # fmt: skip
    enqueue_effects(url, 3)
    env = http_env(url, server.url)
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    w = fleet.start(env, "--import", "result_handlers")
    wait_until(
        lambda: status_counts(url) == {"completed": 3, "failed": 1} or w.proc.poll() is not None,
        fleet.explain("the 4 jobs to end"),
    )
    assert w.proc.poll() is None, w.log_text()[-2000:]
    assert w.stop() == 0
    with psycopg.connect(url) as conn:
        (error,) = conn.execute("SELECT last_error FROM supaworker.jobs WHERE status = 'failed'").fetchone()  # type: ignore[misc]
    assert "4,300 digits" in error or "4300 digits" in error, error


@pytest.mark.parametrize("prefetch", [None, "500"])
def test_a_few_thousand_jobs_complete_exactly_once_over_http(
    supa: tuple[str, PostgREST], fleet: Fleet, prefetch: str | None
) -> None:
    url, server = supa
    w = fleet.start(http_env(url, server.url), *(("--prefetch", prefetch) if prefetch else ()))
    fleet.wait_started()
    enqueue_effects(url, 3000)
    wait_until(lambda: status_counts(url)["completed"] == 3000, fleet.explain("3000 jobs completed"))
    assert w.stop() == 0
    result = tally(url, fleet)
    assert (result.executions, result.accepted_completions, result.completed_twice, result.jobs_run_twice) == (
        3000,
        3000,
        0,
        0,
    ), result.line()
