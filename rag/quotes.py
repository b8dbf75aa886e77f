"""Quotes: the sentences of the sources that answer a question, verbatim, each checked against its page.

A quote is never made up: its text is exactly `page_text[start:end]` of the page it names, as stored at
ingestion, and a sentence that cannot be found there is not offered.

Quote answers rank every sentence of the retrieved sources by `score` (the one place it is written: answering
and eval.calibrate_quotes both call it):

    score = cosine(question, sentence), with the embedding model
          + keywords x the share of the question's words the sentence holds, each word weighted by how rare
            it is among the sentences ranked (so "exclusive" counts, "contract" hardly)
          + lead / the rank of the source it comes from
          + for a question about the document itself (its name, parties, date: rag.domain.contracts'
            DOCUMENT_QUESTIONS), opening x how far its likeness to the nearest of those exceeds identity, for
            the sentences that open the document
          + for a question a clause model knows (rag.domain.clause_models: "is there a cap on liability?"),
            clause x its score of the sentence as that clause

and answer with the best few; when even the best scores under `threshold` (`clause_threshold` where a clause
model scored), they say that the documents don't say. A quote's score is said as its margin over the threshold
that applied, so 0 parts answers from abstentions either way; a best quote under `weak` is a weak match, shown
as such (the documents may not say), never as the answer. The weights and thresholds (Weights) are fitted on
cuad-dev's questions by eval.calibrate_quotes, which writes them to rag/domain/quote_weights.json, and what
they give is measured there on contracts they never saw (eval/reports/cuad-dev-quotes/).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.domain.clause_models import Clause, Clauses
from rag.domain.contracts import DOCUMENT_QUESTIONS
from rag.packing import Source
from rag.sentences import MAX_CHARS, sentence_spans  # noqa: F401  (MAX_CHARS: tests read it here)
from rag.text import letters_at, stems

WEIGHTS_FILE = Path(__file__).parent / "domain" / "quote_weights.json"


@dataclass(frozen=True)
class Weights:
    """The weights of `score` and the thresholds over it (see the module's docstring)."""

    keywords: float
    lead: float
    opening: float
    identity: float
    threshold: float  # a best score under this abstains
    clause: float
    clause_threshold: float  # ... under this, where a clause model scored
    weak: float  # a best margin over the threshold under this is a weak match

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> Weights:
        values = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{f.name: float(values[f.name]) for f in fields(cls)})

    def save(self, path: Path, **about: str) -> None:
        """Write them (and what they were fitted on, `about`) where `load` reads them."""
        path.write_text(json.dumps({**about, **asdict(self)}, indent=2) + "\n", encoding="utf-8")

    def threshold_for(self, clause: bool) -> float:
        """The threshold for a question with a clause model, or without."""
        return self.clause_threshold if clause else self.threshold


WEIGHTS = Weights.load()


def score(w: Weights, cosine: np.ndarray, share: np.ndarray, rank: np.ndarray, opening: np.ndarray,
          identity: float | np.ndarray, clause: np.ndarray | None = None) -> np.ndarray:
    """Each sentence's score, for one question's sentences (1-D arrays, `identity` a number) or for many questions'
    (questions x sentences, `identity` one per question). `cosine`: to the question; `share`: keyword_shares;
    `rank`: its source's retrieval rank (1 first); `opening`: 1 for a sentence of a document's opening (in_opening);
    `identity`: the question's likeness to the nearest DOCUMENT_QUESTIONS (0: none asked); `clause`: the clause
    model's scores of the sentences (float32, as Clause.score makes them), or None."""
    about = w.opening * np.maximum(0.0, np.asarray(identity, dtype=np.float64) - w.identity)
    if about.ndim:
        about = about[:, None]
    s = np.asarray(cosine, dtype=np.float64) + w.keywords * np.asarray(share) + w.lead / np.asarray(rank)
    s = s + about * np.asarray(opening, dtype=np.float64)
    return s if clause is None else s + w.clause * clause


TOP = 3  # quotes per answer
OPENING_CHARS = 1500  # a document's opening: its first page's first characters
_RUNS_ON = frozenset("a an and or of the to in for with by on at as from that which".split())  # a line ends mid-sentence


@dataclass(frozen=True)
class Quote:
    text: str  # exactly the page's text from start to end
    file: str
    path: str
    doc_id: str
    page: int
    start: int  # character offsets into the page's stored text
    end: int
    source: int  # the [n] of the source it was cut from
    score: float  # how far over the threshold (negative: under it); 1.0 for a generated answer's checked quote
    ocr: bool = False  # its page was read by OCR (a scan): the words are OCR's reading of it
    section: str = ""  # a document without pages (Word, HTML): the section it is in ("page" is its number)
    probability: float | None = None  # taken from the contract review (rag.review): how probable it holds the clause

    def shown(self) -> str:
        """The text on one line, as a person reads it (rag.quotes.one_line)."""
        return one_line(self.text)


def one_line(text: str) -> str:
    """A quote on one line, as a person reads it: its lines joined by spaces, except that a heading on a line of its
    own stays apart from the sentence under it ("3. Rent — Lessee shall pay ...", not "3. Rent Lessee shall pay")."""
    first, _, rest = text.strip().partition("\n")
    if rest.strip()[:1].isupper() and _title_line(first):
        return f"{' '.join(first.split())} \u2014 {' '.join(rest.split())}"
    return " ".join(text.split())


def _title_line(line: str) -> bool:
    """A heading: a few words, each of four letters or more capitalised ("3. Rent", "8. GOVERNING LAW"), not a line
    a sentence runs on from ("WHEREAS, Company and")."""
    words = line.split()
    long = [w for w in re.findall(r"[^\W\d_]+", line) if len(w) >= 4]
    return (0 < len(words) <= 10 and bool(re.search(r"[^\W\d_]", line)) and all(w[0].isupper() for w in long)
            and not line.rstrip().endswith(",") and words[-1].lower() not in _RUNS_ON)


@dataclass
class Quoted:
    """What quote selection found for one question."""

    quotes: list[Quote]  # the best TOP, best first; [] when it abstained
    best: list[Quote] = field(default_factory=list)  # the best TOP whatever their score (for calibration)
    considered: int = 0  # sentences ranked
    abstained: bool = False
    weak: bool = False  # the best scores over the threshold but under `weak`: shown as a weak match, not the answer


@dataclass(frozen=True)
class Candidate:
    text: str
    source: Source
    page: int
    start: int
    end: int


def candidates(sources: Sequence[Source], pages: Callable[[str, int, int], dict[int, str]],
               clause_openings: bool = True) -> list[Candidate]:
    """The sentences of the sources, cut from their pages' stored text (`pages(doc_id, first, last)`).

    Each sentence of a source is found on its page; the page's own sentences that overlap it are the
    candidates, so a sentence the source cuts (a chunk ends mid-sentence) is offered whole, and every
    candidate is the page's text by construction. A source sentence not found on its pages offers nothing.
    """
    found: dict[tuple[str, int, int], Candidate] = {}
    for source in sources:
        texts = pages(source.doc_id, source.page_start, source.page_end)
        spans = {p: sentence_spans(t, clause_openings) for p, t in texts.items()}
        page, at = source.page_start, 0
        for a, b in sentence_spans(source.text, clause_openings):
            sentence = source.text[a:b]
            for p in range(page, source.page_end + 1):
                start = texts.get(p, "").find(sentence, at if p == page else 0)
                if start < 0:
                    continue
                end = start + len(sentence)
                for x, y in spans[p]:
                    if x < end and y > start and (source.doc_id, p, x) not in found:
                        found[(source.doc_id, p, x)] = Candidate(texts[p][x:y], source, p, x, y)
                page, at = p, end
                break
    return list(found.values())


def in_opening(c: Candidate) -> bool:
    """Whether the sentence is among a document's first (its title, parties and date are there)."""
    return c.page == 1 and c.source.first == 0 and c.start < OPENING_CHARS


def keyword_shares(question: str, sentences: Sequence[str]) -> list[float]:
    """For each sentence, the idf-weighted share of the question's words it holds; idf over `sentences`."""
    asked = stems(question)
    held = [stems(s) & asked for s in sentences]
    n = len(sentences)
    df = {w: sum(w in h for h in held) for w in asked}
    weight = {w: math.log((n + 1) / (df[w] + 0.5)) for w in asked}
    total = sum(weight.values()) or 1.0
    return [sum(weight[w] for w in h) / total for h in held]


class Quoter:
    """Chooses quotes with an embedding model (`embed`: texts -> unit vectors), keeping the vectors of the
    `keep` sentences it saw last (a document's sentences come back with every question about it; 20,000
    vectors of 384 floats are 30 MB). `document_questions` and `clause_openings`: rag.domain.contracts' tables
    used, or not (the settings of those names)."""

    def __init__(self, embed: Callable[[Sequence[str]], list[list[float]]], pages: Callable, keep: int = 20_000,
                 clauses: Clauses | None = None, weights: Weights = WEIGHTS, document_questions: bool = True,
                 clause_openings: bool = True):
        self.embed, self.pages, self.keep = embed, pages, keep
        self.clauses = clauses or Clauses(None, embed)
        self.weights, self.document_questions, self.clause_openings = weights, document_questions, clause_openings
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the app's sessions share one Engine

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The texts' unit vectors, one row each."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
            if missing:
                self._vectors.update(zip(missing, np.asarray(self.embed(missing), dtype=np.float32)))
            rows = [self._vectors[t] for t in texts]
            for t in texts:
                self._vectors.move_to_end(t)
            while len(self._vectors) > self.keep:
                self._vectors.popitem(last=False)
            return np.stack(rows)

    @classmethod
    def open(cls, settings, embedder, pages: Callable) -> Quoter:
        """The quoter `settings` (rag.config.Settings) ask for, with `embedder`'s model and its clause models."""
        return cls(embedder.embed, pages, clauses=Clauses.open(settings.clause_models, embedder.model_id,
                                                               embedder.embed),
                   document_questions=settings.document_questions, clause_openings=settings.clause_openings)

    def warm(self) -> None:
        """Embed what every question is compared with: the questions about the document, the clause models'."""
        if self.document_questions:
            self.vectors(DOCUMENT_QUESTIONS)
        if self.clauses.models is not None:
            self.clauses.questions()

    def identity(self, question: str) -> float:
        """How much the question asks about the document itself: its cosine to the nearest of DOCUMENT_QUESTIONS
        (0 with `document_questions` off)."""
        if not self.document_questions:
            return 0.0
        vectors = self.vectors([question, *DOCUMENT_QUESTIONS])
        return float((vectors[1:] @ vectors[0]).max())

    def clause(self, question: str) -> Clause | None:
        """The clause model the question asks for, or None (rag.domain.clause_models)."""
        if self.clauses.models is None:
            return None  # nothing to ask: the question need not be embedded for it
        return self.clauses.find(question, self.vectors([question])[0])

    def margins(self, question: str, found: Sequence[Candidate]) -> np.ndarray:
        """Each sentence's score over the threshold that applies to the question (negative: under it)."""
        vectors = self.vectors([question, *(c.text for c in found)])
        clause = self.clause(question)
        scored = score(self.weights, vectors[1:] @ vectors[0], keyword_shares(question, [c.text for c in found]),
                       np.array([c.source.rank for c in found]), np.array([in_opening(c) for c in found]),
                       self.identity(question), None if clause is None else clause.score(vectors[1:]))
        return scored - self.weights.threshold_for(clause is not None)

    def quote(self, question: str, sources: Sequence[Source], top: int = TOP) -> Quoted:
        found = candidates(sources, self.pages, self.clause_openings)
        if not found:
            return Quoted([], abstained=True)
        ranked = sorted(zip(self.margins(question, found).tolist(), range(len(found))), reverse=True)
        best, seen = [], set()
        for margin, i in ranked:
            c = found[i]
            if c.text in seen:
                continue  # the same words twice (boilerplate): once is enough
            seen.add(c.text)
            best.append(Quote(c.text, c.source.file, c.source.path, c.source.doc_id, c.page, c.start, c.end,
                              c.source.number, round(margin, 4)))
            if len(best) == top:
                break
        abstained = best[0].score < 0
        return Quoted([] if abstained else best, best, len(found), abstained,
                      not abstained and best[0].score < self.weights.weak)


_QUOTED_AFTER = re.compile(r"\[(\d{1,3})\][ \t]*[:,]?[ \t]*[\"“]([^\"”\n]{3,800})[\"”]")
_QUOTED_BEFORE = re.compile(r"[\"“]([^\"”\n]{3,800})[\"”][ \t]*\[(\d{1,3})\]")


def quotations(text: str) -> list[tuple[int, str]]:
    """The (source number, words) pairs of an answer that quotes its sources: `[2] "the words"`, or
    `"the words" [2]`, in the order written."""
    found = [(m.start(), int(m.group(1)), m.group(2)) for m in _QUOTED_AFTER.finditer(text)]
    found += [(m.start(), int(m.group(2)), m.group(1)) for m in _QUOTED_BEFORE.finditer(text)]
    return [(n, words) for _, n, words in sorted(found)]


def locate(words: str, source: Source, pages: Callable[[str, int, int], dict[int, str]]) -> Quote | None:
    """`words` found in the source's pages, compared in lowercase letters and digits (a model quoting may
    change spaces, line breaks and punctuation): the page's own text there, or None when it is not there."""
    wanted = letters_at(words)[0]
    if len(wanted) < 8:  # too short to be evidence of anything
        return None
    for page, text in sorted(pages(source.doc_id, source.page_start, source.page_end).items()):
        spelled, at = letters_at(text)
        found = spelled.find(wanted)
        if found >= 0:
            start, end = at[found], at[found + len(wanted) - 1] + 1
            return Quote(text[start:end], source.file, source.path, source.doc_id, page, start, end, source.number, 1.0)
    return None
