"""Pages -> chunks that fit the embedding model's window, cut at sentence or line ends when possible.

Sizes are counted in the embedding model's own tokens (all-MiniLM-L6-v2 reads 256 word pieces and
silently drops the rest), so every chunk is embedded whole. A chunk may run across a page break; it
keeps the page it starts on and the page it ends on, with character offsets into those pages' text.

`chunk_pages` is pure: it takes a function that maps text to token character spans, so it runs with
the real tokenizer or with a whitespace one in tests.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable, Sequence

# Bump when the cutting rules change: chunk ids include it, so a new version re-chunks every file.
CHUNKER_VERSION = 1
PAGE_BREAK = "\n\n"

Spans = list[tuple[int, int]]  # (start, end) character offsets of each token in the text
Tokenize = Callable[[Sequence[str]], list[Spans]]  # batched: one list of spans per text

_SENTENCE_END = re.compile(r"(?:[.!?;:][\"'”’)\]]*\s+|\n[ \t]*\n\s*)")
_LINE_END = re.compile(r"\n\s*")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page_start: int  # 1-based
    page_end: int
    start: int  # offset of the chunk's first character in page_start's text
    end: int  # offset just past its last character in page_end's text
    tokens: int  # embedding-model tokens


def chunk_pages(pages: Sequence[str], tokenize: Tokenize, max_tokens: int, overlap: int) -> list[Chunk]:
    """Cut the document (its pages joined by a blank line) into chunks of at most `max_tokens` tokens.

    Each chunk ends, in order of preference, at a sentence end, a line end or a word start, taking the
    furthest such cut that keeps the chunk at least half full; the next chunk starts up to `overlap`
    tokens earlier, at a word start. A chunk's text, tokenized again, never exceeds `max_tokens`.
    """
    text = PAGE_BREAK.join(pages)
    page_starts = _page_starts(pages)
    spans = tokenize([text])[0]
    if not spans:
        return []
    starts = [s for s, _ in spans]
    word_starts = [0] + [i for i in range(1, len(spans)) if spans[i][0] > spans[i - 1][1]]
    sentence_starts = _token_boundaries(_SENTENCE_END, text, starts)
    line_starts = _token_boundaries(_LINE_END, text, starts)

    ranges = []
    n, s = len(spans), 0
    while s < n:
        e = n if s + max_tokens >= n else _cut(s, s + max_tokens, (sentence_starts, line_starts, word_starts))
        ranges.append((s, e))
        if e == n:
            break
        s = max(s + 1, _first_at_or_after(word_starts, e - overlap, e) if overlap else e)

    ranges = _enforce_limit(ranges, spans, text, tokenize, max_tokens)
    chunks = []
    for index, (s, e) in enumerate(ranges):
        a, b = spans[s][0], spans[e - 1][1]
        first = bisect.bisect_right(page_starts, a) - 1
        last = bisect.bisect_right(page_starts, b - 1) - 1
        chunks.append(Chunk(index=index, text=text[a:b], page_start=first + 1, page_end=last + 1,
                            start=a - page_starts[first], end=b - page_starts[last], tokens=e - s))
    return chunks


def _page_starts(pages: Sequence[str]) -> list[int]:
    starts, at = [], 0
    for page in pages:
        starts.append(at)
        at += len(page) + len(PAGE_BREAK)
    return starts


def _token_boundaries(pattern: re.Pattern, text: str, starts: list[int]) -> list[int]:
    """Indices of the tokens that start right after each match of `pattern`."""
    found = {bisect.bisect_left(starts, m.end()) for m in pattern.finditer(text)}
    return sorted(i for i in found if 0 < i < len(starts))


def _cut(s: int, limit: int, tiers: Sequence[list[int]]) -> int:
    """The furthest boundary in (s, limit] of the best tier that leaves the chunk at least half full."""
    half = s + (limit - s) // 2
    for boundaries in tiers:
        i = bisect.bisect_right(boundaries, limit) - 1
        if i >= 0 and boundaries[i] > half:
            return boundaries[i]
    return limit  # one "word" longer than half the window: cut inside it


def _first_at_or_after(boundaries: list[int], lo: int, hi: int) -> int:
    i = bisect.bisect_left(boundaries, lo)
    return boundaries[i] if i < len(boundaries) and boundaries[i] < hi else hi


def _enforce_limit(ranges, spans: Spans, text: str, tokenize: Tokenize, max_tokens: int):
    """Tokenize each chunk's text on its own; shrink any that comes out over the limit.

    Cutting inside a word can make the fragment tokenize to more pieces than it had in context.
    """
    for _ in range(8):
        texts = [text[spans[s][0]:spans[e - 1][1]] for s, e in ranges]
        counts = [len(t) for t in tokenize(texts)]
        over = [i for i, c in enumerate(counts) if c > max_tokens]
        if not over:
            return ranges
        for i in over:
            s, e = ranges[i]
            ranges[i] = (s, max(s + 1, e - (counts[i] - max_tokens)))
        # a shrunk chunk may leave a gap before the next one: close it with an extra chunk
        filled = []
        for (s, e), nxt in zip(ranges, ranges[1:] + [(len(spans), len(spans))]):
            filled.append((s, e))
            if e < nxt[0]:
                filled.append((e, nxt[0]))
        ranges = filled
    raise AssertionError("chunker could not fit a chunk within the embedding window")
