"""Golden-first packing: retrieved hits -> numbered sources that fit a token budget. Pure.

1. Hits are taken best first. A hit adjacent to (or overlapping) one already taken from the same
   document joins it as one source, its overlap with its neighbour removed; otherwise it opens a source.
   A hit that does not fit is skipped and reported; smaller later ones may still fit.
   A hit that is mostly table, or opens a financial statement, grows at once by the table's chunks on its
   page(s), budget permitting: a statement's figures are asked for together, and a chunk holds a few rows.
2. While budget remains, sources grow by their neighbouring chunks, best source first, one chunk per
   side per round (`expand` rounds at most).
3. Sources that became adjacent are merged (that only ever saves tokens).
4. The sources are ordered for the prompt: `golden` (rank 1 first, then descending relevance),
   `reverse` (best last), `sandwich` (rank 1 first, rank 2 last, next to the question), `random`.

Choosing counts each chunk once, an upper bound for a growing source (its overlap with its neighbour
is counted twice); the chosen sources are then counted exactly, as the blocks the model will read
(`prompts.source_block`), with the caller's tokenizer, and the sum never exceeds the budget.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from rag.config import ORDERINGS
from rag.reading.chunking import in_table
from rag.prompts import Clean, neutralize, source_block
from rag.domain.filings import title

_WIDEST_NUMBER = 999  # "[999]" counts as many tokens as any number up to it
_JOIN_SLACK = 2  # tokens a join may add where two texts meet
TABLE_CHUNKS = 12  # rounds a table hit grows by (a chunk each side per round): a page of a statement


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    file: str
    path: str
    chunk: int  # the chunk's index in its document
    page_start: int
    page_end: int
    text: str
    score: float
    rank: int  # 1 = best
    tokens: int = 0  # its Llama-3 token count, if known (stored at ingestion)
    section: str = ""  # a document without pages (Word, HTML): the section it starts in, cited instead of a page
    heading: str = ""  # one that starts inside a table: the table's heading (rag.reading.chunking.table_heading)


@dataclass(frozen=True)
class Source:
    """One numbered block of the prompt: one or more consecutive chunks of one document."""

    number: int  # [n] in the prompt, in prompt order
    rank: int  # the best retrieval rank among its hits
    score: float
    doc_id: str
    file: str
    path: str
    first: int  # first and last chunk index
    last: int
    page_start: int
    page_end: int
    text: str
    tokens: int
    hits: tuple[int, ...] = ()  # ranks of the retrieved hits inside it (the rest is neighbouring text)
    section: str = ""  # a document without pages: the section its text starts in
    heading: str = ""  # its text starts inside a table: the table's heading

    def block(self, clean: Clean = neutralize) -> str:
        return source_block(self.number, self.file, self.page_start, self.page_end, self.text, clean, self.section,
                            self.heading)


@dataclass(frozen=True)
class Packed:
    sources: list[Source]
    tokens: int
    budget: int
    dropped: list[Hit] = field(default_factory=list)  # hits that did not fit


Neighbours = Callable[[list[tuple[str, int]]], "dict[tuple[str, int], Hit]"]  # (doc_id, index) pairs -> chunks


def pack(hits: Sequence[Hit], budget: int, count_tokens: Callable[[str], int], *, ordering: str = "golden",
         neighbours: Neighbours | None = None, expand: int = 2, seed: int = 0, llama_counts: bool = False,
         clean: Clean = neutralize) -> Packed:
    """`neighbours` fetches the chunks next to sources (one call per round); `llama_counts`: count_tokens is the
    Llama-3 tokenizer, so hits' stored counts may stand in while choosing; `clean`: how the model's blocks
    neutralise document text (counted as the model will read it). The steps are the module docstring's."""
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering {ordering!r}: use one of {', '.join(ORDERINGS)}")
    counting = _Counting(count_tokens, llama_counts, clean)
    selection = _Selection(budget, counting, neighbours)
    selection.choose(hits)  # 1. best first; a table's (or a statement's) hit with its table
    if neighbours is not None:
        selection.expand(expand)  # 2. neighbouring chunks, while the budget allows
    sources = _merge_adjacent(selection.sources)  # 3.
    sources, dropped = _counted_within(sources, budget, counting, hits, selection.dropped)
    return reorder(Packed(sources, sum(s.tokens for s in sources), budget, dropped), ordering, seed)  # 4.


@dataclass(frozen=True)
class _Counting:
    """How pack counts: while choosing, each chunk once (an upper bound for a source that grows: its overlap with
    its neighbour is counted twice); then each chosen source exactly, as the block the model will read."""

    count_tokens: Callable[[str], int]
    llama_counts: bool  # count_tokens is Llama 3's: a hit's stored count stands in for counting it again
    clean: Clean

    def chunk(self, h: Hit) -> int:
        """A chunk counted once, with its overlap, so joins are over-estimated."""
        return (h.tokens if h.tokens and self.llama_counts else self.count_tokens(h.text)) + _JOIN_SLACK

    def header(self, h: Hit) -> int:
        """A block's heading and spacing, for the widest number."""
        return self.count_tokens(source_block(_WIDEST_NUMBER, h.file, h.page_start, h.page_end, "", self.clean,
                                              h.section, h.heading))

    def block(self, s: Source) -> int:
        """A chosen source exactly, as its block (for the widest number)."""
        return self.count_tokens(source_block(_WIDEST_NUMBER, s.file, s.page_start, s.page_end, s.text, self.clean,
                                              s.section, s.heading))


class _Selection:
    """The sources chosen so far within the budget: which chunks they hold, the tokens they take (each chunk
    counted once), and the hits that did not fit."""

    def __init__(self, budget: int, counting: _Counting, neighbours: Neighbours | None):
        self.budget, self.counting, self.neighbours = budget, counting, neighbours
        self.sources: list[Source] = []
        self.taken: dict[tuple[str, int], int] = {}  # (doc_id, chunk index) -> position in sources
        self.used = 0
        self.dropped: list[Hit] = []

    def fits(self, tokens: int) -> bool:
        return self.used + tokens <= self.budget

    def choose(self, hits: Sequence[Hit]) -> None:
        """Step 1: hits best first, each joining the source it is next to or opening one, while they fit."""
        for hit in sorted(hits, key=lambda h: h.rank):
            if (hit.doc_id, hit.chunk) in self.taken:
                continue  # already inside a source (a duplicate hit)
            at = self.taken.get((hit.doc_id, hit.chunk - 1), self.taken.get((hit.doc_id, hit.chunk + 1)))
            extra = self.counting.chunk(hit) + (self.counting.header(hit) if at is None else 0)
            if not self.fits(extra):
                self.dropped.append(hit)
                continue
            self.used += extra
            at = self._put(at, replace(_open(hit), tokens=extra) if at is None
                           else replace(_join(self.sources[at], hit), tokens=self.sources[at].tokens + extra))
            if self.neighbours is not None and (in_table(hit.text) or title(hit.text)):
                self._grow_table(at, hit)

    def _grow_table(self, at: int, hit: Hit) -> None:
        """The hit's table, on its page(s), joins its source: a chunk each side per round, while it fits."""
        for _ in range(TABLE_CHUNKS):
            s, grew = self.sources[at], False
            wanted = self._free(s)
            found = self.neighbours([(s.doc_id, i) for i in wanted]) if wanted else {}
            for index in wanted:
                near = found.get((s.doc_id, index))
                if (near is None or near.page_start > hit.page_end or near.page_end < hit.page_start
                        or not in_table(near.text) or not self.fits(self.counting.chunk(near))):
                    continue
                self._add(at, near, self.counting.chunk(near))
                grew = True
            if not grew:
                return

    def expand(self, rounds: int) -> None:
        """Step 2: each round, every source (best first) grows by the chunk on each side of it, while they fit."""
        for _ in range(rounds):
            wanted = {i: self._free(s) for i, s in enumerate(self.sources)}
            found = self.neighbours([(self.sources[i].doc_id, index) for i, indexes in wanted.items()
                                     for index in indexes])
            grew = False
            for i in sorted(wanted, key=lambda i: self.sources[i].rank):
                for index in wanted[i]:
                    near = found.get((self.sources[i].doc_id, index))
                    if near is None or (near.doc_id, near.chunk) in self.taken:
                        continue
                    extra = self.counting.chunk(near)
                    if self.fits(extra):
                        self._add(i, near, extra)
                        grew = True
            if not grew:
                break

    def _free(self, s: Source) -> list[int]:
        """The indexes of the chunks just after and just before a source that no source holds."""
        return [i for i in (s.last + 1, s.first - 1) if i >= 0 and (s.doc_id, i) not in self.taken]

    def _add(self, at: int, near: Hit, tokens: int) -> None:
        """A neighbouring chunk (text around the hits, not a hit) joins the source at `at`."""
        self.used += tokens
        self._put(at, replace(_join(self.sources[at], near, as_hit=False), tokens=self.sources[at].tokens + tokens))

    def _put(self, at: int | None, grown: Source) -> int:
        """The source at `at` (None: a new one) becomes `grown`; its position."""
        if at is None:
            self.sources.append(grown)
            at = len(self.sources) - 1
        self.sources[at] = grown
        self.taken.update(((grown.doc_id, i), at) for i in range(grown.first, grown.last + 1))
        return at


def _counted_within(sources: list[Source], budget: int, counting: _Counting, hits: Sequence[Hit],
                    dropped: list[Hit]) -> tuple[list[Source], list[Hit]]:
    """The sources counted exactly; in the rare case the choosing bound was not one, the least relevant given up
    (its hits added to `dropped`) until they fit."""
    sources = [replace(s, tokens=counting.block(s)) for s in sources]
    while sum(s.tokens for s in sources) > budget:  # the bound failed: give up the least relevant source
        worst = max(sources, key=lambda s: s.rank)
        sources.remove(worst)
        dropped.extend(h for h in hits if h.rank in worst.hits)
    return sources, dropped


def reorder(packed: Packed, ordering: str, seed: int = 0) -> Packed:
    """The same sources in the prompt order `ordering` asks for, numbered [1].. in that order."""
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering {ordering!r}: use one of {', '.join(ORDERINGS)}")
    ordered = _order(packed.sources, ordering, seed)
    return replace(packed, sources=[replace(s, number=n) for n, s in enumerate(ordered, 1)])


def _open(hit: Hit) -> Source:
    return Source(0, hit.rank, hit.score, hit.doc_id, hit.file, hit.path, hit.chunk, hit.chunk, hit.page_start,
                  hit.page_end, hit.text, 0, (hit.rank,), hit.section, hit.heading)


def _join(s: Source, hit: Hit, as_hit: bool = True) -> Source:
    """The source with `hit` (the chunk just after or before it) added, their overlap removed."""
    after = hit.chunk == s.last + 1
    text = overlap_join(s.text, hit.text) if after else overlap_join(hit.text, s.text)
    return replace(s, text=text, first=min(s.first, hit.chunk), last=max(s.last, hit.chunk),
                   page_start=min(s.page_start, hit.page_start), page_end=max(s.page_end, hit.page_end),
                   hits=s.hits + ((hit.rank,) if as_hit else ()), section=s.section if after else hit.section,
                   heading=s.heading if after else hit.heading)


def overlap_join(first: str, second: str, longest: int = 2000) -> str:
    """`first` then `second` with the text they share (the end of one, the start of the other) once."""
    probe = second[:8]  # shorter than any real chunk overlap; each place it occurs in the tail is checked
    at = first.find(probe, max(0, len(first) - longest)) if probe else -1
    while at != -1:
        if second.startswith(first[at:]):
            return first[:at] + second
        at = first.find(probe, at + 1)
    return first.rstrip() + "\n" + second.lstrip()


def _merge_adjacent(sources: list[Source]) -> list[Source]:
    merged: list[Source] = []
    for s in sorted(sources, key=lambda s: (s.doc_id, s.first)):
        m = merged[-1] if merged else None
        if m is None or m.doc_id != s.doc_id or s.first != m.last + 1:
            merged.append(s)
            continue
        merged[-1] = replace(m, rank=min(m.rank, s.rank), score=max(m.score, s.score), text=overlap_join(m.text, s.text),
                             last=s.last, page_end=max(m.page_end, s.page_end), hits=m.hits + s.hits)
    return merged


def _order(sources: list[Source], ordering: str, seed: int) -> list[Source]:
    best = sorted(sources, key=lambda s: s.rank)
    if ordering == "golden":
        return best
    if ordering == "reverse":
        return best[::-1]
    if ordering == "sandwich":
        return best if len(best) < 3 else [best[0], *best[2:], best[1]]
    shuffled = best[:]
    _random.Random(seed).shuffle(shuffled)
    return shuffled
