"""The shared validator against PostgreSQL itself: what it accepts, PostgreSQL stores and gives back; what
PostgreSQL refuses, it rejects first."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supaworker.errors import InvalidJob
from supaworker.rules import MAX_DELAY_SECONDS, MAX_RUN_AT, MIN_RUN_AT
from supaworker.validation import check_json, check_run_at, check_text

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Every code point, NUL and lone surrogates included.
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4),
    max_leaves=20,
)


def accepts(check: object, *args: object) -> bool:
    try:
        check(*args)  # type: ignore[operator]
    except InvalidJob:
        return False
    return True


@PROPERTY_SETTINGS
@given(text=ANY_TEXT)
def test_check_text_accepts_exactly_what_postgresql_text_stores(conn: psycopg.Connection, text: str) -> None:
    ours = accepts(lambda value: check_text("t", value, allow_blank=True), text)
    try:
        stored = conn.execute("SELECT %s::text", (text,)).fetchone()[0]
    except (psycopg.DataError, UnicodeEncodeError, ValueError):
        stored = None
    assert ours == (stored == text), repr(text)


@PROPERTY_SETTINGS
@given(value=JSON_VALUES)
def test_check_json_accepts_only_what_jsonb_stores_and_returns(conn: psycopg.Connection, value: object) -> None:
    try:
        text = check_json("payload", value)
    except InvalidJob:
        return
    stored = conn.execute("SELECT %s::jsonb::text", (text,)).fetchone()[0]
    assert json.loads(stored) == json.loads(text) or _has_float(value)


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(map(_has_float, value.values()))
    return isinstance(value, list) and any(map(_has_float, value))


# Fixed offsets: a wall time that a zone's DST change skips has no single meaning to compare.
OFFSETS = st.integers(-14 * 60 + 1, 14 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@PROPERTY_SETTINGS
@given(moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS))
def test_every_accepted_run_at_reads_back_in_python(conn: psycopg.Connection, moment: datetime) -> None:
    if accepts(check_run_at, moment):
        assert MIN_RUN_AT <= moment < MAX_RUN_AT
        for zone in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12"):
            conn.execute(f"SET TIME ZONE '{zone}'")
            assert conn.execute("SELECT %s::timestamptz", (moment,)).fetchone()[0] == moment


@pytest.mark.parametrize("delay", [0, 1.5, MAX_DELAY_SECONDS])
def test_the_largest_delay_reads_back_in_python(conn: psycopg.Connection, delay: float) -> None:
    later = conn.execute("SELECT now() + make_interval(secs => %s)", (delay,)).fetchone()[0]
    assert later > datetime(2000, 1, 1, tzinfo=UTC)
