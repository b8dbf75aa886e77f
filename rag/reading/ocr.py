"""OCR for pages without a text layer (a contract scanned on an office copier), offline, with Tesseract.

Tesseract comes from Debian (`apt-get install tesseract-ocr tesseract-ocr-eng`: its English model is in the
package, nothing is downloaded) and runs as a subprocess per page image, one thread each, as many at once as
there are cores (at most OCR_WORKERS). Chosen by measurement, on cuad-scanned's 200 dpi black-and-white
office scans against the born-digital originals (share of the original's word trigrams found), on a busy
2-core machine: Tesseract 5.3 at 200 dpi 2.55 s a page, 0.978; at 300 dpi 3.0 s, 0.978; at 150 dpi 2.1 s,
0.959; RapidOCR (PP-OCRv4 ONNX models from its wheel) 17 s a page, 0.959: it uses every core for one page
and runs words together ("shall.mean").

Nothing here knows about PDFs: a caller renders each page (rag.reading.filetypes.pdf) and gets its text back.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Iterable, Iterator

log = logging.getLogger(__name__)
# Tesseract puts a blank line between blocks (a heading and its paragraph); PDFium's text of a born-digital
# page has one line per printed line and none blank: OCR text is given that shape, so quotes and chunks are
# cut the same way in both (a clause's heading opens its sentence, rag.quotes)
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")

DPI = 200  # office scans are made at 200-300 dpi; 300 read no better here and cost a fifth more
MAX_PIXELS = 40_000_000  # a larger page is rendered smaller (A0 at 200 dpi is 61M pixels; letter size, 3.7M)
MAX_SIDE = 32000  # pixels a side: Tesseract refuses an image over 32,767 ("Image too large"); a PDF page may be 200 in
OCR_WORKERS = 4  # pages read at once, at most (and at most one per core)
HEARTBEAT = 0.2  # seconds between signs of life while Tesseract reads (a parser silent for parse_timeout is stopped)
PAGE_TIMEOUT = 120.0  # seconds for one page: a page that takes longer is left without text (an OcrError)
INSTALL = "apt-get install tesseract-ocr tesseract-ocr-eng"
STDERR_HEAD, STDERR_TAIL = 65536, 16384  # bytes of Tesseract's messages looked at, from its start and its end
# Tesseract's messages that say nothing about a failure: progress notes and warnings it prints on pages it reads
_NOISE = re.compile(r"(?i)(estimating resolution as|warning|detected \d+ diacritics|image too small|line cannot be "
                    r"recognized|empty page|tesseract open source|objectcache|page \d+\b)")
# what a line says went wrong -> what to tell the person ({said}: the line)
_KNOWN = (
    (re.compile(r"(?i)bad_alloc|malloc fail|cannot allocate|out of memory|thread creation failed"),
     "Tesseract ran out of memory ({said}): it may use what the parser may, parse_memory_mb; raise it "
     "(e.g. RAG_PARSE_MEMORY_MB=8192) and ingest again"),
    (re.compile(r"(?i)failed loading language|could not initiali[sz]e tesseract|traineddata"),
     "Tesseract could not load its English model ({said}): " + INSTALL),
    (re.compile(r"(?i)image too large"),
     "the page image is larger than Tesseract reads ({said}): render it smaller"),
    (re.compile(r"(?i)pixread|cannot be read|unknown format|no pix returned|pix not read"),
     "Tesseract could not read the page image ({said}): the page may be damaged; if other scans fail too, check "
     "that `tesseract --version` runs"),
)


@lru_cache(maxsize=1)
def version() -> str | None:
    """'tesseract 5.3.0', or None when Tesseract is not installed (or has no English model)."""
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=30)
        if "eng" not in out.stdout.split():
            log.warning("Tesseract has no English model: OCR is off (%s)", INSTALL)
            return None
        first = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("Tesseract could not run (%s): OCR is off", e)
        return None
    return first.splitlines()[0].strip() if first.strip() else "tesseract"


class OcrError(Exception):
    """Tesseract could not read a page; str(e) says what went wrong and what to do."""


def recognize(image: bytes, running: set | None = None) -> str:
    """The text of one page image (any format Tesseract reads: PGM, PNG ...). Raises OcrError when Tesseract
    fails or takes over PAGE_TIMEOUT. `running`: where the process is kept while it runs, for recognize_all to
    stop it (a page stopped that way is "" without a word)."""
    if not image:
        return ""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one thread a page: pages run side by side instead
    # its messages go to a file: under a memory cap Tesseract can write a million lines of them
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen([shutil.which("tesseract") or "tesseract", "stdin", "stdout", "-l", "eng"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env)
        except OSError as e:
            raise OcrError(f"Tesseract could not start ({e}): check that `tesseract --version` runs; if not, "
                           f"{INSTALL}") from e
        if running is not None:
            running.add(proc)
        try:
            out, _ = proc.communicate(image, timeout=PAGE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise OcrError(f"Tesseract took over {PAGE_TIMEOUT:.0f} s on the page") from None
        finally:
            stopped = running is not None and proc not in running  # recognize_all stopped it: not a failure
            if running is not None:
                running.discard(proc)
        if proc.returncode != 0:
            if stopped:
                return ""
            errors.seek(0)
            said = errors.read(STDERR_HEAD)
            errors.seek(max(errors.tell(), os.fstat(errors.fileno()).st_size - STDERR_TAIL))
            raise OcrError(failure(said + b"\n" + errors.read(), proc.returncode))
    return _BLANK_LINES.sub("\n", out.decode("utf-8", "replace").replace("\f", "")).strip()


def failure(stderr: bytes, returncode: int) -> str:
    """What went wrong, from Tesseract's messages and exit status, and what to do: the line that says it, not
    its progress notes ("Estimating resolution as 150") or warnings."""
    lines = [" ".join(line.split()) for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line and not _NOISE.match(line)]
    for marker, advice in _KNOWN:
        said = next((line for line in lines if marker.search(line)), None)
        if said is not None:
            return advice.format(said=_short(said))
    how = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    said = f"{_short(lines[0])}; {how}" if lines else how
    return (f"Tesseract failed ({said}): check that `tesseract --version` runs and reinstall it if not ({INSTALL}); "
            "then ingest again with --retry-failed")


def _short(line: str) -> str:
    return line if len(line) <= 160 else line[:157] + "..."


def recognize_all(images: Iterable[tuple[int, Callable[[], bytes]]], waiting: Callable[[], None] = lambda: None
                  ) -> Iterator[tuple[int, str, str]]:
    """(key, text, problem) for each (key, make the image) in order: problem is "" or, for a page Tesseract could
    not read (its text then ""), what went wrong and what to do. Images are made here, one at a time (PDFium is
    not thread-safe), while up to OCR_WORKERS pages are being read. `waiting` is called after each image is
    made and every HEARTBEAT seconds while a page is being read (the parsing worker's sign of life). Leaving
    early stops every Tesseract."""
    workers = max(1, min(OCR_WORKERS, os.cpu_count() or 1))
    pending: list[tuple[int, Future]] = []
    running: set = set()
    pool = ThreadPoolExecutor(workers)

    def done(future: Future) -> tuple[str, str]:
        while True:
            try:
                return future.result(timeout=HEARTBEAT), ""
            except TimeoutError:
                waiting()
            except OcrError as e:
                return "", str(e)

    try:
        for key, make in images:
            image = make()
            waiting()  # rendering a page takes a while too: a sign of life after each
            pending.append((key, pool.submit(recognize, image, running)))
            while len(pending) > workers:
                first, future = pending.pop(0)
                yield first, *done(future)
        for key, future in pending:
            yield key, *done(future)
    finally:
        stopping = list(running)
        running.clear()  # before the kill: a page stopped here is no failure to report
        for proc in stopping:
            proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
