"""The API does what its OpenAPI document says, on the real database: schemathesis generates valid and
invalid requests (NUL characters included) for every operation and runs every check it has (the set its
command line runs by default): no server error, every status, header and body the documented one, invalid data
refused, valid data accepted, the key enforced where the document asks for one, and a method a path does not
have answered 405 with the right `Allow`. /docs needs no CDN."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import hypothesis
import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.checks import positive_data_acceptance

from supaworker import rules, validation
from supaworker.api.contract import RUN_AT_PATTERN
from supaworker.errors import InvalidJob
from supaworker.store import Store
from tests.conftest import SCHEMA
from tests.support.api import AUTH, make_app

# Bounded so the whole run takes a minute or two on a small machine: examples per operation and mode.
EXAMPLES_PER_OPERATION = 40
# Two refusals no OpenAPI document can express, so they are the only valid-looking requests refused: a query
# parameter needed by one value of another (`action=by_brief` needs `brief_id`), and a body field naming a row
# that does not exist (a `brief_id` that is no brief's: 422, the field named).
DOCUMENTED_REFUSALS = (
    (400, "action=by_brief needs brief_id"),
    (422, "is no brief's id; create the brief first"),
)


def valid_data_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """schemathesis' positive_data_acceptance, except for DOCUMENTED_REFUSALS."""
    for status, words in DOCUMENTED_REFUSALS:
        if response.status_code == status and words in response.text:
            return None
    return positive_data_acceptance(ctx, response, case)


@pytest.fixture
def fuzzed_app(store: Store, conn: psycopg.Connection) -> FastAPI:
    """The app on this test's database, with a few rows so ids and reads find something."""
    conn.execute("INSERT INTO supaworker.jobs (type) SELECT 't' FROM generate_series(1, 3)")
    conn.execute("UPDATE supaworker.jobs SET status = 'failed', completed_at = now() WHERE id = 2")
    conn.execute(
        "INSERT INTO supaworker.briefs (user_id, query, media_type, pipeline) VALUES ('u', 'q', 'video', '{analysis}')"
    )
    return make_app(store)


# The document does not depend on the database: read it from an app without one; requests go to fuzzed_app.
schema = schemathesis.openapi.from_asgi("/openapi.json", make_app(Store(None, SCHEMA)))
schema.config.generation.update(allow_x00=True, max_examples=EXAMPLES_PER_OPERATION)
schema.config.update(headers=AUTH)  # the key, as `schemathesis run -H` gives it: negative cases may take it away
# The event stream never ends: it has its own tests.
schema = schema.exclude(path="/api/events")
schema = schema.exclude(path="/api/briefs/{brief_id}/events")


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_conforms_to_the_openapi_document(case: schemathesis.Case, fuzzed_app: FastAPI) -> None:
    case.call_and_validate(
        app=fuzzed_app,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[valid_data_accepted],
    )


def test_docs_load_swagger_ui_from_this_server(store: Store) -> None:
    with TestClient(make_app(store, public_reads=True)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert not re.search(r"https?://", page.text), "the docs page must not load anything from elsewhere"
        for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text):
            assert client.get(asset).status_code == 200, asset
        assert "swagger-ui-bundle.js" in page.text


def test_openapi_documents_the_error_body_metrics_as_text_and_the_bearer_scheme(store: Store) -> None:
    with TestClient(make_app(store, public_reads=True)) as client:
        doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {**doc["components"]["securitySchemes"]["bearer"],
                                                               "type": "http", "scheme": "bearer"}  # fmt: skip
    create = doc["paths"]["/api/jobs"]["post"]["responses"]
    assert {"201", "401", "413", "422", "503"} <= set(create)
    assert create["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert list(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    retry = doc["paths"]["/api/jobs/{job_id}/retry"]["post"]["responses"]
    assert {"404", "409"} <= set(retry)


def test_a_method_a_path_lacks_answers_405_naming_every_method_it_has(store: Store) -> None:
    with TestClient(make_app(store)) as client:
        briefs = client.request("OPTIONS", "/api/briefs", headers=AUTH)
        jobs = client.delete("/api/jobs", headers=AUTH)
        bulk = client.get("/api/jobs/bulk", headers=AUTH)
    assert briefs.status_code == 405 and briefs.headers["allow"] == "GET, POST"
    assert jobs.status_code == 405 and jobs.headers["allow"] == "GET, POST"
    # `bulk` is no job id: only the bulk route's own method
    assert bulk.status_code == 405 and bulk.headers["allow"] == "POST"
    assert briefs.json() == {"error": "Method Not Allowed"}


def test_the_document_holds_exact_bounds_optional_keys_for_open_reads_and_json_errors(store: Store) -> None:
    with TestClient(make_app(store)) as client:
        closed = client.get("/openapi.json").json()
    with TestClient(make_app(store, public_reads=True)) as client:
        open_ = client.get("/openapi.json").json()
    job_id = closed["paths"]["/api/jobs/{job_id}"]["get"]["parameters"][0]["schema"]
    assert job_id["maximum"] == 2**63 - 1 and isinstance(job_id["maximum"], int)
    assert closed["paths"]["/api/jobs/{job_id}"]["get"]["security"] == [{"bearer": []}]
    assert open_["paths"]["/api/jobs/{job_id}"]["get"]["security"] == [{}, {"bearer": []}]
    assert open_["paths"]["/api/jobs"]["post"]["security"] == [{"bearer": []}]  # writes always need the key
    action = closed["paths"]["/api/jobs"]["get"]["parameters"][0]
    assert action["name"] == "action" and action["required"] is True
    unauthorized = closed["paths"]["/metrics"]["get"]["responses"]["401"]["content"]
    assert list(unauthorized) == ["application/json"]


def test_a_whole_number_written_with_a_point_is_an_integer(store: Store) -> None:
    with TestClient(make_app(store)) as client:
        made = client.post("/api/jobs", json={"type": "t", "max_attempts": 5.0, "priority": -2.0}, headers=AUTH)
        half = client.post("/api/jobs", json={"type": "t", "max_attempts": 2.5}, headers=AUTH)
        truth = client.post("/api/jobs", json={"type": "t", "max_attempts": True}, headers=AUTH)
    assert made.status_code == 201, made.text
    assert (made.json()["job"]["max_attempts"], made.json()["job"]["priority"]) == (5, -2)
    assert half.status_code == 422 and half.json()["detail"][0]["field"] == "max_attempts"
    assert truth.status_code == 422 and truth.json()["detail"][0]["field"] == "max_attempts"


# (body schema, field) the API refuses blank, with a request that sends it blank.
BLANK_REFUSED = [
    ("JobCreate", "type", "post", "/api/jobs", {"type": " "}),
    ("JobCreate", "queue", "post", "/api/jobs", {"type": "t", "queue": " "}),
    ("ControlTarget", "type", "post", "/api/controls/pause", {"type": " "}),
    ("LimitsRequest", "type", "post", "/api/controls/limits", {"type": " "}),
    ("PeriodicSwitch", "name", "post", "/api/periodic/enabled", {"name": " ", "enabled": True}),
    ("BriefCreate", "query", "post", "/api/briefs", {"user_id": "u", "query": " ", "media_type": "text"}),
    ("CancelRequest", "reason", "post", "/api/jobs/1/cancel", {"reason": " "}),
]


@pytest.mark.parametrize(("model", "field", "method", "path", "body"), BLANK_REFUSED)
def test_text_refused_blank_is_documented_so(
    store: Store, conn: psycopg.Connection, model: str, field: str, method: str, path: str, body: dict
) -> None:
    # A schema-valid blank reason to cancel a job answered 422: the document did not say "not blank".
    conn.execute("INSERT INTO supaworker.jobs (type) VALUES ('t')")
    with TestClient(make_app(store)) as client:
        doc = client.get("/openapi.json").json()
        answer = client.request(method, path, json=body, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == field, answer.text
    schema = doc["components"]["schemas"][model]["properties"][field]
    patterns = [s["pattern"] for s in [schema, *schema.get("anyOf", [])] if "pattern" in s]
    assert patterns and all(not re.search(p, " ") and re.search(p, "x") for p in patterns), schema


def test_run_ats_documented_range_is_the_rules() -> None:
    day = timedelta(days=1)
    inside = [rules.MIN_RUN_AT, rules.MIN_RUN_AT + day, rules.MAX_RUN_AT - day, datetime(2030, 6, 1, tzinfo=UTC)]
    outside = [rules.MIN_RUN_AT - day, rules.MAX_RUN_AT, datetime(158, 7, 19, tzinfo=UTC)]
    for moment in inside:
        assert re.search(RUN_AT_PATTERN, moment.isoformat()), moment
        validation.check_run_at(moment)
    for moment in outside:
        assert not re.search(RUN_AT_PATTERN, moment.isoformat()), moment
        with pytest.raises(InvalidJob):
            validation.check_run_at(moment)
