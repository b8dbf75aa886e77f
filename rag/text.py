"""Words as this project compares them: one definition each of words, stems, stop words and letters.

Three kinds of "letters only", each for its own job: `letters` (ASCII letters and digits, lowercase: how quotes
are matched to gold evidence, and clause names to questions), `letters_at` (any script's letters and digits, with
where each stands: how a model's quotation is found in a page, whatever its language) and `alphabetic` (a to z
alone, at C speed: how a financial statement's title is read on every chunk of a filing, split words and all).
"""

from __future__ import annotations

import re

# Words that match nearly every chunk: they add no ranking signal to a keyword search and make an OR query scan
# everything.
STOPWORDS = frozenset("""
a an and are as at be been but by can could did do does for from had has have he her his how i if in into is
it its may me might must my no not of on or our shall she should so such than that the their them then there
these they this those to under upon us was we were what when where which while who whom why will with would
you your any all each other some only own same too very just about above after again against before below
between both during further here more most nor off once out over through until up down""".split())
# ... and the words every question has besides, for comparing a question's words with a sentence's
NOT_ASKED = STOPWORDS | frozenset("what which whom whose please tell give list there".split())
# Words too common to tell which passage an answer's words came from (what is marked in a page, what infers a
# citation): three letters or more, so the short stop words need no listing
COMMON = frozenset("""the and for that this with are was were from have has not any shall will which such its
into upon than then there their them they been being also may must can could would should under other said
documents does""".split())

WORD = re.compile(r"[a-z0-9]+")  # a word of lowercased text
STEM_LETTERS = 5  # "exclusive", "exclusivity": one stem
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_NOT_AZ = bytes(set(range(256)) - set(b"abcdefghijklmnopqrstuvwxyz"))


def stems(text: str) -> set[str]:
    """Words as a cheap stemmer sees them: lowercase, cut to STEM_LETTERS letters, without the words every
    question has (NOT_ASKED)."""
    return {w[:STEM_LETTERS] for w in WORD.findall(text.lower()) if w not in NOT_ASKED}


def letters(text: str) -> str:
    """Lowercase ASCII letters and digits only: the form gold evidence and page text are compared in."""
    return _NOT_ALNUM.sub("", text.lower())


def letters_at(text: str) -> tuple[str, list[int]]:
    """The text's letters and digits of any script, lowercased, one for one, and where each stands in `text`."""
    at = [i for i, ch in enumerate(text) if ch.isalnum()]
    return "".join(text[i].lower()[0] for i in at), at


def alphabetic(text: str) -> str:
    """The text's letters a to z, lowercase, and nothing else: no digits, no spaces."""
    return text.lower().encode("ascii", "ignore").translate(None, _NOT_AZ).decode()
