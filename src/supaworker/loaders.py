"""Reading any stored row: loaders for values that PostgreSQL holds but Python cannot represent as is.

Every way in (`supaworker.validation`) keeps such values out, but plain SQL can still store them, and one
odd row must never break a page that lists it. The Store reads through these loaders, so:

- a timestamp beyond Python's datetime (`'infinity'`, year 200000, BC) reads as an `OutOfRangeTime`: a
  datetime at the nearest end of Python's range (so comparisons and sorting still work) whose text, in JSON
  and in `str()`, is what PostgreSQL printed;
- a JSON value nested deeper than READABLE_DEPTH (which the encoders that serve it could not handle), or
  one Python cannot load as it is (an integer of more than 4,300 digits, which jsonb holds, and the SQL API
  takes, but Python refuses to read from text; a number beyond a float's range, which it would read as an
  infinity; nesting deeper than Python's recursion limit), reads as an `UnreadableJson`: its JSON text, a
  string, that says why.

The worker's loader (`utf8_json_loads`) reads those the same way, and the worker fails such a job for good,
with the reason, rather than letting one row break the claim that read it.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types.json import set_json_loads

# Above rules.MAX_PAYLOAD_DEPTH (what can be written now), below the ~250 levels where pydantic's
# serialiser stops, with room for the response around the value.
READABLE_DEPTH = 200

_TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid
_FastTimestamptzLoader = psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)


class OutOfRangeTime(datetime):
    """A stored time outside Python's datetime range: compares as datetime.max or .min, prints as stored."""

    text: str

    def __new__(cls, text: str, *fields: Any, **named: Any) -> datetime:  # type: ignore[misc]
        if fields or named or not isinstance(text, str):
            # Arithmetic on one (the time a second before it) builds its result through this class: a plain
            # datetime, near the end of the range where this one stands.
            return datetime(text, *fields, **named)  # type: ignore[arg-type]
        end = datetime.min if text.startswith("-") or text.endswith("BC") else datetime.max
        moment = super().__new__(
            cls, end.year, end.month, end.day, end.hour, end.minute, end.second, end.microsecond, tzinfo=UTC
        )
        moment.text = text
        return moment

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"OutOfRangeTime({self.text!r})"


class LenientTimestamptzLoader(Loader):
    """timestamptz as psycopg's own (C) loader reads it, or an OutOfRangeTime where that one gives up."""

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        assert _FastTimestamptzLoader is not None
        self._fast = _FastTimestamptzLoader(oid, context)

    def load(self, data: Buffer) -> datetime:
        try:
            return self._fast.load(data)
        except psycopg.DataError:
            return OutOfRangeTime(bytes(data).decode("utf-8", "replace"))


class UnreadableJson(str):
    """A stored JSON value read as its text, because Python cannot load it or serve it; `reason` says why."""

    reason: str

    def __new__(cls, text: str, reason: str) -> UnreadableJson:
        value = super().__new__(cls, text)
        value.reason = reason
        return value


def _finite_float(text: str) -> float:
    # float() reads a number beyond a float's range (jsonb holds any numeric) as an infinity, silently.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:24]}... is beyond a float's range")
    return value


# One decoder for every value: json.loads given a keyword makes a new one at each call.
_decode = json.JSONDecoder(parse_float=_finite_float).decode


def _loads(text: str) -> Any:
    try:
        return _decode(text)
    except RecursionError:
        return UnreadableJson(text, "nested deeper than Python can read")
    except ValueError as exc:  # jsonb is valid JSON: what Python refuses is a number it cannot represent
        return UnreadableJson(text, str(exc).split(";")[0])


def utf8_json_loads(data: str | bytes) -> Any:
    """json.loads of the UTF-8 text PostgreSQL sends (given bytes, json.loads first works out their encoding,
    a third of the time it takes to load a small payload); a value it cannot load as an UnreadableJson."""
    return _loads(data.decode("utf-8") if isinstance(data, bytes) else data)


def lenient_json_loads(data: bytes | str) -> Any:
    """json.loads, but a value Python cannot load, or too deep to serve, is returned as an UnreadableJson."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray | memoryview) else data
    value = _loads(text)
    # Nesting N levels takes at least 2N characters: short values need no walk.
    if len(text) > 2 * READABLE_DEPTH and _deeper_than(value, READABLE_DEPTH):
        return UnreadableJson(text, f"nested deeper than {READABLE_DEPTH} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def use_lenient_loaders(context: AdaptContext) -> None:
    """Makes a connection or cursor read odd stored values as described in the module docstring."""
    context.adapters.register_loader(_TIMESTAMPTZ_OID, LenientTimestamptzLoader)
    set_json_loads(lenient_json_loads, context)
