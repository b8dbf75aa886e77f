"""A written answer tied to its sources, and checked against them before anyone reads it.

- `cite`: the sources an answer cites as [n]; a model too small to cite gets the source that shares most words
  with its answer, marked `inferred`, but only when that source holds what the answer states.
- `check`: each citation's quoted words looked for in its source's pages (verified, or not).
- `claims` / `support`: what an answer states that a document would have to say (names, places, figures,
  dates: the words a small model makes up), and which of them no source it cites contains. An answer none
  of whose claims is in its sources is unsupported, and is shown as such, with the quote answer beside it.

The check is by words, not by meaning: "Delaware" in an answer is supported by a source that says
"Delaware" anywhere, even "not Delaware". It catches what a model invents (a salary no document mentions,
a state the contract does not name), not every misreading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from rag.packing import Source
from rag.prompts import NOT_FOUND
from rag.quotes import Quote, locate, quotations
from rag.text import COMMON

_CITATION = re.compile(r"\[(\d{1,3})\]")
_WORD = re.compile(r"[a-z0-9]{3,}")

# A figure: digits (with thousands separators and decimals), and the scale written after it
_FIGURE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:st|nd|rd|th)?"
                     r"(?:\s*(%|percent|per cent|thousand|million|billion|trillion|[mb]n?\b))?", re.IGNORECASE)
_ORDINAL = re.compile(r"\d(?:st|nd|rd|th)\b", re.IGNORECASE)
_SCALE = {"thousand": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "b": 1e9, "bn": 1e9, "trillion": 1e12}
# A name, a place, a month: a capitalised word (initials and acronyms included), possessive dropped
_CAPITALISED = re.compile(r"\b([A-Z][A-Za-z&-]*[A-Za-z]|[A-Z])(?:['’]s)?\b")
# Capitalised for grammar, not because they name anything: they start sentences and fill answers. (A word that
# opens a sentence and names nothing, "Payments are due", is a claim too, but one any source on the subject
# holds: words are compared in lowercase.)
_NOT_NAMES = frozenset("""a an the this that these those it its there here yes no not none nothing however according
under based per as in on at of for from by with to and or but if when where which who whom whose what why how
both each either neither all any some such also only then thus so therefore i we you he she they our your their
his her one two three agreement contract party parties section article clause page source sources document
documents answer""".split())


@dataclass
class Citation:
    number: int
    file: str
    path: str
    page_start: int
    page_end: int
    passage: str
    inferred: bool = False  # True when the model cited nothing and the page was matched from its words
    quoted: str = ""  # the words the model quoted from this source ("" when it quoted none)
    verified: bool | None = None  # its quoted words are in the source (None: nothing quoted, nothing to check)
    ocr: bool = False  # one of its pages was read by OCR (a scan): its words may hold OCR slips
    section: str = ""  # a document without pages (Word, HTML): the section cited, instead of pages


@dataclass(frozen=True)
class Support:
    claims: tuple[str, ...]  # what the answer states that a document would have to say, as the answer writes it
    unsupported: tuple[str, ...]  # those no source it cites (or, citing none, no source it was given) contains

    @property
    def verdict(self) -> str:
        """supported | partly supported | unsupported | "" (nothing to check: no name, place, figure or date)."""
        if not self.claims:
            return ""
        if not self.unsupported:
            return "supported"
        return "unsupported" if len(self.unsupported) == len(self.claims) else "partly supported"


def claims(answer: str, question: str = "") -> list[str]:
    """The names, places, figures and dates an answer states, each once, in the order written; words the
    question already holds are not claims (restating the question states nothing)."""
    text = _without_markup(answer)
    asked_words = {w.lower() for w in _CAPITALISED.findall(question)} | {w for w in _WORD.findall(question.lower())}
    asked_values = {v for _, values in _figures(question) for v in values}
    found: list[str] = []
    for written, values in _figures(text):
        if not values & asked_values:
            found.append(written)
    for m in _CAPITALISED.finditer(text):
        word = m.group(1)
        if word.lower() not in _NOT_NAMES and word.lower() not in asked_words:
            found.append(word)
    return list(dict.fromkeys(found))


def support(answer: str, question: str, texts: Iterable[str]) -> Support:
    """Which of the answer's claims none of `texts` (its cited sources) contains."""
    stated = claims(answer, question)
    if not stated:
        return Support((), ())
    corpus = "\n".join(texts)
    words = {w.lower() for w in re.findall(r"[A-Za-z0-9&-]*[A-Za-z]", corpus)}
    values = {v for _, vs in _figures(corpus) for v in vs}
    unsupported = []
    for claim in stated:
        figure = _figures(claim)
        if figure and not _ORDINAL.search(claim):
            held = bool(figure[0][1] & values)
        else:  # a word, or an ordinal ("10th": the source must say "10th", not merely 10)
            held = claim.lower() in words or claim.lower() + "s" in words
        if not held:
            unsupported.append(claim)
    return Support(tuple(stated), tuple(unsupported))


def cite(text: str, sources: list[Source], question: str = "") -> list[Citation]:
    """The sources an answer cites as [n], each once, in the order first cited.

    A model too small to cite (the bundled 135M one often is) still gets its answer tied to a page: of the
    sources that hold every name, place, figure and date the answer states, the one sharing the most words
    with it is cited, marked `inferred` (a page that says California is never shown as the support of an
    answer that says Tennessee).
    """
    by_number = {s.number: s for s in sources}
    cited = [Citation(n, s.file, s.path, s.page_start, s.page_end, s.text, section=s.section)
             for n in dict.fromkeys(int(m) for m in _CITATION.findall(text)) if (s := by_number.get(n))]
    if cited or not sources or not text or NOT_FOUND.lower().rstrip(".") in text.lower():
        return cited
    words = set(_WORD.findall(text.lower())) - COMMON
    holding = [s for s in sources if not support(text, question, [s.text]).unsupported]
    if not holding:
        return []
    best = max(holding, key=lambda s: (len(words & set(_WORD.findall(s.text.lower()))), -s.rank))
    if not words & set(_WORD.findall(best.text.lower())):
        return []
    return [Citation(best.number, best.file, best.path, best.page_start, best.page_end, best.text, inferred=True,
                     section=best.section)]


def check(text: str, sources: list[Source], citations: list[Citation], pages) -> tuple[list[Citation], list[Quote]]:
    """Each citation's quoted words looked for in its source's pages: the citations marked verified (or not),
    and the quotes found, as the pages' own text at their offsets."""
    said: dict[int, list[str]] = {}
    for number, words in quotations(text):
        said.setdefault(number, []).append(words)
    by_number = {s.number: s for s in sources}
    checked, quotes = [], []
    for c in citations:
        words = said.get(c.number, [])
        found = [q for w in words if (q := locate(w, by_number[c.number], pages)) is not None]
        quotes += found
        checked.append(replace(c, quoted=words[0] if words else "",
                               verified=len(found) == len(words) if words else None))
    return checked, quotes


def supporting_texts(citations: Sequence[Citation], sources: Sequence[Source]) -> list[str]:
    """What an answer's claims are checked against: the sources it cites explicitly; citing none, every source
    it was given (a claim that none of them holds came from nowhere in the documents)."""
    explicit = [c.passage for c in citations if not c.inferred]
    return explicit or [s.text for s in sources]


def _figures(text: str) -> list[tuple[str, set[float]]]:
    """Each figure as written and the values it may stand for ("$1.1 million": 1.1 and 1,100,000)."""
    found = []
    for m in _FIGURE.finditer(text):
        whole, decimals, scale = m.group(1).replace(",", ""), m.group(2), (m.group(3) or "").lower()
        value = float(f"{whole}.{decimals}" if decimals else whole)
        values = {value}
        if scale in _SCALE:
            values.add(round(value * _SCALE[scale], 6))
        found.append((m.group(0).strip(), values))
    return found


def _without_markup(answer: str) -> str:
    """The answer without its [n] citation marks (their numbers are not figures it states)."""
    return _CITATION.sub(" ", answer)

