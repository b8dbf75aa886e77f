"""Contract review: one document x CUAD's 41 clause types, each cell the passages that hold the clause, with
their pages and probabilities, and for some types the short answer read from the best one.

The passages are cut from the stored page text (rag.domain.review_model finds and weighs them), so each quote is
verbatim and points at its page and characters there, as a quote answer's does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np

from rag.domain.review_model import BUNDLED, ReviewModel, candidates
from rag.errors import ConfigError, IndexLockedError

log = logging.getLogger(__name__)

QUOTES = 5  # passages kept per cell, best first
FOUND = 0.5  # a cell whose best passage is at least this probable is shown as found
# A quote answer to a clause question on chosen documents, taken from their review, says the documents do not say
# when no passage is this probable (and is a weak match under FOUND). The lowest probability at which half of
# cuad-dev's contracts abstain on 80% of their unanswerable questions (the issue asks 75%); each half gives the same
# value, measured on the other half in eval/reports/cuad-dev-quotes/ (python -m eval.review_answers).
ANSWERS = 0.06
PAGE_BREAK = "\n\n"  # how a document's pages are joined to be read as one text


@dataclass(frozen=True)
class ReviewQuote:
    text: str  # verbatim, as the page holds it
    page: int  # 1-based
    start: int  # characters into the page's text
    end: int
    probability: float
    verified: bool | None = None  # `rag review --verify`: what a language model said of it (rag.verify)


@dataclass(frozen=True)
class Cell:
    category: str
    probability: float  # that the document holds this clause: its best passage's
    quotes: tuple[ReviewQuote, ...]
    answer: str = ""  # the short value, for the types that have one ("Delaware", "2014-05-08", "30 days")

    @property
    def found(self) -> bool:
        return self.probability >= FOUND

    def as_dict(self) -> dict:
        return {"category": self.category, "found": self.found, "probability": round(self.probability, 4),
                "quotes": [{k: v for k, v in asdict(q).items() if k != "verified" or v is not None}
                           | {"probability": round(q.probability, 4)} for q in self.quotes],
                "answer": self.answer}


def review(pages: list[str], model: ReviewModel) -> list[Cell]:
    """A document's cells, one per clause type the model knows, in its order."""
    text = PAGE_BREAK.join(pages)
    starts = np.cumsum([0] + [len(p) + len(PAGE_BREAK) for p in pages[:-1]]) if pages else np.zeros(1, dtype=int)
    found = candidates(text)
    p = model.probabilities(text, found)
    cells = []
    for j, category in enumerate(model.categories):
        quotes, seen = [], set()
        for i in np.argsort(-p[:, j], kind="stable") if len(found) else ():
            if p[i, j] <= 0 or len(quotes) == QUOTES:
                break
            c = found[i]
            page = int(np.searchsorted(starts, c.start, side="right"))  # 1-based: starts[page - 1] <= c.start
            at = int(starts[page - 1])
            end = min(c.end, at + len(pages[page - 1]))  # a passage running on past its page (an opening) stops there
            piece = text[c.start:end]
            if piece in seen:
                continue
            seen.add(piece)
            quotes.append(ReviewQuote(piece, page, c.start - at, end - at, float(p[i, j])))
        best = quotes[0].probability if quotes else 0.0
        cells.append(Cell(category, best, tuple(quotes), short_answer(category, quotes[0].text) if quotes else ""))
    return cells


# --- short answers: the value a reviewer writes in the cell, read from the best passage ---------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_NAMED_DATE = re.compile(r"(?:(\d{1,2})\s?(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?([a-z]{3})[a-z]*\.?,?\s*(\d{4})"
                         r"|([a-z]{3})[a-z]*\.?\s+(\d{1,2})\s?(?:st|nd|rd|th)?,?\s*(\d{4}))", re.IGNORECASE)
_NUMBER = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
           r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred)")
_PERIOD = re.compile(rf"\b(?:{_NUMBER}(?:[- ]{_NUMBER})*(?:\s*\(\d+\))?|\d+)\s+(?:calendar\s+|business\s+)?"
                     r"(?:days?|weeks?|months?|years?)\b", re.IGNORECASE)
_LAW = re.compile(r"(?i:laws?\s+(?:of|in)\s+(?:the\s+)?(?:(?:state|commonwealth|province|republic|kingdom)\s+of\s+)?)"
                  r"((?:[A-Z][a-zA-Z.]+)(?:\s+(?:of\s+|and\s+)?[A-Z][a-zA-Z.]+)*)")
SHORT_ANSWERS = ("Document Name", "Agreement Date", "Effective Date", "Expiration Date", "Renewal Term",
                 "Notice Period To Terminate Renewal", "Governing Law", "Warranty Duration")


def short_answer(category: str, quote: str) -> str:
    """The value of a short-answer type in a passage, or "" (a clause type without one, or none found)."""
    if category == "Document Name":
        return " ".join(quote.split())
    if category.endswith("Date"):
        return iso_date(quote)
    if category in ("Renewal Term", "Notice Period To Terminate Renewal", "Warranty Duration"):
        m = _PERIOD.search(quote)
        return " ".join(m.group(0).split()) if m else ""
    if category == "Governing Law":
        m = _LAW.search(quote)
        return re.sub(r"[.,]+$", "", " ".join(m.group(1).split())) if m else ""
    return ""


def iso_date(text: str) -> str:
    """The first named date in `text` as YYYY-MM-DD ("8th day of May, 2014" -> "2014-05-08"), else ""."""
    for m in _NAMED_DATE.finditer(text):
        day, month, year = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
        if month.lower() in _MONTHS:
            try:
                return date(int(year), _MONTHS[month.lower()], int(day)).isoformat()
            except ValueError:
                continue
    return ""


# --- the knowledge base's reviews: made at ingest, stored beside the chunks, read back by `rag review` -----------

class Reviewer:
    """The review model of a knowledge base's settings, and the name its stored reviews are kept under (the
    model file's hash: cells made by another model are made again)."""

    def __init__(self, model: ReviewModel, name: str):
        self.model, self.name = model, name

    @classmethod
    def open(cls, settings) -> Reviewer | None:
        """None when review is switched off (review_model = "none")."""
        if settings.review_model == "none":
            return None
        path = Path(settings.review_model) if settings.review_model else BUNDLED
        try:
            data = path.read_bytes()
            model = ReviewModel.load(path)
        except (OSError, KeyError, ValueError) as e:
            raise ConfigError(f"review_model {str(path)!r} could not be read ({e}): give a file made by `python -m "
                              "rag.domain.review_training`, or set RAG_REVIEW_MODEL=none") from e
        return cls(model, hashlib.sha256(data).hexdigest()[:16])

    def cells_json(self, pages: list[str]) -> str:
        return json.dumps([c.as_dict() for c in review(pages, self.model)], ensure_ascii=False)


def cells_from_json(text: str) -> list[Cell]:
    return [Cell(d["category"], d["probability"], tuple(ReviewQuote(**q) for q in d["quotes"]), d.get("answer", ""))
            for d in json.loads(text)]


def complete_documents(kb, names=None) -> dict:
    """Every document the knowledge base shows (complete), by id; given `names` (file names or paths), those it
    names, in their order."""
    with kb.lock:
        documents = {d: doc for d, doc in kb.manifest.documents().items() if doc.state == "complete"}
        return {d: documents[d] for d in kb.named(names) if d in documents} if names else documents


def library_reviews(kb, reviewer: Reviewer, documents: dict) -> dict[str, list[Cell]]:
    """Each document's cells (`documents`: id -> its manifest row): stored at ingest, or made now from its stored
    pages (a knowledge base made before reviews, or with another model) and stored when no ingest is writing (else
    made again next time). Each document's review is stored in a transaction of its own: a killed review loses
    nothing and the next one finishes the rest."""
    with kb.lock:
        stored = kb.manifest.reviews(reviewer.name, list(documents))
    made = {}
    for doc_id, doc in documents.items():
        if doc_id not in stored:
            pages = kb.page_texts(doc_id, 1, max(doc.pages, 1))
            made[doc_id] = reviewer.cells_json([pages[n] for n in sorted(pages)])
    if made:
        try:
            with kb.writing():
                for doc_id, cells in made.items():
                    with kb.lock, kb.manifest.transaction() as m:
                        if m.document(doc_id) is not None:  # not removed meanwhile
                            m.put_review(doc_id, reviewer.name, cells)
        except IndexLockedError:
            log.info("an ingest is writing: %d reviews made now are not stored", len(made))
    return {d: cells_from_json(stored.get(d) or made[d]) for d in documents}


def holding(kb, reviewer: Reviewer, category: str) -> tuple[list[tuple[str, str, Cell]], int]:
    """The documents whose review finds `category` (doc id, path, cell), most probable first, and how many
    documents were checked: every document the knowledge base shows."""
    documents = complete_documents(kb)
    reviews = library_reviews(kb, reviewer, documents)
    found = [(d, documents[d].path, cell) for d, cells in reviews.items() for cell in cells
             if cell.category == category and cell.found]
    return sorted(found, key=lambda f: (-f[2].probability, f[1])), len(reviews)
