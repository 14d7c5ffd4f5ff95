"""The ``analysis`` step: turn a brief's free text into keywords, entities, intent and a step plan.

It is the first step of every brief pipeline and also works standalone. Later steps call
:func:`analysis_for` so they can run without an upstream analysis result too.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

from . import _text
from .base import PIPELINES, PayloadError, StepContext, brief_fields, payload_of, upstream_result

# Verb cues per intent; inflections are generated, so "explaining" and "compared" match too.
INTENT_CUES: dict[str, tuple[str, ...]] = {
    "create": ("make", "create", "generate", "build", "produce", "design", "draw", "compose", "write"),
    "explain": ("explain", "describe", "teach", "illustrate", "show", "tell", "introduce", "demonstrate"),
    "compare": ("compare", "contrast", "versus", "vs", "difference", "differences", "weigh"),
    "summarise": ("summarise", "summarize", "summary", "recap", "overview", "condense", "tldr", "outline"),
    "analyse": ("analyse", "analyze", "evaluate", "assess", "review", "examine", "investigate"),
    "promote": ("promote", "advertise", "market", "sell", "pitch", "announce"),
}
_CUE_TO_INTENT = {
    form: intent for intent, verbs in INTENT_CUES.items() for verb in verbs for form in _text.verb_forms(verb)
}
# Question openers signal an explanation even without an explicit verb ("how do vaccines work").
_QUESTION_WORDS = frozenset({"how", "why", "what"})

# Cue verbs say what to do with the subject, not what the subject is.
_NOT_KEYWORDS = _text.REQUEST_WORDS | frozenset(_CUE_TO_INTENT)

# Used only when the payload has no media_type: the first media word in the text decides.
MEDIA_CUES: dict[str, str] = {
    **dict.fromkeys(("video", "videos", "clip", "movie", "film", "animation", "vidéo", "vídeo"), "video"),
    **dict.fromkeys(("image", "images", "picture", "photo", "poster", "illustration", "drawing"), "image"),
    **dict.fromkeys(("audio", "sound", "podcast", "song", "music", "jingle", "tune", "melody"), "audio"),
}

_QUOTED_RE = re.compile(r"\"([^\"\n]{1,80})\"|“([^”\n]{1,80})”|«([^»\n]{1,80})»|(?<!\w)'([^'\n]{2,80})'(?!\w)")
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*%?(?!\w)")
MAX_KEYWORDS = 10


def _capitalised_spans(text: str) -> list[tuple[int, str]]:
    """Runs of capitalised words separated only by spaces, ignoring capitals that merely open a sentence."""
    spans: list[tuple[int, list[str]]] = []
    previous_end = -1
    for match, opens_sentence in _text.words_with_positions(text):
        token = match.group()
        if not token[0].isupper():
            previous_end = -1
            continue
        # "Make a video..." : a capitalised common word or cue verb at a sentence start is not a name.
        key = token.casefold()
        common = key in _text.STOPWORDS or key in _CUE_TO_INTENT or key in _text.REQUEST_WORDS
        acronym = len(token) > 1 and token.isupper()
        if opens_sentence and common and not acronym:
            previous_end = -1
            continue
        if previous_end >= 0 and text[previous_end : match.start()].isspace():
            spans[-1][1].append(token)
        else:
            spans.append((match.start(), [token]))
        previous_end = match.end()
    return [(start, " ".join(tokens)) for start, tokens in spans]


def extract_entities(text: str) -> list[dict[str, str]]:
    """Quoted phrases, capitalised names and numbers, de-duplicated in order of first appearance."""
    found: list[tuple[int, str, str]] = []
    quoted: list[tuple[int, int]] = []
    for match in _QUOTED_RE.finditer(text):
        phrase = next(group for group in match.groups() if group is not None).strip()
        if phrase:
            found.append((match.start(), "quote", phrase))
            quoted.append(match.span())

    # A quoted phrase is one entity; its inner words and numbers are not reported again.
    def outside_quotes(position: int) -> bool:
        return not any(start <= position < end for start, end in quoted)

    found.extend((m.start(), "number", m.group()) for m in _NUMBER_RE.finditer(text) if outside_quotes(m.start()))
    found.extend((start, "name", span) for start, span in _capitalised_spans(text) if outside_quotes(start))
    entities: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for _, kind, value in sorted(found, key=lambda item: (item[0], item[1])):
        key = (kind, value.casefold())
        if key not in seen:
            seen.add(key)
            entities.append({"text": value, "kind": kind})
    return entities


def detect_intent(tokens: list[str]) -> dict[str, Any]:
    """Pick the intent whose cue words appear most often (earliest first on ties)."""
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    cues: list[str] = []
    for position, token in enumerate(token.casefold() for token in tokens):
        intent = _CUE_TO_INTENT.get(token)
        if intent is None and position == 0 and token in _QUESTION_WORDS:
            intent = "explain"
        if intent is not None:
            counts[intent] += 1
            first.setdefault(intent, position)
            cues.append(token)
    if not counts:
        # A brief always asks for something to be produced, so "create" is the neutral reading.
        return {"action": "create", "source": "default", "cues": [], "secondary": []}
    ranked = sorted(counts, key=lambda intent: (-counts[intent], first[intent]))
    return {"action": ranked[0], "source": "cues", "cues": cues, "secondary": ranked[1:]}


def dominant_script(text: str) -> str:
    """The Unicode script most letters belong to (first word of the character name, e.g. LATIN)."""
    scripts = Counter(unicodedata.name(char, "UNKNOWN").split()[0] for char in text if char.isalpha())
    return min(scripts, key=lambda script: (-scripts[script], script)) if scripts else "UNKNOWN"


def analyse_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The analysis of a brief payload; raises PayloadError if ``query`` is missing or empty."""
    brief = brief_fields(payload)
    if not brief["query"]:
        raise PayloadError("payload field 'query' is required (a non-empty string)")
    title, description, query = brief["title"], brief["description"], brief["query"]
    full_text = "\n".join(part for part in (title, description, query) if part)
    query_tokens = _text.words(query)
    media_type, media_source = brief["media_type"], "payload"
    if media_type is None:
        media_type = next(
            (MEDIA_CUES[t.casefold()] for t in _text.words(full_text) if t.casefold() in MEDIA_CUES), "text"
        )
        media_source = "inferred"
    terms = _text.rank_terms(full_text, limit=MAX_KEYWORDS, extra_stopwords=_NOT_KEYWORDS)
    intent = detect_intent(query_tokens) | {"media_type": media_type}
    word_counts = {
        name: len(_text.words(value))
        for name, value in (("title", title), ("description", description), ("query", query))
    }
    return {
        "brief_id": brief["brief_id"],
        # Titles are optional in a brief; later steps (title cards, reports) need one, so derive it.
        "title": title or _derive_title(query),
        "description": description,
        "query": query,
        "media_type": media_type,
        "media_type_source": media_source,
        "keywords": [term.display for term in terms],
        "keyword_details": [
            {"term": t.term, "display": t.display, "count": t.count, "first_position": t.first} for t in terms
        ],
        "entities": extract_entities("\n".join(part for part in (description, query) if part)),
        "intent": intent,
        "plan": list(PIPELINES[media_type][1:]),
        "word_count": word_counts["query"],
        "word_counts": word_counts | {"total": sum(word_counts.values())},
        "script": dominant_script(full_text),
    }


def _derive_title(query: str, max_words: int = 8) -> str:
    """A title from the query, without a leading request phrase ("Make a video about AI" -> "AI")."""
    tokens = query.split()
    if tokens and tokens[0].casefold() in _NOT_KEYWORDS:
        skip = 0
        while skip < len(tokens) and (
            tokens[skip].casefold() in _NOT_KEYWORDS or tokens[skip].casefold() in _text.STOPWORDS
        ):
            skip += 1
        tokens = tokens[skip:] or tokens
    title = " ".join(tokens[:max_words]).rstrip(".,;:!?")
    # Capitalise the first letter even when the title opens with a quote or bracket.
    first = next((i for i, char in enumerate(title) if char.isalpha()), 0)
    title = title[:first] + title[first : first + 1].upper() + title[first + 1 :]
    return title + ("…" if len(tokens) > max_words else "")


def analysis_for(ctx: StepContext) -> dict[str, Any]:
    """The upstream analysis result if there is one, else an analysis computed from the payload."""
    upstream = upstream_result(ctx, "analysis")
    if upstream is None:
        return analyse_payload(payload_of(ctx))
    keywords = upstream.get("keywords")
    if not isinstance(keywords, list) or not all(isinstance(word, str) for word in keywords):
        raise PayloadError("upstream 'analysis' result must have 'keywords' as a list of strings")
    return upstream


def analyse(ctx: StepContext) -> dict[str, Any]:
    """Handler for ``analysis`` jobs."""
    return analyse_payload(payload_of(ctx))
