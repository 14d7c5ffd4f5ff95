"""Plain-text output for the commands: aligned tables of short, one-line cells."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

MAX_CELL_CHARS = 60


def print_rows(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str | None = None) -> None:
    """The rows as indented JSON, or `empty` when there are none, or else as a table of `columns`."""
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
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
    """A value as one table cell: `-` for none, JSON for objects and lists, the first line, cut at 60 chars."""
    if value is None:
        return "-"
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, dict | list)
        else str(value)
    )
    text = text.splitlines()[0] if text else text
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 3] + "..."
