"""The ``text_analysis`` step: statistics, readability, sentiment, keywords and an extractive summary.

The text is payload ``text`` when given, otherwise the brief's description followed by its query.
An upstream ``analysis`` result, when present, supplies extra keywords that favour the sentences
mentioning them in the summary. Readability uses the Flesch formulas with an English syllable
heuristic, so its numbers are only meaningful for English text.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from . import _text
from .base import PayloadError, StepContext, get_int, get_str, payload_of, upstream_result

POSITIVE = _text.wordset(
    "amazing awesome beautiful benefit best better bright brilliant calm clean clear delight easy "
    "effective efficient enjoy excellent exciting fantastic fast favourite favorite fun gain good great "
    "happy healthy helpful hope ideal improve improved innovative inspiring love lovely nice perfect "
    "pleasant positive powerful progress reliable safe simple smart strong success successful superb "
    "thrive useful valuable win wonderful"
)
NEGATIVE = _text.wordset(
    "angry annoying awful bad broken crash crisis damage danger dangerous difficult disaster dull "
    "fail failed failure fear hard harm hate horrible hurt loss lose painful poor problem risk risky "
    "sad scary slow terrible threat ugly unfair unhappy unsafe unstable weak worse worst wrong"
)
# A negator flips the polarity of sentiment words up to this many tokens after it ("not very good").
NEGATORS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "without", "hardly", "isn't", "don't"})
NEGATION_WINDOW = 3


def flesch(words: int, sentences: int, syllables: int) -> dict[str, Any]:
    """Flesch reading ease (higher is easier) and Flesch-Kincaid grade level, with a plain label."""
    words_per_sentence = words / max(1, sentences)
    syllables_per_word = syllables / max(1, words)
    ease = round(206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word, 1)
    grade = round(0.39 * words_per_sentence + 11.8 * syllables_per_word - 15.59, 1)
    bands = ((90, "very easy"), (80, "easy"), (70, "fairly easy"), (60, "standard"), (50, "fairly difficult"))
    label = next((name for floor, name in bands if ease >= floor), "difficult" if ease >= 30 else "very difficult")
    return {"flesch_reading_ease": ease, "flesch_kincaid_grade": grade, "label": label}


def polarity(word: str) -> int:
    """+1, -1 or 0 for a case-folded word; a plain plural ("risks") counts like its singular."""
    for form in (word, word[:-1] if word.endswith("s") and not word.endswith("ss") else word):
        if form in POSITIVE:
            return 1
        if form in NEGATIVE:
            return -1
    return 0


def sentiment(sentences: list[str]) -> dict[str, Any]:
    """Lexicon sentiment in [-1, 1]: (positive - negative) / (positive + negative), with negation.

    A negator ("not", "never", "...n't") flips the next few words, within its own sentence only.
    """
    positive: list[str] = []
    negative: list[str] = []
    for sentence in sentences:
        negated_until = -1
        for position, token in enumerate(word.casefold() for word in _text.words(sentence)):
            if token in NEGATORS or token.endswith("n't"):
                negated_until = position + NEGATION_WINDOW
                continue
            value = polarity(token)
            if value and position <= negated_until:
                value, token = -value, f"not {token}"
            if value > 0:
                positive.append(token)
            elif value < 0:
                negative.append(token)
    hits = len(positive) + len(negative)
    score = round((len(positive) - len(negative)) / hits, 3) if hits else 0.0
    label = "positive" if score > 0.2 else "negative" if score < -0.2 else "neutral"
    return {"score": score, "label": label, "positive": positive, "negative": negative}


def summarise(sentences: list[str], frequencies: Counter[str], boost: set[str], count: int) -> list[str]:
    """The ``count`` best sentences in original order; a sentence scores the frequencies of its content
    words (plus one per boosted keyword), divided by the square root of its length so long sentences
    do not win on length alone."""
    scored = []
    for index, sentence in enumerate(sentences):
        tokens = [token.casefold() for token in _text.words(sentence)]
        score = sum(frequencies[token] + (token in boost) for token in tokens) / math.sqrt(max(1, len(tokens)))
        scored.append((-score, index))
    chosen = sorted(index for _, index in sorted(scored)[:count])
    return [sentences[index] for index in chosen]


def analyse_text(ctx: StepContext) -> dict[str, Any]:
    """Handler for ``text_analysis`` jobs."""
    payload = payload_of(ctx)
    text, source = get_str(payload, "text"), "text"
    if not text:
        parts = [get_str(payload, "description"), get_str(payload, "query")]
        text, source = "\n".join(part for part in parts if part), "brief"
    if not text:
        raise PayloadError("payload needs a non-empty 'text', 'query' or 'description' field")
    tokens = _text.words(text)
    if not tokens:
        raise PayloadError("payload text contains no words to analyse")
    sentences = _text.sentences(text)
    syllable_total = sum(max(1, _text.syllables(token)) for token in tokens)
    terms = _text.rank_terms(text, limit=10)
    # All content words count for sentence scoring, not only the ten reported keywords.
    frequencies = Counter(t.term for t in _text.rank_terms(text, limit=len(tokens)))
    analysis = upstream_result(ctx, "analysis") or {}
    boost = {str(word).casefold() for word in analysis.get("keywords", []) if isinstance(word, str)}
    default_summary = min(3, max(1, math.ceil(len(sentences) / 3)))
    summary_count = get_int(payload, "summary_sentences", default=default_summary, low=1, high=10)
    summary = summarise(sentences, frequencies, boost, summary_count)
    return {
        "title": str(analysis.get("title") or get_str(payload, "title") or sentences[0][:60]),
        "source": source,
        "sentences": sentences,
        "sentence_count": len(sentences),
        "word_count": len(tokens),
        "character_count": len(text),
        "syllable_count": syllable_total,
        "average_words_per_sentence": round(len(tokens) / max(1, len(sentences)), 2),
        "readability": flesch(len(tokens), len(sentences), syllable_total),
        "sentiment": sentiment(sentences),
        "keywords": [term.display for term in terms],
        "keyword_counts": [{"term": term.term, "count": term.count} for term in terms],
        "summary": summary,
        "summary_text": " ".join(summary),
    }
