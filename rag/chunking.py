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
from typing import Callable, Iterator, Sequence

# Bump when the cutting rules change: chunk ids include it, so a new version re-chunks every file.
CHUNKER_VERSION = 1
PAGE_BREAK = "\n\n"

Spans = list[tuple[int, int]]  # (start, end) character offsets of each token in the text
Tokenize = Callable[[Sequence[str]], list[Spans]]  # batched: one list of spans per text

_SENTENCE_END = re.compile(r"(?:[.!?;:][\"'”’)\]]*\s+|\n[ \t]*\n\s*)")
_LINE_END = re.compile(r"\n\s*")
_WORD_START = re.compile(r"\s\S")
WINDOW_CHARS = 1 << 16  # characters tokenized at a time


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page_start: int  # 1-based
    page_end: int
    start: int  # offset of the chunk's first character in page_start's text
    end: int  # offset just past its last character in page_end's text
    tokens: int  # embedding-model tokens


def chunk_pages(pages: Sequence[str], tokenize: Tokenize, max_tokens: int, overlap: int,
                progress: Callable[[], None] | None = None, window: int = WINDOW_CHARS) -> list[Chunk]:
    """Cut the document (its pages joined by a blank line) into chunks of at most `max_tokens` tokens.

    Each chunk ends, in order of preference, at a sentence end, a line end or a word start, taking the
    furthest such cut that keeps the chunk at least half full; the next chunk starts up to `overlap`
    tokens earlier, at a word start. A chunk's text, tokenized again, never exceeds `max_tokens`.

    The text is tokenized `window` characters at a time (each window starting at a word, where the
    tokens are the same as in the whole text), so memory stays flat however long the document is;
    `progress` is called after each window.
    """
    text = PAGE_BREAK.join(pages)
    page_starts = _page_starts(pages)
    chunks = []
    for a, b, tokens in _chunk_ranges(text, tokenize, max_tokens, overlap, window, progress):
        first = bisect.bisect_right(page_starts, a) - 1
        last = bisect.bisect_right(page_starts, b - 1) - 1
        chunks.append(Chunk(index=len(chunks), text=text[a:b], page_start=first + 1, page_end=last + 1,
                            start=a - page_starts[first], end=b - page_starts[last], tokens=tokens))
    return chunks


def _chunk_ranges(text: str, tokenize: Tokenize, max_tokens: int, overlap: int, window: int,
                  progress: Callable[[], None] | None) -> Iterator[tuple[int, int, int]]:
    """(start char, end char, tokens) of each chunk, window by window."""
    base, first, size = 0, 0, window  # the window's first character; the next chunk's first token in it
    while True:
        end = _window_end(text, base, size)
        final = end == len(text)
        piece = text[base:end]
        spans = tokenize([piece])[0]
        n = len(spans)
        starts = [s for s, _ in spans]
        word_starts = [0] + [i for i in range(1, n) if spans[i][0] > spans[i - 1][1]]
        tiers = (_token_boundaries(_SENTENCE_END, piece, starts), _token_boundaries(_LINE_END, piece, starts),
                 word_starts)
        ranges, s = [], first
        while s < n:
            if s + max_tokens >= n and not final:
                break  # the rest needs the next window
            e = n if s + max_tokens >= n else _cut(s, s + max_tokens, tiers)
            ranges.append((s, e))
            if e == n:
                s = n
                break
            s = max(s + 1, _first_at_or_after(word_starts, e - overlap, e) if overlap else e)
        for a, e in _enforce_limit(ranges, spans, piece, tokenize, max_tokens, s):
            yield base + spans[a][0], base + spans[e - 1][1], e - a
        if progress:
            progress()
        if final or not n:
            if final:
                return
            base, first = end, 0  # nothing but spaces in this window
            continue
        word = word_starts[bisect.bisect_right(word_starts, s) - 1]  # start the next window at a word
        if word == 0 and not ranges:  # no chunk fitted: a longer window
            size *= 2
            continue
        if word == 0:  # no word starts here (no spaces in 64K characters): start at the token itself
            word = s
        base, first, size = base + spans[word][0], s - word, window


def _window_end(text: str, base: int, size: int) -> int:
    """Where a window of about `size` characters from `base` ends: the end of the text, or a word start."""
    if base + size >= len(text):
        return len(text)
    found = _WORD_START.search(text, base + size, base + size + 4096)
    return found.start() + 1 if found else base + size  # a "word" of 4K characters: cut inside it


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


def _enforce_limit(ranges, spans: Spans, text: str, tokenize: Tokenize, max_tokens: int, end: int):
    """Tokenize each chunk's text on its own; shrink any that comes out over the limit. `end`: the token
    where the chunk after the last one starts.

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
        for (s, e), nxt in zip(ranges, ranges[1:] + [(end, end)]):
            filled.append((s, e))
            if e < nxt[0]:
                filled.append((e, nxt[0]))
        ranges = filled
    raise AssertionError("chunker could not fit a chunk within the embedding window")
