"""What a job and a brief may hold: every limit, default and message of the rules, defined here once.

Python checks against these names (`new_job`, `validation`, `dependencies`, `briefs`; the pipelines are in
`pipelines`). The SQL API (`create_job`, `create_jobs`, `create_brief_with_job`, `pipelines()`, ...) reads
them as well: a migration writes `{{rule:NAME}}` wherever a rule's value goes, and `sql.render` puts in
`sql_values()[NAME]` when the migration is applied (see migration 0021). So psql, PostgREST and Python
refuse exactly the same input with the same message, and a limit is changed in one place.

A database keeps what its migrations rendered when they ran. A change here therefore comes with a new
migration that redefines the functions using the changed value; the newest migration that renders rules says
`-- rules: <digest>` of the values it was written for, and tests/migration/test_rules.py fails until it matches
`digest()`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache

from psycopg import sql

DEFAULT_MAX_ATTEMPTS = 3
MIN_INT32, MAX_INT32 = -(2**31), 2**31 - 1
MAX_BIGINT = 2**63 - 1

MAX_TYPE_LENGTH = 128  # a job's type and queue, and each step of a brief
MAX_UNIQUE_KEY_LENGTH = 512
MAX_FAIRNESS_KEY_LENGTH = 256
MAX_KEY_LENGTH = 128  # a batch job's key, and the keys its depends_on names
MAX_DEPENDENCIES = 1000  # parents of one job
# Deep enough for any real document; far below where the response encoders give up (pydantic's serialiser
# stops at about 250 levels, Python's json at about 1000), so a stored payload always renders whole.
MAX_PAYLOAD_DEPTH = 64
MIN_RUN_AT = datetime(1970, 1, 1, tzinfo=UTC)
# A year short of Python's datetime.max, so the time still reads back in any session time zone.
MAX_RUN_AT = datetime(9999, 1, 1, tzinfo=UTC)
MAX_DELAY_SECONDS = 100 * 365 * 86_400  # 100 years
MAX_TIMEOUT_SECONDS = 30 * 86_400  # 30 days per attempt
MAX_HOLD_SECONDS = MAX_DELAY_SECONDS  # unique_for

MAX_USER_ID_LENGTH = 255
MAX_TITLE_LENGTH = 500
MAX_TEXT_LENGTH = 20_000  # a brief's description and query, as the built-in handlers bound them
MAX_STEPS = 50  # a brief's steps are jobs; a longer list is a mistake, not a pipeline
MAX_LIST_LIMIT = 10_000  # briefs one list_briefs call returns
MAX_REASON_LENGTH = 1000  # why a job or brief was cancelled (the job's last_error)

PRIORITY_MESSAGE = "priority must be a 32-bit integer (lower runs first)"
MAX_ATTEMPTS_MESSAGE = "max_attempts must be an integer >= 1"
UNIQUE_KEY_MESSAGE = f"unique_key must be a non-empty string of at most {MAX_UNIQUE_KEY_LENGTH} characters"
KEY_MESSAGE = f"key must be a non-empty string of at most {MAX_KEY_LENGTH} characters"
DEPENDS_ON_KEY_MESSAGE = f"depends_on keys must be non-empty strings of at most {MAX_KEY_LENGTH} characters"
STEPS_MESSAGE = f"steps must hold between 1 and {MAX_STEPS} job types"
STEP_MESSAGE = f"each step must be a non-empty job type of at most {MAX_TYPE_LENGTH} characters, not "
RUN_AT_MESSAGE = f"run_at must be from {MIN_RUN_AT.isoformat()} to before {MAX_RUN_AT.isoformat()}, not "
LIST_LIMIT_MESSAGE = f"limit must be an integer between 1 and {MAX_LIST_LIMIT}"


def _literal(value: object) -> str:
    # Numbers as Python writes them (psycopg would put a space before a negative one).
    return repr(value) if isinstance(value, int | float) else sql.Literal(value).as_string()


def _text_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(_literal(v) for v in values) + "]"


@cache
def sql_values() -> dict[str, str]:
    """Each rule as the SQL text a migration's `{{rule:NAME}}` becomes."""
    from . import pipelines

    values: dict[str, object] = {
        "default_max_attempts": DEFAULT_MAX_ATTEMPTS,
        "min_int32": MIN_INT32,
        "max_int32": MAX_INT32,
        "max_type_length": MAX_TYPE_LENGTH,
        "max_unique_key_length": MAX_UNIQUE_KEY_LENGTH,
        "max_fairness_key_length": MAX_FAIRNESS_KEY_LENGTH,
        "max_key_length": MAX_KEY_LENGTH,
        "max_dependencies": MAX_DEPENDENCIES,
        "max_payload_depth": MAX_PAYLOAD_DEPTH,
        "min_run_at": MIN_RUN_AT.isoformat(),
        "max_run_at": MAX_RUN_AT.isoformat(),
        "max_delay_seconds": float(MAX_DELAY_SECONDS),
        "max_timeout_seconds": float(MAX_TIMEOUT_SECONDS),
        "max_hold_seconds": float(MAX_HOLD_SECONDS),
        "max_user_id_length": MAX_USER_ID_LENGTH,
        "max_title_length": MAX_TITLE_LENGTH,
        "max_text_length": MAX_TEXT_LENGTH,
        "max_steps": MAX_STEPS,
        "max_list_limit": MAX_LIST_LIMIT,
        "max_reason_length": MAX_REASON_LENGTH,
        "priority_message": PRIORITY_MESSAGE,
        "max_attempts_message": MAX_ATTEMPTS_MESSAGE,
        "unique_key_message": UNIQUE_KEY_MESSAGE,
        "key_message": KEY_MESSAGE,
        "depends_on_key_message": DEPENDS_ON_KEY_MESSAGE,
        "steps_message": STEPS_MESSAGE,
        "step_message": STEP_MESSAGE,
        "list_limit_message": LIST_LIMIT_MESSAGE,
        "run_at_message": RUN_AT_MESSAGE,
    }
    rendered = {name: _literal(value) for name, value in values.items()}
    rendered["single_step"] = _text_array(pipelines.SINGLE_STEP)
    rendered["pipelines"] = "VALUES " + ",\n         ".join(
        f"({_literal(media_type)}, {_text_array(steps)})" for media_type, steps in pipelines.PIPELINES.items()
    )
    return rendered


def digest() -> str:
    """A short digest of `sql_values()`: what the newest migration that renders rules records."""
    text = "\n".join(f"{name}={value}" for name, value in sorted(sql_values().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
