"""Small text utilities shared by the analysis handlers: tokens, stopwords, keyword ranking, sentences.

Everything is plain-stdlib and deterministic. Tokenisation is Unicode-aware so non-English text still
yields words; scripts written without spaces (Chinese, Japanese, Thai) fall back to character bigrams.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

# Letters/digits runs, allowing inner apostrophes ("don't", "AI's"); underscores are not word text.
WORD_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
# Terminal punctuation includes the ellipsis and the CJK full stop / exclamation / question marks.
# CJK text puts no space after a sentence, so those marks split even without whitespace.
SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?\u2026])\s+|(?<=[\u3002\uff01\uff1f])\s*|\n+")


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text`` as a set (keeps long word lists readable)."""
    return frozenset(text.split())


STOPWORDS = wordset(
    """
    a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each either etc few for from further get gets got had hadn't has hasn't have
    haven't having he her here hers herself him himself his how i i'd i'll i'm i've if in into is isn't
    it it's its itself just let's like may me might more most much must mustn't my myself no nor not
    now of off on once one only or other ought our ours ourselves out over own per please same shall
    she should shouldn't so some such than that that's the their theirs them themselves then there
    these they this those through to too under until up upon us very via was wasn't we were weren't
    what when where which while who whom whose why will with within without won't would wouldn't yet
    you your yours yourself yourselves
    """
    # The most frequent function words of French, Spanish, German, Italian and Portuguese, so briefs in
    # those languages do not get "la" or "und" as keywords. Words that are also English content words
    # ("die", "son", "come") are left out.
    """
    au aux avec ce ces cette dans de des du elle en est et il ils je la le les leur mais ne nous ou par
    pas plus pour qu que qui sa se ses sont sur un une vous à
    al como con del el en es esta este las lo los para pero por que se sin sobre su sus una unas uno
    unos y
    auf aus bei das dem den der des ein eine einem einen einer es für im ist mit nicht oder sich sie
    sind über und von zu zum zur
    che dei della delle di gli il nel nella non per sono su uno è
    ao com da das do dos em na nas no nos os para pelo pela um uma é
    """
)

# Words that describe the request rather than its subject ("make a short video about X"): they say
# nothing about X, so they are kept out of keywords unless nothing else is left.
REQUEST_WORDS = wordset(
    """
    make makes making made create creates creating created generate generates generating produce
    produces producing build design want need needs give show tell write video videos clip clips
    movie animation image images picture pictures photo photos illustration audio sound podcast
    song track text article post report short long quick simple new something thing things
    """
)

# Unicode script prefixes (from character names) of writing systems that do not separate words.
_UNSPACED_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR")


@dataclass(frozen=True)
class Term:
    """A ranked keyword: ``term`` is case-folded, ``display`` is how to show it."""

    term: str
    display: str
    count: int
    first: int


def _is_unspaced(char: str) -> bool:
    return unicodedata.name(char, "").startswith(_UNSPACED_SCRIPTS)


def _split_unspaced(token: str) -> list[str]:
    # Japanese particles and endings are hiragana, so hiragana separates the content runs; long runs
    # (Chinese has no such separator) become overlapping bigrams, a common script-agnostic fallback.
    runs = [run for run in re.split(r"[\u3040-\u309f]+", token) if run] if _has_non_hiragana(token) else [token]
    tokens: list[str] = []
    for run in runs:
        if len(run) <= 4:
            tokens.append(run)
        else:
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


def _has_non_hiragana(token: str) -> bool:
    return any(not "\u3040" <= char <= "\u309f" for char in token)


def words(text: str) -> list[str]:
    """Split text into word tokens; runs of unspaced scripts are split as described above."""
    tokens: list[str] = []
    for token in WORD_RE.findall(text):
        if len(token) > 1 and all(_is_unspaced(char) for char in token):
            tokens.extend(_split_unspaced(token))
        else:
            tokens.append(token)
    return tokens


_SENTENCE_END_RE = re.compile(r"[.!?:;\n\u2026\u3002\uff01\uff1f]")


def words_with_positions(text: str) -> Iterator[tuple[re.Match[str], bool]]:
    """Yield each word match and whether it opens a sentence (text start, or after terminal punctuation)."""
    previous_end = 0
    for match in WORD_RE.finditer(text):
        opens_sentence = previous_end == 0 or bool(_SENTENCE_END_RE.search(text, previous_end, match.start()))
        previous_end = match.end()
        yield match, opens_sentence


def proper_forms(text: str) -> set[str]:
    """Case-folded words that look like names: capitalised mid-sentence (or acronyms), never lowercase."""
    proper: set[str] = set()
    common: set[str] = set()
    for match, opens_sentence in words_with_positions(text):
        token = match.group()
        if not token[:1].isupper():
            common.add(token.casefold())
        elif not opens_sentence or (len(token) > 1 and token.isupper()):
            proper.add(token.casefold())
    return proper - common


def is_number(token: str) -> bool:
    return any(char.isdigit() for char in token) and not any(char.isalpha() for char in token)


def rank_terms(text: str, *, limit: int = 10, extra_stopwords: frozenset[str] = REQUEST_WORDS) -> list[Term]:
    """Rank content words by frequency, breaking ties by first position.

    ``display`` keeps the original capitals only for name-like words (see :func:`proper_forms`), so a
    capital that merely opens a sentence does not leak into keywords.

    Falls back progressively (drop ``extra_stopwords`` filter, then the stopword filter) so that a
    query made only of common words, or in a language the stopword list does not know, still yields
    keywords.
    """
    tokens = [token for token in words(text) if not is_number(token)]
    candidates = [t for t in tokens if t.casefold() not in STOPWORDS and t.casefold() not in extra_stopwords]
    candidates = [t for t in candidates if len(t) > 1 or _is_unspaced(t)]
    if not candidates:
        candidates = [t for t in tokens if t.casefold() not in STOPWORDS] or tokens
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    surface: dict[str, str] = {}
    for position, token in enumerate(candidates):
        key = token.casefold()
        counts[key] += 1
        first.setdefault(key, position)
        surface.setdefault(key, token)
    ranked = sorted(counts, key=lambda key: (-counts[key], first[key]))[:limit]
    proper = proper_forms(text)
    return [Term(key, surface[key] if key in proper else key, counts[key], first[key]) for key in ranked]


def sentences(text: str) -> list[str]:
    """Split text into sentences on terminal punctuation and line breaks."""
    return [part.strip() for part in SENTENCE_SPLIT_RE.split(text) if part and part.strip()]


def syllables(word: str) -> int:
    """Estimate English syllables by counting vowel groups, with the usual silent-e corrections."""
    letters = "".join(char for char in word.casefold() if char.isalpha())
    if not letters:
        return 0
    if len(letters) <= 3:
        return 1
    # A final "e" is usually silent ("make"), but "-le" after a consonant is its own syllable ("table").
    if letters.endswith(("es", "ed")) and not letters.endswith(("ted", "ded", "ses", "zes", "ces", "ges")):
        letters = letters[:-2]
    elif letters.endswith("e") and not (letters.endswith("le") and letters[-3:-2] not in "aeiouy"):
        letters = letters[:-1]
    groups = re.findall(r"[aeiouyàáâäèéêëìíîïòóôöùúûü]+", letters)
    return max(1, len(groups))


def verb_forms(verb: str) -> set[str]:
    """Common inflections of an English verb, so cue lists can stay short ("explain" -> "explaining")."""
    forms = {verb, verb + "s", verb + "ed", verb + "ing"}
    if verb.endswith("e"):
        forms |= {verb + "d", verb[:-1] + "ing"}
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        forms.add(verb + "es")
    if verb.endswith("y") and len(verb) > 2 and verb[-2] not in "aeiou":
        forms |= {verb[:-1] + "ies", verb[:-1] + "ied"}
    return forms
