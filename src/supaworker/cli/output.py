"""Output for the commands: aligned tables of short, one-line cells, text safe for a terminal, and JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import click

MAX_CELL_CHARS = 60

# C0 controls, DEL and C1 controls: a terminal acts on them (clears the screen, sets its title) instead of
# showing them, and any API client can store them in a job's type or error.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_TAB_AND_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` with each control character written as `\\xNN`; tab and newline kept when `multiline`."""
    pattern = _CONTROLS_BUT_TAB_AND_NEWLINE if multiline else _CONTROLS
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def dump_json(value: Any, indent: int | None = None) -> str:
    """`value` as JSON, a NaN or infinite float (a float column can hold one) given as the string PostgreSQL
    writes for it: a bare `NaN` is not JSON, and parsers refuse it."""
    try:
        return json.dumps(value, default=str, indent=indent, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=str, indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def print_rows(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str | None = None) -> None:
    """The rows as indented JSON, or `empty` when there are none, or else as a table of `columns`."""
    if as_json:
        click.echo(dump_json(rows, indent=2))
    elif not rows and empty is not None:
        click.echo(empty)
    else:
        print_table(rows, columns)


def print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Prints the rows' `columns` under a header, each column as wide as its widest cell."""
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def cell(value: Any) -> str:
    """A value as one table cell: `-` for none, JSON for objects and lists, the first line with its control
    characters escaped, cut at 60 chars."""
    if value is None:
        return "-"
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, dict | list)
        else str(value)
    )
    text = printable(text.splitlines()[0] if text else text)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 3] + "..."
