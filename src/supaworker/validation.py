"""The checks every way in shares: one per kind of value, raising InvalidJob that names the field.

The limits themselves are defined in `rules`, which the SQL API reads too.

The Python API (`client`, `briefs`, `controls`, `periodic`), the REST API's models and query parameters, and
the CLI all call these, so a value is accepted by one exactly when it is accepted by the others, and only
values PostgreSQL stores and supaworker can read back reach the database:

- text: a `str`, without NUL (PostgreSQL text cannot hold it) and without lone surrogates (not UTF-8);
- JSON (payloads, results of periodic jobs): dicts, lists, strings, finite numbers, booleans and null,
  nested at most MAX_PAYLOAD_DEPTH deep, and the text rules above for every string and key;
- ids: integers within PostgreSQL's bigint;
- times: `run_at` between MIN_RUN_AT and MAX_RUN_AT, `delay` up to MAX_DELAY_SECONDS, `timeout` up to
  MAX_TIMEOUT_SECONDS, all finite, so the stored time is one Python (and every client) can read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .errors import InvalidJob
from .rules import MAX_BIGINT, MAX_PAYLOAD_DEPTH, MAX_RUN_AT, MIN_RUN_AT, RUN_AT_MESSAGE

_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
# Python writes an integer of more than 4,300 digits as text only when told to (sys.set_int_max_str_digits).
MAX_KEY_INT = 10**4300 - 1


def text_problem(value: str) -> str | None:
    """Why PostgreSQL would refuse this string (None when it is fine)."""
    if "\x00" in value:
        return "must not contain a NUL character (\\u0000)"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (it holds a lone surrogate)"
    return None


def storable_text(value: str) -> str:
    """`value` with what PostgreSQL cannot store in text made visible instead: a NUL as `\\x00`, a lone
    surrogate as `?`. For text supaworker writes on its own account (a handler's error), never for input."""
    if text_problem(value) is None:
        return value
    return value.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")


def check_text(
    field: str,
    value: Any,
    *,
    max_length: int | None = None,
    allow_blank: bool = False,
    error: type[InvalidJob] = InvalidJob,
) -> str:
    """A string PostgreSQL can store, non-blank unless `allow_blank`, at most `max_length` characters."""
    if not isinstance(value, str):
        raise error(f"{field} must be a string, not {type(value).__name__}", field=field)
    if not allow_blank and not value.strip():
        raise error(f"{field} must be a non-empty string", field=field)
    if max_length is not None and len(value) > max_length:
        raise error(f"{field} must be at most {max_length} characters, not {len(value)}", field=field)
    problem = text_problem(value)
    if problem:
        raise error(f"{field} {problem}", field=field)
    return value


def check_json(field: str, value: Any, *, max_depth: int = MAX_PAYLOAD_DEPTH) -> str:
    """Checks a JSON value for jsonb (see the module docstring) and returns its compact text."""
    # Iterative, so a hostile depth is reported instead of exhausting the stack.
    stack: list[tuple[Any, int, str]] = [(value, 0, field)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise InvalidJob(f"{where} {problem}", field=field)
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidJob(f"{where} must be a finite number, not {item}", field=field)
        elif isinstance(item, Mapping | list | tuple):
            if depth + 1 > max_depth:
                raise InvalidJob(f"{field} is nested more than {max_depth} levels deep", field=field)
            if isinstance(item, Mapping):
                converted = False
                for key, child in item.items():
                    if isinstance(key, str):
                        problem = text_problem(key)
                        if problem:
                            raise InvalidJob(f"{where}: key {key!r} {problem}", field=field)
                    elif not (key is None or isinstance(key, int | float | bool)):
                        raise InvalidJob(f"{where}: keys must be strings, not {type(key).__name__}", field=field)
                    else:
                        converted = True
                        if isinstance(key, int) and not isinstance(key, bool) and abs(key) > MAX_KEY_INT:
                            problem = "an integer key of more than 4,300 digits, which Python cannot write"
                            raise InvalidJob(f"{where}: {problem}", field=field)
                    stack.append((child, depth + 1, f"{where}.{key}"))
                if converted:
                    _check_converted_keys(field, where, item)
            else:
                stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
        else:
            kind = type(item).__name__
            raise InvalidJob(
                f"{where} must be JSON-serialisable (an object, array, string, number, boolean or null), not {kind}",
                field=field,
            )
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"{field} must be JSON-serialisable: {exc}", field=field) from None


def _check_converted_keys(field: str, where: str, mapping: Mapping[Any, Any]) -> None:
    """JSON keys are strings: json writes 1 as "1", True as "true", None as "null". Two keys that become the same
    string would keep only the last value in jsonb, so that is refused rather than lost."""
    named: dict[str, Any] = {}
    for key in mapping:
        try:
            text = key if isinstance(key, str) else _ENCODER.encode(key)  # as json writes it: true, null, 1.5
        except (TypeError, ValueError) as exc:
            raise InvalidJob(f"{where}: key cannot be a JSON key: {exc}", field=field) from None
        if text in named:
            raise InvalidJob(
                f"{where}: keys {named[text]!r} and {key!r} are both the JSON key {text!r}: one value would be lost",
                field=field,
            )
        named[text] = key


def is_number(value: Any) -> bool:
    """An int or float that is finite (booleans are not numbers here, though Python says they are)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def check_seconds(field: str, value: Any, *, maximum: float, positive: bool) -> float:
    """A finite number of seconds, > 0 when `positive` (else >= 0), at most `maximum`."""
    if not is_number(value) or (value <= 0 if positive else value < 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidJob(f"{field} must be a finite number of seconds {bound}, not {value!r}", field=field)
    if value > maximum:
        shown = f"{value:g}" if value < 1e300 else "a number past a float's range"
        raise InvalidJob(f"{field} must be at most {maximum:g} seconds, not {shown}", field=field)
    return float(value)


def check_run_at(value: Any) -> datetime:
    """A job's run_at: a timezone-aware datetime from MIN_RUN_AT to MAX_RUN_AT (exclusive)."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidJob("run_at must be a timezone-aware datetime", field="run_at")
    try:
        in_range = MIN_RUN_AT <= value < MAX_RUN_AT
    except OverflowError:
        in_range = False
    if not in_range:
        raise InvalidJob(RUN_AT_MESSAGE + value.isoformat(), field="run_at")
    return value


def check_int(field: str, value: Any, *, minimum: int, maximum: int) -> int:
    """An int (not a bool) from `minimum` to `maximum`."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidJob(f"{field} must be an integer from {minimum} to {maximum}, not {value!r}", field=field)
    return value


def check_job_id(value: Any, field: str = "job_id") -> int:
    """A job id: an integer from 1 to the largest bigint."""
    return check_int(field, value, minimum=1, maximum=MAX_BIGINT)
