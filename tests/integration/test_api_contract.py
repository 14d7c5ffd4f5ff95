"""The API does what its OpenAPI document says, on the real database: schemathesis generates valid and
invalid requests (NUL characters included) for every operation and checks that none gets a server error,
every status and body is the documented one, and invalid data is rejected. /docs needs no CDN."""

from __future__ import annotations

import re

import hypothesis
import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from supaworker.store import Store
from tests.conftest import SCHEMA
from tests.support.api import AUTH, make_app

# Bounded so the whole run takes a minute or two on a small machine: examples per operation and mode.
EXAMPLES_PER_OPERATION = 40
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, negative_data_rejection]


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
    case.call_and_validate(app=fuzzed_app, headers={**(case.headers or {}), **AUTH}, checks=CHECKS)


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
