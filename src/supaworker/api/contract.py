"""What the OpenAPI document promises beyond the routes' own signatures: the error body every error status
answers with, which statuses each route can answer, the bearer-key security scheme, and what the generated
document would leave out of the rules the API enforces (`refine_document`), so that a client or a fuzzer that
takes the document at its word is answered as it promises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from ..rules import MAX_BIGINT


class Problem(BaseModel):
    """One rejected field."""

    model_config = ConfigDict(populate_by_name=True)

    field: str = Field(description="The field, parameter or `body`.")
    in_: str = Field(alias="in", description="`body`, `query`, `path` or `header`.")
    reason: str


class ErrorBody(BaseModel):
    """Every error answers this; a 422 adds `detail`, one entry per rejected field."""

    error: str = Field(description="What was wrong, in one line.")
    detail: list[Problem] | None = None


_WHY = {
    400: "Bad query: unknown action, status or id.",
    401: "No key, or not one of the configured keys (writes always need one; reads unless they are open).",
    404: "No such job, brief or schedule.",
    409: "The job's or brief's state does not allow the action.",
    413: "Request body too large.",
    422: "Invalid body or parameter; `detail` names each field. Nothing was written.",
    503: "The database cannot be reached; try again shortly.",
}

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer <key>`: SUPAWORKER_API_KEY(S) or the Supabase service role key.",
)


# What StorableText checks, as a JSON Schema pattern: no NUL. (It refuses lone surrogates too, which no pattern
# can name for every validator: Rust's regexes, for one, cannot hold them.) And the same with at least one
# character that is not white space.
STORABLE_PATTERN = r"^[^\u0000]*$"
NOT_BLANK_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"

# run_at's range, rules.MIN_RUN_AT to before rules.MAX_RUN_AT (years 1970 to 9998), on its text: JSON Schema's
# date-time format has no bounds. It lets one corner through: a time early on 1970-01-01 with a positive offset,
# before the epoch in UTC.
RUN_AT_PATTERN = r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"

# Marks a field's schema as any JSON value jsonb stores (`validation.check_json`); see refine_document.
JSON_VALUE_MARK = "x-json-value"
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value; no NUL characters or lone surrogates in its strings and keys.",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": STORABLE_PATTERN},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": STORABLE_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ],
}
# Query parameters a route needs although FastAPI sees them as optional: the route answers their absence with
# a 400 of its own, which names what to send.
REQUIRED_QUERY = {("/api/jobs", "get"): {"action"}}


def refine_document(document: dict[str, Any], *, reads_open: bool) -> dict[str, Any]:
    """The generated document, corrected where it would promise more or less than the API does:

    - bounds are exact integers: FastAPI's document models keep them as floats, and 2**63 - 1 became
      9.223372036854776e18, which a client reads as allowing ids up to 2**63 + 1024;
    - JSON fields (JSON_VALUE_MARK) refer to one JsonValue schema that says what jsonb refuses;
    - the parameters of REQUIRED_QUERY are required;
    - every error answers JSON (ErrorBody), also on a route whose success is text (FastAPI gives every response
      of a route its response class's media type);
    - when reads need no key (`reads_open`), each GET route says its key is optional.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.pop(JSON_VALUE_MARK, False):
                node["$ref"] = "#/components/schemas/JsonValue"
            for key, value in node.items():
                if key in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum") and isinstance(value, float):
                    node[key] = _exact(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        return node

    walk(document)
    document.setdefault("components", {}).setdefault("schemas", {})["JsonValue"] = JSON_VALUE_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            required = REQUIRED_QUERY.get((path, method), set())
            for parameter in operation.get("parameters", []):
                if parameter["name"] in required:
                    parameter["required"] = True
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            if reads_open and method == "get" and operation.get("security"):
                operation["security"] = [{}, *operation["security"]]
    return document


def _exact(value: float) -> int | float:
    """The integer a float bound stood for: bigint's ends, which a float cannot hold, or the float's own value."""
    if not value.is_integer():
        return value
    return _BIGINT_ENDS.get(value, int(value))


_BIGINT_ENDS = {float(MAX_BIGINT): MAX_BIGINT, float(-MAX_BIGINT - 1): -MAX_BIGINT - 1}


# The 200 of a server-sent events route, and the response itself (no caching, no proxy buffering).
EVENT_STREAM_RESPONSE: dict[str, Any] = {"content": {"text/event-stream": {"schema": {"type": "string"}}}}


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses (plus 401, 422 and 503, which any
    route with a key check, parameters and a database can)."""
    wanted = sorted({401, 422, 503, *statuses})
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in wanted}
