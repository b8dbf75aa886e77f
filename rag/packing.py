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

from rag.reading.chunking import in_table
from rag.prompts import Clean, neutralize, source_block
from rag.statements import title

ORDERINGS = ("golden", "reverse", "sandwich", "random")
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
    neutralise document text (counted as the model will read it)."""
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering {ordering!r}: use one of {', '.join(ORDERINGS)}")

    def exact(s: Source) -> int:
        return count_tokens(source_block(_WIDEST_NUMBER, s.file, s.page_start, s.page_end, s.text, clean, s.section,
                                         s.heading))

    def piece(h: Hit) -> int:  # a chunk counted once; with its overlap, so joins are over-estimated
        return (h.tokens if h.tokens and llama_counts else count_tokens(h.text)) + _JOIN_SLACK

    def header(h: Hit) -> int:  # a block's heading and spacing, for the widest number
        return count_tokens(source_block(_WIDEST_NUMBER, h.file, h.page_start, h.page_end, "", clean, h.section,
                                         h.heading))

    # Choosing counts each chunk once (an upper bound for a source that grows); the result is then
    # counted exactly, block by block, and trimmed in the rare case the bound was not one.
    sources: list[Source] = []
    taken: dict[tuple[str, int], int] = {}  # (doc_id, chunk index) -> position in sources
    used, dropped = 0, []

    def take(at: int | None, grown: Source) -> int:
        if at is None:
            sources.append(grown)
            at = len(sources) - 1
        sources[at] = grown
        taken.update(((grown.doc_id, i), at) for i in range(grown.first, grown.last + 1))
        return at

    def grow_table(at: int, hit: Hit) -> None:  # the hit's table, on its page(s), joins it
        nonlocal used
        for _ in range(TABLE_CHUNKS):
            s, grew = sources[at], False
            wanted = [i for i in (s.last + 1, s.first - 1) if i >= 0 and (s.doc_id, i) not in taken]
            found = neighbours([(s.doc_id, i) for i in wanted]) if wanted else {}
            for index in wanted:
                near = found.get((s.doc_id, index))
                if (near is None or near.page_start > hit.page_end or near.page_end < hit.page_start
                        or not in_table(near.text) or used + piece(near) > budget):
                    continue
                used += piece(near)
                take(at, replace(_join(sources[at], near, as_hit=False), tokens=sources[at].tokens + piece(near)))
                grew = True
            if not grew:
                return

    for hit in sorted(hits, key=lambda h: h.rank):
        if (hit.doc_id, hit.chunk) in taken:
            continue  # already inside a source (a duplicate hit)
        at = taken.get((hit.doc_id, hit.chunk - 1), taken.get((hit.doc_id, hit.chunk + 1)))
        extra = piece(hit) + (header(hit) if at is None else 0)
        if used + extra > budget:
            dropped.append(hit)
            continue
        used += extra
        at = take(at, replace(_open(hit), tokens=extra) if at is None
                  else replace(_join(sources[at], hit), tokens=sources[at].tokens + extra))
        if neighbours is not None and (in_table(hit.text) or title(hit.text)):
            grow_table(at, hit)

    for _ in range(expand if neighbours is not None else 0):
        wanted = {i: [index for index in (s.last + 1, s.first - 1) if index >= 0 and (s.doc_id, index) not in taken]
                  for i, s in enumerate(sources)}
        found = neighbours([(sources[i].doc_id, index) for i, indexes in wanted.items() for index in indexes])
        grew = False
        for i in sorted(wanted, key=lambda i: sources[i].rank):
            for index in wanted[i]:
                near = found.get((sources[i].doc_id, index))
                if near is None or (near.doc_id, near.chunk) in taken:
                    continue
                extra = piece(near)
                if used + extra <= budget:
                    used += extra
                    take(i, replace(_join(sources[i], near, as_hit=False), tokens=sources[i].tokens + extra))
                    grew = True
        if not grew:
            break

    sources = _merge_adjacent(sources)
    sources = [replace(s, tokens=exact(s)) for s in sources]
    while sum(s.tokens for s in sources) > budget:  # the bound failed: give up the least relevant source
        worst = max(sources, key=lambda s: s.rank)
        sources.remove(worst)
        dropped.extend(h for h in hits if h.rank in worst.hits)
    return reorder(Packed(sources, sum(s.tokens for s in sources), budget, dropped), ordering, seed)


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
