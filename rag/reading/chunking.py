"""Pages -> chunks that fit the embedding model's window, cut at sentence or line ends when possible.

Sizes are counted in the embedding model's own tokens (all-MiniLM-L6-v2 reads 256 word pieces and
silently drops the rest), so every chunk is embedded whole. Each page opens a chunk (only a page of a few
words runs on into the next); a chunk keeps the page it starts on and the page it ends on, with character
offsets into those pages' text.

Tables keep their rows: a line that ends in figures is never cut, and a chunk that starts inside a table
carries the table's heading (its title and column years), which is embedded and searched with it and shown
above it in the prompt; such a chunk leaves room for it in the window.

`chunk_pages` is pure: it takes a function that maps text to token character spans, so it runs with
the real tokenizer or with a whitespace one in tests.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

# Bump when the cutting rules change: chunk ids include it, so a new version re-chunks every file.
CHUNKER_VERSION = 2
PAGE_BREAK = "\n\n"

Spans = list[tuple[int, int]]  # (start, end) character offsets of each token in the text
Tokenize = Callable[[Sequence[str]], list[Spans]]  # batched: one list of spans per text

_SENTENCE_END = re.compile(r"(?:[.!?;:][\"'”’)\]]*\s+|\n[ \t]*\n\s*)")
_LINE_END = re.compile(r"\n\s*")
_WORD_START = re.compile(r"\s\S")
WINDOW_CHARS = 1 << 16  # characters tokenized at a time
MIN_PAGE_TOKENS = 16  # a page with less text than this shares its chunk with the next page
_FIGURE = re.compile(r"\(?-?\$?\d(?:[\d,]*\d)?(?:\.\d+)?%?\)?%?|[—–-]")  # 1,577 (1,577) 12.5% (0.4)% $5 —
_LINE = re.compile(r"[^\n]+")
_BETWEEN_FIGURES = frozenset({"$", "%", "|"})  # "$ 5,363", "2 %", a Word or HTML cell's " | "
_YEAR = re.compile(r"(?:19|20)\d\d")
HEADING_TOKENS = 48  # the room a chunk that starts inside a table keeps for the table's heading
HEADING_LOOKBACK = 6000  # characters above a chunk searched for its table's heading
ROW_CHARS = 1000  # a longer line is no table row


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page_start: int  # 1-based
    page_end: int
    start: int  # offset of the chunk's first character in page_start's text
    end: int  # offset just past its last character in page_end's text
    tokens: int  # embedding-model tokens
    heading: str = ""  # a chunk that starts inside a table: the table's heading (title, column years), embedded with it


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
    for a, b, tokens in _chunk_ranges(text, tokenize, max_tokens, overlap, window, progress, page_starts):
        first = bisect.bisect_right(page_starts, a) - 1
        last = bisect.bisect_right(page_starts, b - 1) - 1
        chunks.append(Chunk(index=len(chunks), text=text[a:b], page_start=first + 1, page_end=last + 1,
                            start=a - page_starts[first], end=b - page_starts[last], tokens=tokens,
                            heading=table_heading(text, a, page_starts[first])))
    headed, room = [i for i, c in enumerate(chunks) if c.heading], _reserve(max_tokens) - 1  # 1: the line break
    for i, spans in zip(headed, tokenize([chunks[i].heading for i in headed])):
        if len(spans) > room:  # a long title: its end, nearest the table, is kept
            chunks[i] = replace(chunks[i], heading=chunks[i].heading[spans[-room][0]:] if room > 0 else "")
    return chunks


def _reserve(max_tokens: int) -> int:
    return min(HEADING_TOKENS, max_tokens // 4)


def embedded_text(chunk: Chunk) -> str:
    """What the embedding model reads of a chunk: its text, under its table's heading when it has one."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


def in_table(text: str) -> bool:
    """Whether a chunk is mostly table: half or more of its lines are rows."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and 2 * sum(map(is_row, lines)) >= len(lines)


def table_heading(text: str, at: int, page_start: int) -> str:
    """When `at` is inside a table (on a row, or below one), the table's heading on its page: up to three
    lines above the table's first row (a statement's title, its period) and that row when it names the years of
    the columns ("(Millions) 2018 2017 2016"). Else ""."""
    if not _in_table(text, at, page_start):
        return ""
    above = text[max(page_start, at - HEADING_LOOKBACK):at].split("\n")[:-1]
    above = above[1:] if page_start < at - HEADING_LOOKBACK else above  # a line cut by the lookback
    top = len(above)
    while top > 0 and (is_row(above[top - 1]) or _is_label(above[top - 1])):
        top -= 1
    block = above[top:]
    first_row = next((i for i, line in enumerate(block) if is_row(line)), None)
    if first_row is None:
        return ""
    title = [line.strip() for line in block[:first_row] if line.strip()][-3:]
    columns = block[first_row]
    if all(_YEAR.fullmatch(w.strip("()$")) for w in _figures(columns)):
        title.append(columns.strip())
    return "\n".join(title)


def _in_table(text: str, at: int, page_start: int) -> bool:
    """Whether `at` is inside a table: on a row, or at the start of a line below one. (A row is a short line:
    the search for its ends stops ROW_CHARS away, so a page of one long line costs no more than another.)"""
    if at <= page_start:
        return False
    line = _line_start(text, page_start, at)
    if line is None:
        return False
    if line < at:
        end = text.find("\n", at, at + ROW_CHARS)
        return end != -1 and is_row(text[line:end])
    above = _line_start(text, page_start, at - 1)
    return above is not None and is_row(text[above:at - 1])


def _line_start(text: str, page_start: int, at: int) -> int | None:
    """The start of the line that `at` is on (or ends at), or None when it is longer than a row can be."""
    lo = max(page_start, at - ROW_CHARS)
    found = text.rfind("\n", lo, at)
    return found + 1 if found != -1 else (lo if lo == page_start else None)


def _figures(line: str) -> list[str]:
    """The figures a line ends with, last first (the signs and separators of _BETWEEN_FIGURES left out)."""
    found = []
    for word in reversed(line[-200:].split()):
        if word in _BETWEEN_FIGURES:
            continue
        if not _FIGURE.fullmatch(word):
            break
        found.append(word)
    return found


def is_row(line: str) -> bool:
    """A line that ends in two or more figures: a table's row."""
    return len(_figures(line)) >= 2


def _is_label(line: str) -> bool:
    """A short line that is no sentence: a table's title or a row group's name ("Cash Flows from Investing
    Activities", "Revenue:")."""
    line = line.strip()
    return 0 < len(line) <= 100 and line[-1] not in ".;"


def _chunk_ranges(text: str, tokenize: Tokenize, max_tokens: int, overlap: int, window: int,
                  progress: Callable[[], None] | None, page_starts: Sequence[int] = ()) -> Iterator[tuple[int, int, int]]:
    """(start char, end char, tokens) of each chunk, window by window."""
    base, first, size = 0, 0, window  # the window's first character; the next chunk's first token in it
    opening = set(page_starts)  # where a page opens, in the text's characters
    while True:
        end = _window_end(text, base, size)
        final = end == len(text)
        piece = text[base:end]
        spans = tokenize([piece])[0]
        n = len(spans)
        starts = [s for s, _ in spans]
        word_starts = [0] + [i for i in range(1, n) if spans[i][0] > spans[i - 1][1]]
        pages = sorted({bisect.bisect_left(starts, p - base) for p in page_starts if base < p < end} - {0, n})
        rows = _rows(piece)
        tiers = (_token_boundaries(_SENTENCE_END, piece, starts, rows), _token_boundaries(_LINE_END, piece, starts),
                 word_starts)
        def room(s: int) -> int:  # tokens a chunk from token s may hold: less inside a table, for its heading
            at = base + spans[s][0]
            inside = _in_table(text, at, page_starts[bisect.bisect_right(page_starts, at) - 1]) if page_starts else False
            return max_tokens - _reserve(max_tokens) if inside else max_tokens

        ranges, s = [], first
        while s < n:
            limit = min(s + room(s), n)
            e = _page_end(s, limit, pages, base + spans[s][0] in opening)
            if e is None and limit == n and not final:
                break  # the rest needs the next window
            if e is None:
                e = n if limit == n else _cut(s, limit, tiers)
            ranges.append((s, e))
            if e == n:
                s = n
                break
            at_page = pages and pages[min(bisect.bisect_left(pages, e), len(pages) - 1)] == e
            if at_page or not overlap:
                s = e
            else:  # the overlap starts at a line start when one is near: a row whole, never its last figures
                line = _first_at_or_after(tiers[1], e - overlap, e)
                if line == e and not _first_at_or_after(tiers[1], e, e + 1) == e:
                    line = _first_at_or_after(word_starts, e - overlap, e)  # prose cut at a sentence's end
                s = max(s + 1, line)
        for a, e in _enforce_limit(ranges, spans, piece, tokenize, room, s):
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


def _token_boundaries(pattern: re.Pattern, text: str, starts: list[int], rows: Sequence[tuple[int, int]] = ()) -> list[int]:
    """Indices of the tokens that start right after each match of `pattern`, except inside a table row."""
    found = {bisect.bisect_left(starts, m.end()) for m in pattern.finditer(text) if not _inside(rows, m.end())}
    return sorted(i for i in found if 0 < i < len(starts))


def _rows(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line that may be a table row (it ends in a figure): never cut inside."""
    return [(line.start(), line.end()) for line in _LINE.finditer(text) if _figures(line.group())]


def _inside(rows: Sequence[tuple[int, int]], at: int) -> bool:
    i = bisect.bisect_right(rows, (at, float("inf"))) - 1
    return i >= 0 and rows[i][0] < at < rows[i][1]


def _page_end(s: int, limit: int, pages: list[int], opens_page: bool) -> int | None:
    """The first page start a chunk from token `s` reaches within `limit`: the chunk ends with its page, so the
    next page's first chunk opens with its heading (a statement's title, a clause's number) and is embedded
    from it. A chunk that opens a page of under MIN_PAGE_TOKENS goes on into the next."""
    i = bisect.bisect_left(pages, s + (MIN_PAGE_TOKENS if opens_page else 1))
    return pages[i] if i < len(pages) and pages[i] <= limit else None


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


def _enforce_limit(ranges, spans: Spans, text: str, tokenize: Tokenize, room: Callable[[int], int], end: int):
    """Tokenize each chunk's text on its own; shrink any that comes out over its limit (`room` of its first
    token). `end`: the token where the chunk after the last one starts.

    Cutting inside a word can make the fragment tokenize to more pieces than it had in context.
    """
    for _ in range(8):
        texts = [text[spans[s][0]:spans[e - 1][1]] for s, e in ranges]
        counts = [len(t) for t in tokenize(texts)]
        limits = [room(s) for s, _ in ranges]
        over = [i for i, c in enumerate(counts) if c > limits[i]]
        if not over:
            return ranges
        for i in over:
            s, e = ranges[i]
            ranges[i] = (s, max(s + 1, e - (counts[i] - limits[i])))
        # a shrunk chunk may leave a gap before the next one: close it with an extra chunk
        filled = []
        for (s, e), nxt in zip(ranges, ranges[1:] + [(end, end)]):
            filled.append((s, e))
            if e < nxt[0]:
                filled.append((e, nxt[0]))
        ranges = filled
    raise AssertionError("chunker could not fit a chunk within the embedding window")
