"""Read, hash, parse and chunk files in a separate process, a couple of files ahead of the embedder.

Parsing (pypdf) and tokenizing are Python work that holds the GIL; in a thread beside the embedder it
slowed embedding by a quarter on 2 cores (measured). In its own process it overlaps cleanly. The
worker loads no torch: it gets the embedding tokenizer as JSON.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from rag.chunking import Chunk, chunk_pages
from rag.errors import FileError
from rag.loaders import load_pages, read_error_reason
from rag.tokens import count_llama3

LOOKAHEAD = 2  # files prepared ahead of the one being embedded


@dataclass(frozen=True)
class Params:
    tokenizer_json: str
    chunk_tokens: int
    overlap: int
    passwords: tuple[str, ...]


@dataclass
class Prepared:
    path: Path
    sha256: str
    size: int
    pages: int
    chunks: list[Chunk]
    tokens: list[int]  # Llama-3 tokens of each chunk
    seconds: dict[str, float] = field(default_factory=dict)
    note: str = ""  # pages without text, for the report


@dataclass
class Failed:
    path: Path
    status: str  # failed | no_text
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)


def prepare_file(path: Path, params: Params, tokenize) -> Prepared | Failed:
    t0 = time.perf_counter()
    try:
        data = path.read_bytes()
    except OSError as e:
        return Failed(path, "failed", read_error_reason(e))
    sha = hashlib.sha256(data).hexdigest()  # the bytes we index are the bytes we hash
    try:
        pages = load_pages(path, data, params.passwords)
    except FileError as e:
        return Failed(path, e.status, str(e), {"load": time.perf_counter() - t0})
    t1 = time.perf_counter()
    chunks = chunk_pages(pages, tokenize, params.chunk_tokens, params.overlap)
    tokens = count_llama3([c.text for c in chunks])
    empty = [number for number, text in enumerate(pages, 1) if not text.strip()]
    note = f"{_page_ranges(empty)} of {len(pages)}: no extractable text (scanned?)" if empty else ""
    return Prepared(path, sha, len(data), len(pages), chunks, tokens,
                    {"load": t1 - t0, "chunk": time.perf_counter() - t1}, note)


def _page_ranges(numbers: list[int]) -> str:
    """[2, 5, 6, 7] -> 'pages 2, 5-7'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return f"page {text}" if len(numbers) == 1 else f"pages {text}"


_params: Params | None = None
_tokenize = None


def _init(params: Params) -> None:
    """Runs once in the worker: the parameters (with the tokenizer) cross the process boundary once."""
    global _params, _tokenize
    from tokenizers import Tokenizer

    # pypdf logs every repair it makes on a damaged file; those are handled, not the user's business
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    _params = params
    tokenizer = Tokenizer.from_str(params.tokenizer_json)
    _tokenize = lambda texts: [e.offsets for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]  # noqa: E731


def _work(path: Path) -> Prepared | Failed:
    try:
        return prepare_file(path, _params, _tokenize)
    except Exception as e:  # an odd file must not end the batch
        return Failed(path, "failed", f"unexpected error while reading: {type(e).__name__}: {e}")


def prepare_all(paths: Sequence[Path], params: Params) -> Iterator[Prepared | Failed]:
    """Prepared files in the order given; a worker that dies (e.g. out of memory) fails that file only."""
    todo = deque(paths)
    while todo:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                                   initargs=(params,))
        ahead = deque()
        try:
            while todo or ahead:
                while todo and len(ahead) <= LOOKAHEAD:
                    path = todo.popleft()
                    ahead.append((path, pool.submit(_work, path)))
                path, future = ahead.popleft()
                try:
                    yield future.result()
                except BrokenProcessPool:
                    yield Failed(path, "failed", "the parser process died on this file (out of memory?)")
                    todo.extendleft(p for p, _ in reversed(ahead))  # retry the rest in a new worker
                    break
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
