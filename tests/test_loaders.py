"""Every per-file status, from real files: the robustness corpus (tagged by INDEX.tsv) and files made here."""

import codecs
import csv
import gzip
import io
import random
import re

import pytest
import pypdf

from rag.errors import FileError, NoTextError
from rag.reading.filetypes import Options, for_path, load_pages
from rag.uploads import check_content
from rag.reading.worker import Params, prepare_file

from helpers import CONTRACTS, ROBUSTNESS, SHARED, needs_shared

CONTRACT = sorted(CONTRACTS.glob("*.pdf"))[0]
NO_OCR_REASON = for_path("a.pdf").no_text(Options(ocr=False))


def rows():
    if not ROBUSTNESS.is_dir():
        return []
    with open(ROBUSTNESS / "INDEX.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def status(path, passwords=(), ocr=True):
    try:
        return "ok", load_pages(path, path.read_bytes(), Options(tuple(passwords), ocr)).pages
    except FileError as e:
        return e.status, str(e)


def encrypted(user: str, owner: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=CONTRACT)
    writer.encrypt(user_password=user, owner_password=owner, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@needs_shared
@pytest.mark.parametrize("row", [r for r in rows() if "encrypted_user_password" in r["tags"]], ids=lambda r: r["path"])
def test_password_protected_pdfs_fail_clearly_and_open_with_the_password(row):
    path = ROBUSTNESS / row["path"]
    kind, reason = status(path)
    assert kind == "failed" and reason.startswith("encrypted (password required")
    # INDEX.tsv gives the password as "foo" or "user=X owner=Y"
    password = row["password"].split()[0].removeprefix("user=")
    kind, _ = status(path, passwords=["wrong", password])
    assert kind in ("ok", "no_text")


@needs_shared
@pytest.mark.parametrize("row", [r for r in rows() if "encrypted_owner_only" in r["tags"]], ids=lambda r: r["path"])
def test_owner_only_encryption_opens_with_the_empty_password(row):
    kind, _ = status(ROBUSTNESS / row["path"])
    assert kind in ("ok", "no_text")


@needs_shared
@pytest.mark.parametrize("row", [r for r in rows() if r["pypdf"].startswith("err") and "encrypted" not in r["tags"]],
                         ids=lambda r: r["path"])
def test_pdfs_pypdf_rejects_are_read_by_pdfium_or_fail_with_both_libraries_reasons(row):
    """PDFium repairs a missing cross-reference table ("startxref not found" for pypdf); what neither opens
    fails with both libraries' words."""
    kind, reason = status(ROBUSTNESS / row["path"])
    if kind == "failed":
        assert reason.startswith(("broken PDF: ", "empty file", "not a PDF"))
        if reason.startswith("broken PDF"):
            assert row["pypdf"].split(":", 2)[2].strip()[:20] in reason and "PDFium: " in reason
    else:
        assert kind in ("ok", "no_text") and "startxref" in row["pypdf"]


IMAGE_WORDS = {"francais.pdf": "vieux whisky", "aspect.pdf": "perfect circle", "c02-22.pdf": "Chapter 2",
               "acroform.pdf": "cromulent word", "linn.pdf": "LinnSequencer", "hugemono.pdf": "tiny amount of text"}


@needs_shared
@pytest.mark.parametrize("row", [r for r in rows() if "no_text_layer" in r["tags"] and r["pypdf"] == "ok"],
                         ids=lambda r: r["path"])
def test_image_only_pdfs_are_read_by_ocr_or_reported_never_indexed_empty(row):
    """With OCR (Tesseract installed, as the README's commands do), the scans that carry printed words yield
    them, their pages marked; the rest are `no_text` with the reason, as they are with OCR off."""
    path = ROBUSTNESS / row["path"]
    assert status(path, ocr=False) == ("no_text", NO_OCR_REASON)
    try:
        read = load_pages(path, path.read_bytes())
    except FileError as e:
        assert e.status == "no_text" and "nor by OCR in its images" in str(e)
        assert path.name not in IMAGE_WORDS
        return
    assert read.ocr and all(read.pages[n - 1].strip() for n in read.ocr)
    if path.name in IMAGE_WORDS:
        assert IMAGE_WORDS[path.name] in " ".join(" ".join(read.pages).split())


@needs_shared
@pytest.mark.parametrize("row", [r for r in rows() if r["pypdf"] == "ok" and int(r["pdftotext_chars"] or 0) > 200
                                 and "no_text_layer" not in r["tags"]], ids=lambda r: r["path"])
def test_pdfs_with_text_load_page_by_page(row):
    kind, pages = status(ROBUSTNESS / row["path"])
    assert kind == "ok"
    assert len(pages) == int(row["pages"])


def test_made_here_zero_bytes_truncated_encrypted(tmp_path):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    assert status(empty) == ("failed", "empty file (0 bytes)")

    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(CONTRACT.read_bytes()[:2000])
    kind, reason = status(truncated)
    assert kind in ("failed", "no_text") and reason  # never ok, never a crash

    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypted("s3cret", "owner"))
    assert status(locked)[0] == "failed"
    kind, pages = status(locked, passwords=["s3cret"])
    assert kind == "ok" and "".join(pages) == "".join(load_pages(CONTRACT, CONTRACT.read_bytes()).pages)

    owner_only = tmp_path / "owner_only.pdf"
    owner_only.write_bytes(encrypted("", "owner"))
    assert status(owner_only)[0] == "ok"

    blank = tmp_path / "scan.pdf"
    writer = pypdf.PdfWriter()
    writer.add_blank_page(612, 792)
    writer.write(blank)
    with pytest.raises(NoTextError, match="no words in its text layer, nor by OCR"):
        load_pages(blank, blank.read_bytes())  # no image either: nothing to read

    not_pdf = tmp_path / "renamed.pdf"
    not_pdf.write_text("this is a text file with a .pdf extension")
    assert status(not_pdf)[1].startswith("not a PDF")


def test_text_files_utf8_utf16_and_not_utf8(tmp_path):
    md = tmp_path / "notes.md"
    md.write_text("# Title\n\nGoverning law: Delaware. ✓", encoding="utf-8")
    assert status(md) == ("ok", ["# Title\n\nGoverning law: Delaware. ✓"])
    wide = tmp_path / "wide.txt"
    wide.write_text("Termination for convenience.", encoding="utf-16")
    assert status(wide) == ("ok", ["Termination for convenience."])
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Café contract".encode("cp1252"))
    kind, reason = status(latin)
    assert kind == "failed" and reason.startswith("not UTF-8 text (byte 0xe9 at offset 3)")
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n ")
    assert status(blank)[0] == "no_text"


def test_text_in_utf16_with_a_bom_is_read_and_what_is_not_text_says_what_it_is(tmp_path):
    """Issue 20, item 10, for .txt and .md: UTF-16 with a BOM (either byte order) is read; a gzip, random bytes
    and UTF-16 without a BOM named .txt fail with what they are and what to do (not "convert it with iconv")."""
    contract = "\n".join(load_pages(CONTRACT, CONTRACT.read_bytes()).pages)
    for name, encoded in (("le.txt", codecs.BOM_UTF16_LE + contract.encode("utf-16-le")),
                          ("be.md", codecs.BOM_UTF16_BE + contract.encode("utf-16-be")),
                          ("utf8-bom.txt", codecs.BOM_UTF8 + contract.encode("utf-8"))):
        (tmp_path / name).write_bytes(encoded)
        assert status(tmp_path / name) == ("ok", [contract]), name
    cases = {"archived.txt": (gzip.compress(contract.encode()), "holds gzip-compressed data: unpack it (gunzip) first"),
             "noise.txt": (random.Random(7).randbytes(3000), "holds binary data, not text"),
             "noise.md": (b"Meeting notes\n" + bytes(range(32)) * 4, "holds binary data, not text"),
             "wide.txt": (contract.encode("utf-16-le"), "holds UTF-16 text without a byte-order mark: save it as UTF-8 "
                                                         "(or as UTF-16 with a BOM)")}
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert status(tmp_path / name) == ("failed", reason), name
    with pytest.raises(FileError, match="holds gzip-compressed data"):
        check_content("upload.md", cases["archived.txt"][0])


def test_pages_without_text_are_named_in_the_report(tmp_path):
    writer = pypdf.PdfWriter(clone_from=CONTRACT)
    for _ in range(3):
        writer.add_blank_page()  # e.g. scanned schedules at the end of a born-digital contract
    mixed = tmp_path / "mixed.pdf"
    writer.write(mixed)
    words = lambda texts: [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]  # noqa: E731
    got = prepare_file(mixed, Params("", 254, 24, ()), words)
    n = got.pages
    assert got.note == f"pages {n - 2}-{n} of {n}: no extractable text (scanned?)"


@needs_shared
def test_a_table_row_stays_on_one_line_and_pages_read_fast():
    """3M's 2018 10-K, 160 pages: PDFium keeps each row of the cash-flow statement on one line (pypdf put each
    cell on its own line between blank ones)."""
    path = SHARED / "financebench" / "docs" / "3M_2018_10K.pdf"
    pages = load_pages(path, path.read_bytes()).pages
    assert len(pages) == 160
    rows = [line for page in pages for line in page.splitlines()
            if line.startswith("Purchases of property, plant and equipment (PP&E)")]
    assert any(re.search(r"\(1,577\)\s+\(1,373\)\s+\(1,420\)", row) for row in rows), rows
    assert not any("\r" in page or "\ufffe" in page for page in pages)


def test_the_pdf_extractors_and_their_versions_are_part_of_a_documents_id(tmp_path, embedder):
    import hashlib
    import shutil
    from importlib.metadata import version

    from rag.config import Settings
    from rag.indexer import ingest
    from rag.knowledge_base import KnowledgeBase, doc_id, signature

    reader = for_path("a.pdf").reader(Options())
    assert f"pdfium={version('pypdfium2')}" in reader and f"pypdf={version('pypdf')}" in reader
    assert "ocr=tesseract 5" in reader and for_path("a.pdf").reader(Options(ocr=False)).endswith("ocr=off")
    assert for_path("a.md").reader(Options()) == ""  # text files: no extractor to version
    settings = Settings(index_dir=tmp_path / "index", collection="readers")
    assert signature(settings, embedder.model_id, reader) != signature(settings, embedder.model_id, reader + "-next")
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(CONTRACT, folder / CONTRACT.name)
    ingest(folder, settings, embedder=embedder)
    kb = KnowledgeBase.open(settings)
    try:
        got = kb.manifest.files()[str(folder / CONTRACT.name)].doc_id
    finally:
        kb.close()
    sha = hashlib.sha256(CONTRACT.read_bytes()).hexdigest()
    assert got == doc_id(sha, signature(settings, embedder.model_id, reader))


def test_pdfium_text_has_no_noncharacters():
    """PDFium marks a hyphen it took for a soft one as U+FFFE, which XML (a .docx) and other tools refuse."""
    path = CONTRACTS / "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"
    text = " ".join(" ".join(load_pages(path, path.read_bytes()).pages).split())
    assert "Commercial Computer Software-Restricted Rights" in text and "\ufffe" not in text
