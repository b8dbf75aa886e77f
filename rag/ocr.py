"""OCR for pages without a text layer (a contract scanned on an office copier), offline, with Tesseract.

Tesseract comes from Debian (`apt-get install tesseract-ocr tesseract-ocr-eng`: its English model is in the
package, nothing is downloaded) and runs as a subprocess per page image, one thread each, as many at once as
there are cores (at most OCR_WORKERS). Chosen by measurement, on cuad-scanned's 200 dpi black-and-white
office scans against the born-digital originals (share of the original's word trigrams found), on a busy
2-core machine: Tesseract 5.3 at 200 dpi 2.55 s a page, 0.978; at 300 dpi 3.0 s, 0.978; at 150 dpi 2.1 s,
0.959; RapidOCR (PP-OCRv4 ONNX models from its wheel) 17 s a page, 0.959: it uses every core for one page
and runs words together ("shall.mean").

Nothing here knows about PDFs: a caller renders each page (rag.filetypes.pdf) and gets its text back.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
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
OCR_WORKERS = 4  # pages read at once, at most (and at most one per core)
HEARTBEAT = 0.2  # seconds between signs of life while Tesseract reads (a parser silent for parse_timeout is stopped)
PAGE_TIMEOUT = 120.0  # seconds for one page: a page that takes longer is left empty, with a warning
INSTALL = "apt-get install tesseract-ocr tesseract-ocr-eng"


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


def recognize(image: bytes, running: set | None = None) -> str:
    """The text of one page image (any format Tesseract reads: PGM, PNG ...); "" (with a warning) when
    Tesseract fails or takes over PAGE_TIMEOUT. `running`: where the process is kept while it runs, for
    recognize_all to stop it."""
    if not image:
        return ""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one thread a page: pages run side by side instead
    try:
        proc = subprocess.Popen([shutil.which("tesseract") or "tesseract", "stdin", "stdout", "-l", "eng"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    except OSError as e:
        log.warning("OCR of a page could not start Tesseract (%s): left empty", e)
        return ""
    if running is not None:
        running.add(proc)
    try:
        out, err = proc.communicate(image, timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        log.warning("OCR of a page took over %.0f s: left empty", PAGE_TIMEOUT)
        return ""
    finally:
        if running is not None:
            running.discard(proc)
    if proc.returncode != 0:
        log.warning("OCR of a page failed (%s): left empty", err.decode("utf-8", "replace").strip()[:200])
        return ""
    return _BLANK_LINES.sub("\n", out.decode("utf-8", "replace").replace("\f", "")).strip()


def recognize_all(images: Iterable[tuple[int, Callable[[], bytes]]], waiting: Callable[[], None] = lambda: None
                  ) -> Iterator[tuple[int, str]]:
    """(key, text) for each (key, make the image) in order; images are made here, one at a time (PDFium is
    not thread-safe), while up to OCR_WORKERS pages are being read. `waiting` is called after each image is
    made and every HEARTBEAT seconds while a page is being read (the parsing worker's sign of life). Leaving
    early stops every Tesseract."""
    workers = max(1, min(OCR_WORKERS, os.cpu_count() or 1))
    pending: list[tuple[int, Future]] = []
    running: set = set()
    pool = ThreadPoolExecutor(workers)

    def done(future: Future) -> str:
        while True:
            try:
                return future.result(timeout=HEARTBEAT)
            except TimeoutError:
                waiting()

    try:
        for key, make in images:
            image = make()
            waiting()  # rendering a page takes a while too: a sign of life after each
            pending.append((key, pool.submit(recognize, image, running)))
            while len(pending) > workers:
                first, future = pending.pop(0)
                yield first, done(future)
        for key, future in pending:
            yield key, done(future)
    finally:
        for proc in list(running):
            proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
