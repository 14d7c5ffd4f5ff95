"""The SQL that supaworker runs: numbered migrations and one file per named query.

The migrations (migrations/NNNN_name.sql) are forward-only and the source of truth: a later one redefines,
with CREATE OR REPLACE, what an earlier one created, so an earlier file may show a stale body. `schema.sql`
shows the schema as all of them leave it (every table, index, view and function with its current body); it
is generated from them by `schema_file.py` (`python -m supaworker.sql.schema_file`, scripts/regenerate-schema)
and tests/migration/test_schema_file.py keeps the two equal. Read a function's body there.

Files refer to the schema as `{{schema}}` and to the wake-up channel as `{{channel}}`; `render()` fills them
in, so an application's own schema is never touched. A migration writes a limit, default or message of the
rules as `{{rule:NAME}}`, which `render()` fills in from `supaworker.rules`, their one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from psycopg import sql

from .. import rules

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def channel_name(schema: str) -> str:
    """The NOTIFY channel workers LISTEN on for new runnable jobs."""
    return f"{schema}_jobs"


# The wake-up channel is an identifier: pg_notify() refuses one longer than this, in bytes.
MAX_CHANNEL_BYTES = 63
MAX_SCHEMA_BYTES = MAX_CHANNEL_BYTES - len(channel_name(""))


def schema_name_problem(schema: str) -> str | None:
    """Why supaworker cannot live in a schema of this name (None when it can). The migrations name the schema
    both quoted and as PostgreSQL folds an unquoted name (`parse_ident`, `::regnamespace`), so it is a plain
    lower-case identifier; `pg_` names are reserved; and its wake-up channel must fit an identifier, or every
    enqueue fails while a worker waits."""
    if not schema or not schema.replace("_", "a").isalnum() or schema[0].isdigit():
        return "it must be a plain SQL identifier: letters, digits and _, not starting with a digit"
    if schema != schema.lower():
        return "it must be lower case (the migrations name it unquoted too, which PostgreSQL folds to lower case)"
    if schema.startswith("pg_"):
        return "names starting with pg_ are reserved for PostgreSQL's own schemas"
    if len(schema.encode()) > MAX_SCHEMA_BYTES:
        return (
            f"it is {len(schema.encode())} bytes long and at most {MAX_SCHEMA_BYTES} fit: its wake-up channel "
            f"{channel_name(schema)!r} must fit PostgreSQL's {MAX_CHANNEL_BYTES}-byte identifiers"
        )
    return None


_RULE = re.compile(r"\{\{rule:([a-z0-9_]+)\}\}")


def _rule_value(match: re.Match[str]) -> str:
    try:
        return rules.sql_values()[match.group(1)]
    except KeyError:
        raise KeyError(f"{match.group(0)}: supaworker.rules.sql_values() has no rule {match.group(1)!r}") from None


def render(text: str, schema: str) -> str:
    quoted_schema = sql.Identifier(schema).as_string()
    quoted_channel = sql.Literal(channel_name(schema)).as_string()
    text = text.replace("{{schema}}", quoted_schema).replace("{{channel}}", quoted_channel)
    return _RULE.sub(_rule_value, text) if "{{rule:" in text else text


# A migration that the previous release's workers cannot run against says so in a line of its own:
# `-- breaking: <why>` (a major version's). Workers of earlier releases then refuse to start on it.
_BREAKING = re.compile(r"^-- breaking:", re.MULTILINE)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def breaking(self) -> bool:
        return bool(_BREAKING.search(self.text))


@cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped in the package, in version order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return tuple(found)


@cache
def _raw_queries() -> dict[str, str]:
    return {
        entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8")
        for entry in resources.files(__package__).joinpath("queries").iterdir()
        if entry.name.endswith(".sql")
    }


class Queries:
    """Named queries rendered for one schema: `queries.claim_jobs` is the text of `queries/claim_jobs.sql`."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.channel = channel_name(schema)
        self._texts = {name: render(text, schema) for name, text in _raw_queries().items()}

    def __getattr__(self, name: str) -> str:
        try:
            return self._texts[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} (sql/queries/{name}.sql)") from None


@cache
def queries_for(schema: str) -> Queries:
    """The Queries of a schema, rendered once per process (a Store is made per call when an application passes
    its own connection)."""
    return Queries(schema)
