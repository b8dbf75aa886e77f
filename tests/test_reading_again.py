"""Files that gave nothing to index are not read again while nothing that decides reading changed (issue 20,
item 11: a 300-blank-page scan cost 134 s of OCR on every re-scan). Real files (a scan of blank pages, a PDF cut
short, a contract), the real parsing worker, Tesseract and a real manifest: what the worker was given is what
the run's "reading" events say, since the worker announces every file it opens."""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from PIL import Image

from rag.config import Settings
from rag.indexer import ingest
from rag.knowledge_base import KnowledgeBase
from rag.report import FAILED, NO_TEXT, OK, UNCHANGED

from helpers import CONTRACTS, ROOT

CONTRACT = sorted(CONTRACTS.glob("*.pdf"))[0]
NOT_AGAIN = "not read again; `rag ingest --retry-failed` reads it again)"


def blank_scan(path: Path, pages: int = 2) -> Path:
    """An office scan of blank pages: a black-and-white image a page at 200 dpi, no text layer."""
    images = [Image.new("1", (1700, 2200), 1) for _ in range(pages)]
    images[0].save(path, "PDF", resolution=200, save_all=True, append_images=images[1:])
    return path


def run(folder: Path, settings: Settings, embedder, **options) -> tuple[dict, set[str]]:
    """Ingest: each file's report by name, and the names of the files the parsing worker opened."""
    opened = set()

    def heard(kind: str, data: dict) -> None:
        if kind == "reading":
            opened.add(Path(data["path"]).name)

    report = ingest(folder, settings, embedder=embedder, on_event=heard, **options)
    return {Path(f.path).name: f for f in report.files}, opened


def test_failed_and_textless_files_are_read_again_only_when_something_changed(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    blank_scan(folder / "blank-scan.pdf")
    (folder / "cut-short.pdf").write_bytes(CONTRACT.read_bytes()[:1500])
    shutil.copy(CONTRACT, folder / CONTRACT.name)
    settings = Settings(index_dir=tmp_path / "index", collection="again")

    first, opened = run(folder, settings, embedder)
    assert opened == {"blank-scan.pdf", "cut-short.pdf", CONTRACT.name}
    scan, cut = first["blank-scan.pdf"], first["cut-short.pdf"]
    assert scan.status == NO_TEXT and scan.reason == "no text: no words in its text layer, nor by OCR in its images"
    assert cut.status == FAILED and cut.reason.startswith("broken PDF"), cut

    # unchanged, with the same settings: the same statuses and reasons, said to be remembered; nothing parsed
    second, opened = run(folder, settings, embedder)
    assert opened == set()
    assert second[CONTRACT.name].status == UNCHANGED
    for before in (scan, cut):
        again = second[Path(before.path).name]
        assert again.status == before.status and again.reason.startswith(before.reason + " (unchanged since 20")
        assert again.reason.endswith(NOT_AGAIN)
    third, opened = run(folder, settings, embedder)  # "since" stays the day it was read
    assert opened == set() and third["blank-scan.pdf"].reason == second["blank-scan.pdf"].reason

    # asked to: both read again (and remembered again)
    retried, opened = run(folder, settings, embedder, retry_failed=True)
    assert opened == {"blank-scan.pdf", "cut-short.pdf"}
    assert retried["blank-scan.pdf"].reason == scan.reason and retried["cut-short.pdf"].reason == cut.reason
    assert run(folder, settings, embedder)[1] == set()

    # a changed file is read again; a copy of a remembered one is not
    with open(folder / "cut-short.pdf", "ab") as f:
        f.write(b"\n% one more line")
    shutil.copy(folder / "blank-scan.pdf", folder / "copy-of-scan.pdf")
    changed, opened = run(folder, settings, embedder)
    assert opened == {"cut-short.pdf"} and changed["copy-of-scan.pdf"].status == NO_TEXT
    assert changed["copy-of-scan.pdf"].reason.endswith(NOT_AGAIN)

    # what decides reading changed: each change reads them again, once
    failing = {"blank-scan.pdf", "copy-of-scan.pdf", "cut-short.pdf"}
    for different in (settings.replace(pdf_passwords=("s3cret",)), settings.replace(parse_timeout=60.0),
                      settings.replace(parse_memory_mb=8192), settings.replace(max_file_mb=200)):
        assert run(folder, different, embedder)[1] == failing, different
        assert run(folder, different, embedder)[1] == set(), different
    off, opened = run(folder, settings.replace(ocr=False), embedder)  # (the contract too: OCR is in its id)
    assert failing <= opened and "OCR is off" in off["blank-scan.pdf"].reason
    off, opened = run(folder, settings.replace(ocr=False), embedder)
    assert opened == set() and "OCR is off" in off["blank-scan.pdf"].reason and off["blank-scan.pdf"].reason.endswith(
        NOT_AGAIN)


def test_a_file_that_breaks_after_it_was_indexed_keeps_its_good_version_and_is_not_read_again(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    contract = shutil.copy(CONTRACT, folder / "contract.pdf")
    settings = Settings(index_dir=tmp_path / "index", collection="keep")
    assert run(folder, settings, embedder)[0]["contract.pdf"].status == OK
    good = CONTRACT.read_bytes()
    Path(contract).write_bytes(good[:1500])  # saved over by a broken copy
    broken, opened = run(folder, settings, embedder)
    assert opened == {"contract.pdf"} and broken["contract.pdf"].status == FAILED
    assert broken["contract.pdf"].reason.endswith("the version indexed before stays searchable until this is fixed")
    again, opened = run(folder, settings, embedder)
    assert opened == set() and again["contract.pdf"].status == FAILED
    assert f"{NOT_AGAIN}; the version indexed before stays searchable" in again["contract.pdf"].reason
    kb = KnowledgeBase.open(settings, embedder)
    try:
        row = kb.manifest.files()[str(contract)]
        assert row.doc_id and kb.manifest.document(row.doc_id).state == "complete"  # still searchable
    finally:
        kb.close()
    Path(contract).write_bytes(good)  # fixed: the indexed version again, and the library says so
    fixed, opened = run(folder, settings, embedder)
    assert opened == set() and fixed["contract.pdf"].status == UNCHANGED
    kb = KnowledgeBase.open(settings, embedder)
    try:
        assert kb.manifest.files()[str(contract)].status == OK
    finally:
        kb.close()


OLD_FILES_TABLE = """CREATE TABLE files (
    collection TEXT NOT NULL, path TEXT NOT NULL, doc_id TEXT, size INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, pages INTEGER NOT NULL, chunks INTEGER NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (collection, path))"""


def test_a_manifest_made_before_outcomes_were_kept_opens_and_rag_ingest_retry_failed_reads_again(tmp_path,
                                                                                                embedder):
    """A manifest whose files table has no columns for outcomes (made by an older version) opens, keeps its rows,
    and gains them; `rag ingest --retry-failed` (the real command) reads a remembered file again."""
    folder = tmp_path / "docs"
    folder.mkdir()
    scan = blank_scan(folder / "blank-scan.pdf", pages=1)
    index = tmp_path / "index"
    index.mkdir()
    with sqlite3.connect(index / "manifest.sqlite") as db:
        db.execute(OLD_FILES_TABLE)
        db.execute("INSERT INTO files VALUES ('old', ?, NULL, 10, 'no_text', 'no text (old)', 0, 0, 1.0)",
                   (str(scan),))
    db.close()
    settings = Settings(index_dir=index, collection="old")
    first, opened = run(folder, settings, embedder)  # no outcome in the old row: read
    assert opened == {"blank-scan.pdf"} and first["blank-scan.pdf"].status == NO_TEXT
    assert run(folder, settings, embedder)[1] == set()

    def rag_ingest(*extra: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index", str(index),
                              "--collection", "old", "--json", *extra], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 1, out.stderr  # a file with no text
        return {Path(f["path"]).name: f for f in json.loads(out.stdout)["files"]}

    assert rag_ingest()["blank-scan.pdf"]["reason"].endswith(NOT_AGAIN)
    assert rag_ingest("--retry-failed")["blank-scan.pdf"]["reason"] == (
        "no text: no words in its text layer, nor by OCR in its images")
    with sqlite3.connect(index / "manifest.sqlite") as db:  # the old row, with its outcome now
        assert db.execute("SELECT count(*), min(read_at) FROM files").fetchone()[1] > 0
    db.close()
