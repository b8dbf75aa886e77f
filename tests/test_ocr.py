"""Scanned pages read by OCR (Tesseract, from Debian), from a real office scan: data/scanned/ holds the NETGEAR
agreement of data/contracts/ as 8 black-and-white page images with no text layer."""

import json
import os
import shutil
import subprocess
import sys

from rag.config import Settings
from rag.engine import Engine
from rag.reading.filetypes import Options, load_pages
from rag.indexer import ingest
from rag.backends.openai import RetrievalOnly
from rag.report import NO_TEXT, OK
from rag.retrieval import Retriever

from eval.metrics import trigrams
from helpers import CONTRACTS, ROOT, wait_for

SCAN = ROOT / "data" / "scanned" / "SCAN_NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"
ORIGINAL = CONTRACTS / "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"
GOVERNING_LAW = "Which state's law governs the agreement?"


def test_ocr_reads_a_scan_nearly_as_the_born_digital_text_says(tmp_path):
    read = load_pages(SCAN, SCAN.read_bytes())
    original = load_pages(ORIGINAL, ORIGINAL.read_bytes()).pages
    assert read.ocr == tuple(range(1, 9)) and len(read.pages) == len(original) == 8
    wanted = trigrams(" ".join(original))
    assert len(wanted & trigrams(" ".join(read.pages))) / len(wanted) > 0.9  # 0.97 measured here


def test_a_scan_is_left_unread_with_ocr_off_then_read_once_it_is_on(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SCAN, folder / SCAN.name)
    settings = Settings(index_dir=tmp_path / "index", collection="scans", ocr=False)
    (off,) = ingest(folder, settings, embedder=embedder).files
    assert off.status == NO_TEXT and "OCR is off" in off.reason
    events = []
    (on,) = ingest(folder, settings.replace(ocr=True), embedder=embedder,
                   on_event=lambda kind, data: events.append((kind, data))).files  # OCR is in the signature
    assert on.status == OK and on.reason == "pages 1-8 of 8 read by OCR" and on.chunks > 0
    steps = [data["where"] for kind, data in events if kind == "reading"]
    assert "OCR of scanned page 8 of 8" in steps or any(s.startswith("OCR of scanned page") for s in steps), steps

    engine = Engine(settings, llm=RetrievalOnly(), retriever=Retriever(settings, embedder))
    try:
        answer = engine.ask(GOVERNING_LAW, [SCAN.name], answer="quote")
    finally:
        engine.close()
    assert not answer.abstained and "California" in answer.quotes[0].shown()
    assert all(q.ocr for q in answer.quotes) and all(c.ocr for c in answer.citations)

    asked = subprocess.run([sys.executable, "-m", "rag.cli", "ask", GOVERNING_LAW, "--doc", SCAN.name, "--index",
                            str(settings.index_dir), "--collection", settings.collection, "--answer", "quote"],
                           capture_output=True, text=True, cwd=ROOT)
    assert asked.returncode == 0, asked.stderr
    assert "California" in asked.stdout and "scanned page, read by OCR" in asked.stdout


def test_without_tesseract_a_scan_says_how_to_install_it(tmp_path):
    """Tesseract not on the PATH: the scan is `no_text`, and the reason names the Debian packages."""
    script = ("import sys; from pathlib import Path; from rag.reading.filetypes import load_pages; "
              "from rag.errors import FileError\np = Path(sys.argv[1])\ntry:\n    load_pages(p, p.read_bytes())\nexcept FileError as e:\n"
              "    print(e.status, e)")
    out = subprocess.run([sys.executable, "-c", script, str(SCAN)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PATH": str(tmp_path)})
    assert out.stdout.strip() == ("no_text no extractable text (scanned? OCR needs Tesseract: apt-get install "
                                  "tesseract-ocr tesseract-ocr-eng)"), out.stderr


def test_ocr_on_and_off_are_documents_of_different_signatures():
    from rag.reading.filetypes import for_path

    pdf = for_path("scan.pdf")
    assert pdf.reader(Options(ocr=True)) != pdf.reader(Options(ocr=False))
    assert json.dumps(Settings().ocr) == "true"  # on by default


def test_a_tesseract_that_hangs_fails_the_file_by_its_time_limit_and_leaves_no_process(tmp_path, embedder,
                                                                                       monkeypatch):
    """A Tesseract that never answers (a stand-in program on the PATH that sleeps): the parsing worker keeps
    saying it is alive while it waits, so the file fails by its whole-file time limit with that reason, not
    as a silent worker; every Tesseract it started is gone afterwards, and the rest of the folder is indexed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tesseract"
    fake.write_text('#!/bin/sh\ncase "$1" in\n  --list-langs) echo "List of available languages (1):"; echo eng;;\n'
                    '  --version) echo "tesseract 5.3.0 (hangs)";;\n  *) exec sleep 987;;\nesac\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SCAN, folder / SCAN.name)
    shutil.copy(ORIGINAL, folder / ORIGINAL.name)
    # 5 s: signs of life come every second, so a busy machine's scheduling cannot pass for silence (at 2 s,
    # one run of a full suite saw none for 2 s); the file's limit is then 5 x (2 + 8 / 6) = 17 s
    settings = Settings(index_dir=tmp_path / "index", collection="hangs", parse_timeout=5.0)
    report = {f.path.rsplit("/", 1)[-1]: f for f in ingest(folder, settings, embedder=embedder).files}
    scan = report[SCAN.name]
    assert scan.status == "failed" and "took longer than its limit" in scan.reason, scan
    assert report[ORIGINAL.name].status == OK

    def left() -> str:
        return subprocess.run(["pgrep", "-f", "sleep 987"], capture_output=True, text=True).stdout.strip()

    assert wait_for(lambda: not left(), timeout=30), left()


def test_an_ocr_failure_says_what_went_wrong_and_what_to_do(tmp_path, embedder, monkeypatch):
    """Issue 20, small things: a Tesseract that failed was reported by the first line of its messages, a progress
    note ("Estimating resolution as 200"), and the scan as having no words. Here the real Tesseract runs under a
    20 MB memory cap (as it runs under the parser's, parse_memory_mb, which it inherits) and fails on every page:
    the scan is `failed`, with the line that says what went wrong and what to do."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    capped = bin_dir / "tesseract"
    real = shutil.which("tesseract")
    capped.write_text(f'#!/bin/sh\ncase "$1" in\n  --list-langs|--version) exec {real} "$@";;\nesac\n'
                      f'ulimit -d 20000\nexec {real} "$@"\n')
    capped.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SCAN, folder / SCAN.name)
    settings = Settings(index_dir=tmp_path / "index", collection="ocrfails")
    (scan,) = ingest(folder, settings, embedder=embedder).files
    assert scan.status == "failed", scan
    assert scan.reason.startswith("OCR failed on 8 of its 8 scanned pages: Tesseract ran out of memory ("), scan.reason
    assert "raise it (e.g. RAG_PARSE_MEMORY_MB=8192)" in scan.reason and "Estimating" not in scan.reason


def test_ocr_stopped_early_is_no_failure_and_a_damaged_image_says_so(caplog):
    """Pages whose Tesseract is stopped because reading ends early (the file's time limit) are not reported as
    failures ("OCR of a page failed (Estimating resolution as 200)" was, once per page); a page image Tesseract
    cannot read says so."""
    import pypdfium2

    from rag.reading.filetypes.pdf import _image
    from rag.reading.ocr import OcrError, recognize, recognize_all

    pdf = pypdfium2.PdfDocument(SCAN.read_bytes())
    try:
        pages = recognize_all((n, lambda n=n: _image(pdf, n)) for n in range(len(pdf)))
        with caplog.at_level("WARNING"):
            number, text, problem = next(pages)
            pages.close()  # the pages being read are stopped
        first = _image(pdf, 0)
    finally:
        pdf.close()
    assert number == 0 and "DISTRIBUTOR AGREEMENT" in text.upper() and problem == ""
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
    try:
        recognize(first[:len(first) // 3])  # a page image cut short
    except OcrError as e:
        assert str(e).startswith("Tesseract could not read the page image (Error in pixReadStreamPnm"), e
    else:
        raise AssertionError("a damaged page image was read")
