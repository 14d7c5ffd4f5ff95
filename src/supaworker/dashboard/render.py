"""The template environment every console page shares, and the filters that turn stored values into text.

Jinja2 escapes everything it prints, so job data holding HTML or a script shows as text. Times are printed
with their epoch seconds in a `data-since` / `data-until` attribute, so the page's script keeps them ticking
between renders; a time beyond Python's datetime (`'infinity'`, stored by plain SQL) prints as PostgreSQL
printed it and does not tick.

Bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) in stored text would reorder
what follows them, so an error "worker\u202edeliated" reads "workerdetailed" and can pull neighbouring text
in. Every string a template prints has them written as `<U+202E>` (the environment's `finalize`: attributes
such as tooltips included), and the `shown` filter, used wherever stored text is an element's content, also
isolates the text in a `<bdi>` and styles each marker. The page's script does the same for the text it sets.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from ..loaders import OutOfRangeTime
from ..states import JobStatus

HERE = Path(__file__).parent
PREVIEW_CHARS = 120
JSON_TREE_NODES = 1_500  # a value with more nodes is shown as pretty text instead of a tree
JSON_TREE_OPEN_LEVELS = 2  # levels of a tree shown unfolded

BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BIDI_PIECES = re.compile(f"({BIDI_CONTROLS.pattern})")  # a split keeping each control, at the odd indexes
_BIDI_MARK = Markup('<span class="bidi-mark" title="a bidirectional control character, shown, not applied">{}</span>')


def bidi_marker(char: str) -> str:
    """What a bidi control shows as: `<U+202E>`."""
    return f"<U+{ord(char):04X}>"


def marked(text: str) -> str:
    """`text` with each bidi control written as its marker, as plain text (fit for an attribute)."""
    return BIDI_CONTROLS.sub(lambda m: bidi_marker(m.group()), text)


def shown(value: Any) -> Markup:
    """Stored text as an element's content: escaped, in a `<bdi>` so that its direction cannot reorder the
    text around it, and each bidi control a styled marker instead of taking effect."""
    pieces = _BIDI_PIECES.split("" if value is None else str(value))
    inner = Markup("").join(_BIDI_MARK.format(bidi_marker(p)) if i % 2 else p for i, p in enumerate(pieces) if p)
    return Markup("<bdi>{}</bdi>").format(inner)


def as_typed(value: str | None) -> Markup:
    """A form field's value as it was typed, bidi controls kept: the field sends it back, so a marker would
    change what it searches for (a field shows its value in a paragraph of its own)."""
    return escape(value or "")


def _printed(value: Any) -> Any:
    """Every value a template prints: plain text gets its bidi controls marked, so none takes effect even
    where a template does not use `shown` (an attribute, a message); markup (built here) is left as it is."""
    return marked(value) if isinstance(value, str) and not isinstance(value, Markup) else value


env = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True), finalize=_printed
)


# What a row of a list shows of an error, and its tooltip: the whole text is on the job's page. A single
# line of megabytes (plain SQL can store one) was rendered whole, twice, into every refresh of the overview.
SUMMARY_CHARS = 300
TOOLTIP_CHARS = 2000


def clip(text: str | None, limit: int = TOOLTIP_CHARS) -> str:
    """`text` cut at `limit` characters (an ellipsis says so)."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview(value: Any, chars: int = PREVIEW_CHARS) -> str:
    """One line of a value: a string as it is, anything else as compact JSON (its text as written, not
    \\u-escaped: the job's list shows the stored text so too), cut to `chars`."""
    text = (
        value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
    )
    return clip(" ".join(text.split()), chars)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def first_line(text: str | None) -> str:
    """An error's first line (the exception and its message), cut at SUMMARY_CHARS; the traceback is on the
    job's page."""
    return clip((text or "").strip().split("\n", 1)[0], SUMMARY_CHARS)


def epoch(moment: datetime | None) -> float | None:
    """Seconds since 1970 for the page's clocks; None for no time or one beyond Python's range."""
    if moment is None or isinstance(moment, OutOfRangeTime):
        return None
    return round(moment.timestamp(), 3)


def clock_text(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if isinstance(moment, OutOfRangeTime):
        return str(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or isinstance(start, OutOfRangeTime) or isinstance(end, OutOfRangeTime):
        return None
    return (end - start).total_seconds()


def age(moment: datetime | None, now: datetime) -> Markup:
    """`<time>` showing how long ago `moment` was, kept ticking by the page's script."""
    stamp = epoch(moment)
    if stamp is None or moment is None:
        return Markup('<time class="fixed">{}</time>').format(clock_text(moment) if moment else "-")
    text = duration((now - moment).total_seconds())
    return Markup('<time datetime="{}" data-since="{}" title="{}">{}</time>').format(
        moment.isoformat(), stamp, clock_text(moment), text
    )


def until(moment: datetime | None, now: datetime) -> Markup:
    """`<time>` showing how long until `moment` ("due" once it passed), kept ticking by the page's script."""
    stamp = epoch(moment)
    if stamp is None or moment is None:
        return Markup('<time class="fixed">{}</time>').format(clock_text(moment) if moment else "-")
    left = (moment - now).total_seconds()
    text = f"in {duration(left)}" if left > 0 else "due"
    return Markup('<time datetime="{}" data-until="{}" title="{}">{}</time>').format(
        moment.isoformat(), stamp, clock_text(moment), text
    )


def json_tree(value: Any) -> Markup:
    """A JSON value as nested, foldable lists (`<details>`), or as pretty text when it is too big for that."""
    budget = [JSON_TREE_NODES]

    def count(item: Any) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise OverflowError
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            count(child)

    try:
        count(value)
    except (OverflowError, RecursionError):
        return Markup('<pre class="json">{}</pre>').format(shown(pretty(value)))
    return Markup('<div class="json-tree">{}</div>').format(_node(value, 0))


def _node(value: Any, level: int) -> Markup:
    if isinstance(value, dict | list):
        if not value:
            return Markup('<span class="j-empty">{}</span>').format("{}" if isinstance(value, dict) else "[]")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        rows = Markup("").join(
            Markup('<li><span class="j-key">{}</span>: {}</li>').format(
                shown(key) if isinstance(value, dict) else key, _node(child, level + 1)
            )
            for key, child in items
        )
        kind = f"{{{len(value)}}}" if isinstance(value, dict) else f"[{len(value)}]"
        opened = " open" if level < JSON_TREE_OPEN_LEVELS else ""
        return Markup("<details{}><summary>{}</summary><ul>{}</ul></details>").format(Markup(opened), kind, rows)
    text = json.dumps(value, ensure_ascii=False)
    return Markup('<span class="j-{}">{}</span>').format(
        type(value).__name__, shown(text) if isinstance(value, str) else text
    )


def pretty(value: Any) -> str:
    if isinstance(value, str):
        return value  # a value too deep to load arrives as its JSON text
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


FILTER_FIELDS = ("status", "type", "queue", "brief_id", "user_id", "error", "created_after", "created_before")


def bulk_filter(args: dict[str, str]) -> str:
    """The job filter of a request, as JSON for the bulk bar's "all matching" (the API checks it again)."""
    return json.dumps({name: args[name] for name in FILTER_FIELDS if args.get(name)})


env.filters.update(
    bulk_filter=bulk_filter,
    preview=preview,
    duration=duration,
    first_line=first_line,
    clip=clip,
    epoch=epoch,
    clock=clock_text,
    json_tree=json_tree,
    pretty=pretty,
    shown=shown,
    as_typed=as_typed,
)
env.globals.update(STATUSES=[s.value for s in JobStatus], age=age, until=until, seconds_between=seconds_between)


def trusted(panels: dict[str, str]) -> dict[str, Markup]:
    """Panels rendered by our own autoescaping templates, marked safe so the page does not escape them twice."""
    return {name: Markup(html) for name, html in panels.items()}


def escape_text(text: str) -> Markup:
    return escape(text)
