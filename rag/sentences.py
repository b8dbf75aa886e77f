"""Sentences of a document's text: what quotes and the contract review cut it into.

Sentences end at `.`, `!` or `?` before a capital or a number (not after "Inc." or "e.g."), at blank lines (pages are
joined by one) and, with `clause_openings`, before a line that opens a numbered clause
(rag.domain.contracts.NUMBERED_CLAUSE); a heading on its own opens the sentence under it; none is over MAX_CHARS.
"""

from __future__ import annotations

import re

from rag.domain.contracts import NUMBERED_CLAUSE
from rag.text import WORD

MAX_CHARS = 600  # a longer sentence is cut at a clause break (a quote is something a person reads at a glance)

# a sentence's end (a capital or a number next), or a blank line (and so a page break)
_SENTENCE_END = r"(?<=[.!?])[\"'”’)\]]*(?:[^\S\n]+\n?|\n)[^\S\n]*(?=[\"“(\[]?[A-Z0-9])|\n[^\S\n]*\n\s*"
_BREAKS = {True: re.compile(_SENTENCE_END + r"|\n[^\S\n]*(?=" + NUMBERED_CLAUSE + ")"),  # a line that opens a clause
           False: re.compile(_SENTENCE_END)}
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
SHORT_WORDS = 5  # a piece of fewer words joins the sentence after it, unless a blank line parts them
_CLAUSE_BREAK = re.compile(r"[;:]\s+|\n")
_ABBREVIATION = re.compile(r"\b(?:Inc|Corp|Co|Ltd|No|Nos|Sec|Mr|Mrs|Ms|Dr|St|Jr|Sr|U\.S|vs|etc|e\.g|i\.e|[A-Z])\.$")


def sentence_spans(text: str, clause_openings: bool = True) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, without surrounding whitespace, none over MAX_CHARS.

    Sentences end at `.`, `!` or `?` before a capital or a number (not after "Inc." or "e.g."), at blank
    lines (pages are joined by one) and, with `clause_openings`, before a line that opens a numbered clause
    (rag.domain.contracts.NUMBERED_CLAUSE).
    """
    spans, at = [], 0
    for m in _BREAKS[clause_openings].finditer(text):
        if m.start() > at and _ABBREVIATION.search(text, max(at, m.start() - 6), m.start()):
            continue
        spans.extend(_trimmed(text, at, m.start()))
        at = m.end()
    spans.extend(_trimmed(text, at, len(text)))
    merged: list[tuple[int, int]] = []
    for a, b in spans:  # a heading or a clause number ("2.1 Exclusivity.") opens the sentence after it
        if merged and _heading(text[merged[-1][0]:merged[-1][1]]) and not _BLANK_LINE.search(text, merged[-1][1], a):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [piece for a, b in merged for piece in _short(text, a, b)]


def _heading(piece: str) -> bool:
    """A clause number, a few words, or a short title ("Section 4.2. Termination for Convenience.")."""
    words = WORD.findall(piece.lower())
    return len(words) < SHORT_WORDS or (len(words) <= 10 and all(
        w[0].isupper() for w in re.findall(r"[^\W\d_]{4,}", piece)))


def _trimmed(text: str, a: int, b: int) -> list[tuple[int, int]]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return [(a, b)] if WORD.search(text[a:b].lower()) else []


def _short(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """A span cut at clause breaks (else spaces) into pieces of at most MAX_CHARS."""
    pieces = []
    while b - a > MAX_CHARS:
        cuts = [m.end() for m in _CLAUSE_BREAK.finditer(text, a + MAX_CHARS // 3, a + MAX_CHARS)]
        cut = cuts[-1] if cuts else (text.rfind(" ", a + 1, a + MAX_CHARS) + 1 or a + MAX_CHARS)
        pieces.extend(_trimmed(text, a, cut))
        a = cut
    return pieces + _trimmed(text, a, b)
