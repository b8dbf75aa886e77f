"""The review model: for each of CUAD's 41 clause types, how likely each passage of a contract is its clause.

A contract's text is cut into candidates of four kinds: its sentences (every clause type), its opening (the
parties), its short lines near the start (the contract's name), and its dates (agreement and effective dates, as
CUAD marks them: "May 8, 2014", not the sentence around it). Each candidate is described by its words and word pairs (tf-idf), those of the
sentence before it or around it, and where it stands in the document; per clause type a logistic regression
(scikit-learn) turns that into a probability that it is a passage lawyers marked for the type, rescaled (Platt)
so that, on training contracts each scored by a model that never saw it, of the candidates given 0.8 about 80%
were marked (eval/reports/cuad-review/ shows the reliability on contracts the model never saw).
rag.domain.review_training fits it on cuad-train; the fitted numbers ship beside this module.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.domain.cuad import CATEGORIES
from rag.sentences import sentence_spans

BUNDLED = Path(__file__).with_name("review_model.npz")
SENTENCE, TITLE, DATE, OPENING = "sentence", "title", "date", "opening"
KINDS = (SENTENCE, TITLE, DATE, OPENING)
# the kinds of candidate each clause type is looked for in (the rest: sentences)
LOOKED_FOR_IN = {"Document Name": (TITLE,), "Agreement Date": (DATE,), "Effective Date": (DATE, SENTENCE),
                 "Parties": (OPENING, SENTENCE)}
OPENING_CHARS = 1000  # the opening, where a contract names its parties: its sentences up to the one past this
# an opening that reads as a contract's preamble (319 of cuad-train's 348 do): a filing's or a letter's is no candidate
PREAMBLE = re.compile(r"\b(?:between|among|by and|part(?:y|ies))\b", re.IGNORECASE)
TITLE_WORDS = 12  # a line of at most this many words, within the first TITLE_CHARS, may be the contract's name
TITLE_CHARS = 6000
CONTEXT = 0.5  # the weight of the words around a candidate against its own

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
          r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"(?:\d{1,2}|_+|\[[^\]\n]{0,6}\])\s?(?:st|nd|rd|th|t\s?h)?"
_YEAR = r"(?:\d{4}|_+)"
DATES = re.compile(  # "May 8, 2014", "8th day of May, 2014", "1 August 2019", "May 2014", "5/8/14", "2014-05-08"
    rf"\b(?:{_DAY}\s+(?:day\s+of\s+)?{_MONTH},?\s*{_YEAR}|{_MONTH}\s+{_DAY},?\s*{_YEAR}|{_MONTH},?\s+\d{{4}}"
    rf"|\d{{1,2}}[/-]\d{{1,2}}[/-]\d{{2,4}}|\d{{4}}-\d{{2}}-\d{{2}})", re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    kind: str
    start: int  # in the document's text
    end: int
    context: tuple[int, int]  # the words around it: the sentence before a sentence, the sentence around a date


def candidates(text: str) -> list[Candidate]:
    """A document's candidates, in order of kind and then of place."""
    spans = sentence_spans(text)
    found = [Candidate(SENTENCE, a, b, spans[i - 1] if i else (a, a)) for i, (a, b) in enumerate(spans)]
    at = 0
    for line in text[:TITLE_CHARS].splitlines(keepends=True):
        words = line.split()
        if 0 < len(words) <= TITLE_WORDS and re.search(r"[^\W\d_]{3}", line):
            a = at + len(line) - len(line.lstrip())
            found.append(Candidate(TITLE, a, a + len(line.strip()), (at, at)))
        at += len(line)
    if spans:
        last = next((b for a, b in spans if b >= OPENING_CHARS), spans[-1][1])
        if PREAMBLE.search(text, spans[0][0], last):
            found.append(Candidate(OPENING, spans[0][0], last, (0, 0)))
    starts = [a for a, _ in spans]
    for m in DATES.finditer(text):
        i = max(0, np.searchsorted(starts, m.start(), side="right") - 1)
        found.append(Candidate(DATE, m.start(), m.end(), spans[i] if spans else (0, 0)))
    return found


def layout(text: str, found: list[Candidate]) -> np.ndarray:
    """Where each candidate stands and what it looks like: (candidates, LAYOUT) float32."""
    n = max(len(text), 1)
    seen = {kind: 0 for kind in KINDS}
    rows = []
    for c in found:
        piece = text[c.start:c.end]
        letters = [ch for ch in piece if ch.isalpha()]
        rows.append((*(float(c.kind == k) for k in KINDS), c.start / n, float(c.start < 3000), np.log1p(seen[c.kind]),
                     np.log1p(len(piece.split())), sum(ch.isupper() for ch in letters) / max(len(letters), 1)))
        seen[c.kind] += 1
    return np.array(rows, dtype=np.float32).reshape(len(found), LAYOUT)


LAYOUT = len(KINDS) + 5


class Vectorizer:
    """Words and word pairs, weighted by tf-idf over a fixed vocabulary (as scikit-learn's TfidfVectorizer with
    sublinear tf and l2 norm computes them), for a candidate and, at CONTEXT, the words around it."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray):
        self.vocabulary, self.idf = vocabulary, idf
        self._tfidf = make_tfidf(vocabulary=vocabulary)
        self._tfidf.idf_ = idf

    def matrix(self, text: str, found: list[Candidate]):
        """(candidates, 2 x vocabulary + LAYOUT) sparse: own words, context words, layout."""
        from scipy import sparse

        own = self._tfidf.transform([text[c.start:c.end] for c in found])
        around = self._tfidf.transform([text[c.context[0]:c.context[1]] for c in found]) * CONTEXT
        return sparse.hstack([own, around, sparse.csr_matrix(layout(text, found))], format="csr", dtype=np.float32)


def make_tfidf(**kwargs):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w\w+\b",
                           dtype=np.float32, **kwargs)


@dataclass(frozen=True)
class ReviewModel:
    categories: tuple[str, ...]
    vocabulary: tuple[str, ...]
    idf: np.ndarray  # (vocabulary,)
    weights: np.ndarray  # (categories, 2 x vocabulary + LAYOUT)
    bias: np.ndarray  # (categories,)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, categories=np.array(self.categories), vocabulary=np.array(self.vocabulary),
                            idf=self.idf.astype(np.float32), weights=self.weights.astype(np.float16),
                            bias=self.bias.astype(np.float32))

    @classmethod
    def load(cls, path: Path = BUNDLED) -> ReviewModel:
        with np.load(path) as f:
            return cls(tuple(str(c) for c in f["categories"]), tuple(str(v) for v in f["vocabulary"]), f["idf"],
                       f["weights"].astype(np.float32), f["bias"])

    @functools.cached_property
    def vectorizer(self) -> Vectorizer:
        """Made once a model (building its vocabulary's index takes longer than reviewing a contract)."""
        return Vectorizer(list(self.vocabulary), self.idf)

    def probabilities(self, text: str, found: list[Candidate]) -> np.ndarray:
        """(candidates, categories): the probability that each candidate is a passage of each clause type; 0 where
        the type is not looked for in that kind of candidate."""
        if not found:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        x = self.vectorizer.matrix(text, found)
        kinds = np.array([c.kind for c in found])
        allowed = np.stack([np.isin(kinds, LOOKED_FOR_IN.get(name, (SENTENCE,))) for name in self.categories], axis=1)
        p = np.where(allowed, 1 / (1 + np.exp(-np.asarray(x @ self.weights.T + self.bias, dtype=np.float32))), 0)
        return p.astype(np.float32)


assert {c.name for c in CATEGORIES} >= set(LOOKED_FOR_IN)
