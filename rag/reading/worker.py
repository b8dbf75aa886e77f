"""Read, hash, parse and chunk files in a worker process, a couple of files ahead of the embedder.

Why a process: parsing (pypdf) and tokenizing are Python work that holds the GIL; in a thread beside
the embedder it slowed embedding by a quarter on 2 cores (measured). In its own process it overlaps
cleanly, and it can be held to limits that one bad file must not break:

- **Time.** The worker reports progress as it reads (each page; each 64K characters of text). A file
  fails when one step makes no progress for `parse_timeout` seconds (the main process, waiting for
  it, kills the worker and starts a fresh one for the next files), or when the whole file takes more
  than `parse_timeout` x (2 + steps / 6) (the worker stops reading it itself).
- **Memory.** The worker caps its own data segment at `parse_memory_mb` (RLIMIT_DATA): an allocation
  past it fails in the worker, never on the machine, and the file fails with that reason.
- **Size.** A file larger than `max_file_mb` is not read (the walk reports it; checked here again).
- **Lifetime.** The worker never outlives the main process, however that ends (kill -9 included): it
  exits when its stdin closes, and on Linux the kernel kills it when its parent dies. It runs in its
  own process group, so Ctrl-C reaches only the main process, which stops it.

The worker is a plain `python -m rag.reading.worker` subprocess exchanging pickled messages over its stdin
and stdout: nothing else is re-imported, and no helper process is left behind. It loads no torch: it
gets the embedding tokenizer as JSON.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from rag.reading.chunking import WINDOW_CHARS, Chunk, chunk_pages
from rag.errors import FileError
from rag.reading.filetypes import Options, load_pages
from rag.paths import PrintableFormatter, shown
from rag.reading.walk import open_regular, read_error_reason, too_large

LOOKAHEAD = 2  # files prepared ahead of the one being embedded
PROGRESS_EVERY = 1.0  # seconds between progress messages, at most (a quarter of parse_timeout when that is less)
LONGEST_TOKEN = 100  # characters: a longer "word" (the embedder reads it as one [UNK]) counts as several
COUNT_BATCH = 2000  # chunks counted in Llama-3 tokens between progress messages
STEPS_WITHOUT_SIZE = 60  # a file earns time for at most this many pages (steps), plus one per KB of its size
STARTUP_TIMEOUT = 300.0  # seconds a new worker may take to start (Python, imports, the tokenizer) on a busy machine
_HEADER = struct.Struct(">Q")


@dataclass(frozen=True)
class Params:
    tokenizer_json: str
    chunk_tokens: int
    overlap: int
    passwords: tuple[str, ...]
    timeout: float = 30.0  # parse_timeout
    memory_mb: int = 4096  # parse_memory_mb
    max_bytes: int = 100 * 2**20  # max_file_mb
    root: str = "/"  # links are followed only to files inside this folder
    type_modules: tuple[str, ...] = ()  # modules of file types registered outside rag.reading.filetypes: imported too
    ocr: bool = True  # read scanned pages by OCR


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
    peak_mb: float = 0.0  # the worker's peak memory so far
    texts: list[str] = field(default_factory=list)  # each page's text, kept for quotes
    ocr: tuple[int, ...] = ()  # the pages whose text came from OCR
    sections: tuple[str, ...] = ()  # a document without pages: each page's section label (filetypes.sections)


@dataclass
class Failed:
    path: Path
    status: str  # failed | no_text
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)
    sha256: str = ""  # the bytes whose reading came to this ("" when they were not read: it says nothing of them)


class _TooSlow(FileError):
    """The whole file took longer than its time limit."""


# --- the main process's side ------------------------------------------------------------------------

def prepare_all(paths: Sequence[Path], params: Params, on_step: Callable[[Path, str], None] | None = None
                ) -> Iterator[Prepared | Failed]:
    """Prepared files in the order given. A file that breaks a limit, or kills the worker, fails alone:
    a fresh worker goes on with the rest. Closing the iterator stops the worker. `on_step(path, where)`
    hears the worker's progress on the file it reads ("page 3 of 40", "OCR of scanned page 2 of 8")."""
    todo = deque(paths)
    worker: _Worker | None = None
    try:
        while todo or (worker and worker.jobs):
            if worker is None:
                worker = _Worker(params, on_step)
            while todo and len(worker.jobs) <= LOOKAHEAD:
                worker.submit(todo.popleft())
            item, alive = worker.result()
            if not alive:  # the rest of its jobs go to a fresh worker, in order
                todo.extendleft(reversed(worker.jobs))
                worker.close()
                worker = None
            yield item
    finally:
        if worker is not None:
            worker.close()


class _Worker:
    def __init__(self, params: Params, on_step: Callable[[Path, str], None] | None = None):
        self.params, self.on_step = params, on_step
        self.jobs: deque[Path] = deque()  # sent, no result yet; the first is the one being read
        self.where = ""  # the first job's last reported step
        self.sha256 = ""  # the first job's bytes, once the worker has read and hashed them
        self.ready = False  # started: from then on, silence means a file is stuck
        here = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
               "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.reading.worker", str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, process_group=0)
        self._fd = self.proc.stdout.fileno()
        self._buffer = bytearray()
        self._send(params)

    def submit(self, path: Path) -> None:
        self.jobs.append(path)
        self._send(path)

    def result(self) -> tuple[Prepared | Failed, bool]:
        """The first job's result, and whether the worker is still alive to read the rest."""
        path = self.jobs[0]
        while True:
            waited = self.params.timeout if self.ready else max(self.params.timeout, STARTUP_TIMEOUT)
            try:
                message = self._receive(waited)
            except (EOFError, OSError):
                self.jobs.popleft()
                return Failed(path, "failed", self._death(), sha256=self._read()), False
            if message is None:  # no word for `waited` seconds while we waited: stuck on one step
                self.jobs.popleft()
                self.close()
                if not self.ready:
                    return Failed(path, "failed", f"the parser process did not start within {waited:g} s"), False
                return Failed(path, "failed", (
                    f"stopped after {waited:g} s without progress ({self.where or 'opening it'}): the file is too "
                    "slow to read (raise parse_timeout, e.g. RAG_PARSE_TIMEOUT, to give it longer)"),
                    sha256=self._read()), False
            kind, body = message
            if kind == "ready":
                self.ready = True
                continue
            if kind == "progress":
                self.where = body
                if self.on_step:
                    self.on_step(path, body)
                continue
            if kind == "hashed":
                self.sha256 = body
                continue
            self.jobs.popleft()
            self.where = self.sha256 = ""
            return body, True

    def _read(self) -> str:
        """The sha256 of the bytes the first job was stopped on (and forget it: the next job is another file)."""
        sha, self.sha256 = self.sha256, ""
        return sha

    def close(self) -> None:
        """Stop the worker and reap it (its stdin closes: an idle worker exits by itself)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:  # and what it started (Tesseract on scanned pages): the worker leads its own process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # it closed its output but lingers
            self.close()
            code = self.proc.returncode
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        return (f"the parser process died on this file ({how}, {self.where or 'opening it'}): it may need more than "
                f"the {self.params.memory_mb} MB it may use (raise parse_memory_mb), or the file crashes the parser")

    def _send(self, obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_HEADER.pack(len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died: the next result() says why

    def _receive(self, timeout: float):
        """The next message, or None when no byte came for `timeout` seconds; EOFError when it is gone."""
        while True:
            if len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if len(self._buffer) >= _HEADER.size + size:
                    frame = bytes(self._buffer[_HEADER.size:_HEADER.size + size])
                    del self._buffer[:_HEADER.size + size]
                    return pickle.loads(frame)
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return None
            data = os.read(self._fd, 1 << 20)
            if not data:
                raise EOFError
            self._buffer += data


# --- the worker's side ------------------------------------------------------------------------------

def prepare_file(path: Path, params: Params, tokenize, step: Callable[..., None] = lambda where, units=0: None,
                 hashed: Callable[[str], None] = lambda sha256: None) -> Prepared | Failed:
    """Read, hash, parse, chunk and count one file. `step(where, units)` is called as it goes (units: how
    many steps the file will take, once known); `hashed(sha256)` once its bytes are read. A failure after the
    bytes are read names them (Failed.sha256): the indexer remembers what reading them came to."""
    t0 = time.perf_counter()
    try:
        with open_regular(path, Path(params.root)) as f:  # as the walk saw it, even if swapped since
            data = f.read(params.max_bytes + 1)
        if len(data) > params.max_bytes:  # it grew since the walk
            return Failed(path, "failed", too_large(os.stat(path).st_size, params.max_bytes))
    except OSError as e:
        return Failed(path, "failed", read_error_reason(e))
    except FileError as e:
        return Failed(path, e.status, str(e))
    sha, size = hashlib.sha256(data).hexdigest(), len(data)  # the bytes we index are the bytes we hash
    hashed(sha)
    most = STEPS_WITHOUT_SIZE + size // 1024  # steps that earn time: a 600 KB file of 99,000 pages gets 660

    def page(done: int, total: int, doing: str = "page") -> None:
        step(f"{doing} {done + 1} of {total}", min(total, most))

    done = [0]

    def chunked() -> None:
        done[0] += 1
        step(f"chunking, {done[0] * WINDOW_CHARS // 1024:,} K characters in")

    try:
        read = load_pages(path, data, Options(params.passwords, params.ocr), page)
        pages = read.pages
        del data  # only the text from here on
        t1 = time.perf_counter()
        windows = sum(len(p) for p in pages) // WINDOW_CHARS
        step("chunking", min(most, max(len(pages), windows)))
        chunks = chunk_pages(pages, tokenize, params.chunk_tokens, params.overlap, chunked)
        tokens = _count(chunks, step)
    except FileError as e:  # a reason from the loader, or the time limit
        return Failed(path, e.status, str(e), {"load": time.perf_counter() - t0}, sha)
    except MemoryError:
        return Failed(path, "failed", needs_memory(params), sha256=sha)
    except Exception as e:  # an odd file must not end the batch
        return Failed(path, "failed", unexpected(e), sha256=sha)
    empty = [number for number, text in enumerate(pages, 1) if not text.strip()]
    notes = [f"{_page_ranges(list(read.ocr))} of {len(pages)} read by OCR"] if read.ocr else []
    notes += [f"{_page_ranges(empty)} of {len(pages)}: no extractable text (scanned?)"] if empty else []
    return Prepared(path, sha, size, len(pages), chunks, tokens,
                    {"load": t1 - t0, "chunk": time.perf_counter() - t1}, "; ".join(notes), _peak_mb(), pages,
                    read.ocr, read.sections)


def _count(chunks: list[Chunk], step) -> list[int]:
    from rag.tokens import count_llama3

    tokens: list[int] = []
    for lo in range(0, len(chunks), COUNT_BATCH):
        tokens += count_llama3([c.text for c in chunks[lo:lo + COUNT_BATCH]])
        step(f"counting tokens, {lo + COUNT_BATCH:,} chunks in")
    return tokens


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


def _peak_mb() -> float:
    """This process's peak resident memory (getrusage would count the parent's, from before exec)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        return 0.0


def tokenizer_from_json(tokenizer_json: str):
    """Text -> token character spans with the embedding model's tokenizer; a token longer than
    LONGEST_TOKEN characters (a "word" the model reads as one [UNK]) counts as one per LONGEST_TOKEN
    characters, so no chunk grows without bound on text without spaces."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)

    def tokenize(texts):
        out = []
        for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
            spans = encoding.offsets
            if any(b - a > LONGEST_TOKEN for a, b in spans):
                spans = [(lo, min(b, lo + LONGEST_TOKEN))
                         for a, b in spans for lo in range(a, max(b, a + 1), LONGEST_TOKEN)]
            out.append(spans)
        return out

    return tokenize


class _Clock:
    """One file's time: progress messages to the main process, and the whole-file limit."""

    def __init__(self, send: Callable, timeout: float):
        self.send, self.timeout, self.every = send, timeout, min(PROGRESS_EVERY, timeout / 4)
        self.started = self.last = time.monotonic()
        self.blocked = 0.0  # time spent waiting for the main process to read our messages: not ours
        self.units = 1

    def step(self, where: str, units: int = 0) -> None:
        known, self.units = self.units, max(self.units, units)
        now = time.monotonic()
        limit = self.timeout * (2 + self.units / 6)
        if now - self.started - self.blocked > limit:
            raise _TooSlow(f"reading took longer than its limit of {limit:.0f} s ({where}; the limit is "
                           f"parse_timeout x (2 + pages / 6)): raise parse_timeout, e.g. RAG_PARSE_TIMEOUT, to read it")
        if now - self.last >= self.every or self.units != known:
            self.send(("progress", where))
            self.last = time.monotonic()
            self.blocked += self.last - now


_reading = [""]  # the file the worker is on, for its log lines


def _name_the_file(record: logging.LogRecord) -> bool:
    record.file = _reading[0]
    return True


def _work(path: Path, params: Params, tokenize, send) -> Prepared | Failed:
    _reading[0] = shown(path.name)
    clock = _Clock(send, params.timeout)
    send(("progress", "opening it"))
    try:
        return prepare_file(path, params, tokenize, clock.step, lambda sha256: send(("hashed", sha256)))
    except FileError as e:  # before its bytes were read
        return Failed(path, e.status, str(e))
    except MemoryError:
        return Failed(path, "failed", needs_memory(params))
    except Exception as e:  # an odd file must not end the batch
        return Failed(path, "failed", unexpected(e))


def needs_memory(params: Params) -> str:
    return (f"needs more memory than the {params.memory_mb} MB the parser may use (raise parse_memory_mb, e.g. "
            "RAG_PARSE_MEMORY_MB, to read it)")


def unexpected(e: Exception) -> str:
    said = str(e) if len(str(e)) < 200 else str(e)[:197] + "..."
    return (f"unexpected error while reading ({type(e).__name__}: {said}): the file may be damaged; if it opens in "
            "its own program, save it again from there; if it still fails, report this as a bug")


def _limit_memory(megabytes: int) -> None:
    try:
        import resource
    except ImportError:  # not a POSIX system: no cap
        return
    cap = megabytes * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill us when the main process dies; if it already has, go."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def _read(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _serve(parent: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the main process, which stops us
    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but our messages may go into the main process's pipe
    # pypdf logs every repair it makes on a damaged file; those are handled, not the user's business.
    # Our warnings name their file, and go out printable: their text can come from inside a document.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("rag: %(file)s: %(message)s"))
    handler.addFilter(_name_the_file)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    params: Params = _read(inbox)
    for module in params.type_modules:
        importlib.import_module(module)  # it registers its file type in this process too
    tokenize = tokenizer_from_json(params.tokenizer_json)
    _limit_memory(params.memory_mb)
    jobs: queue.Queue[Path] = queue.Queue()

    def send(message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        outbox.write(_HEADER.pack(len(data)) + data)
        outbox.flush()

    send(("ready", None))

    def listen() -> None:  # stdin closes when the main process is done with us, or dies: then we go
        try:
            while True:
                jobs.put(_read(inbox))
        except (EOFError, OSError, pickle.UnpicklingError):
            os._exit(0)

    threading.Thread(target=listen, daemon=True).start()
    while True:
        path = jobs.get()
        result = _work(path, params, tokenize, send)
        try:
            send(("result", result))
        except MemoryError:
            send(("result", Failed(path, "failed", f"its text needs more memory than the {params.memory_mb} "
                                                   "MB the parser may use (raise parse_memory_mb)")))


if __name__ == "__main__":
    from rag.reading import worker  # this module under its own name, so what it pickles unpickles on the other side

    try:
        worker._serve(int(sys.argv[1]))
    except (BrokenPipeError, EOFError):  # the main process is gone (perhaps before it said what to do)
        os._exit(0)
