"""What the OpenAPI document promises beyond the routes' own signatures: the error body every error status
answers with, which statuses each route can answer, and the bearer-key security scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field


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
