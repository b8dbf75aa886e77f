"""Every per-file status, from real files: the robustness corpus (tagged by INDEX.tsv) and files made here."""

import csv
import io
import re

import pytest
import pypdf

from rag.errors import FileError, NoTextError
from rag.filetypes import for_path, load_pages
from rag.prepare import Params, prepare_file

from helpers import CONTRACTS, ROBUSTNESS, needs_shared

CONTRACT = sorted(CONTRACTS.glob("*.pdf"))[0]
NO_TEXT_REASON = for_path("a.pdf").no_text


def rows():
    if not ROBUSTNESS.is_dir():
        return []
    with open(ROBUSTNESS / "INDEX.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def status(path, passwords=()):
    try:
        pages = load_pages(path, path.read_bytes(), passwords)
        return "ok", pages
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
def test_broken_pdfs_fail_with_pypdfs_reason(row):
    kind, reason = status(ROBUSTNESS / row["path"])
    assert kind == "failed"
    assert reason.startswith(("broken PDF: ", "empty file", "not a PDF"))
    if not reason.startswith(("empty", "not a PDF")):
        assert row["pypdf"].split(":", 2)[2].strip()[:20] in reason  # pypdf's own words


@needs_shared
@pytest.mark.parametrize("row", [r for r in rows() if "no_text_layer" in r["tags"] and r["pypdf"] == "ok"],
                         ids=lambda r: r["path"])
def test_image_only_pdfs_are_reported_never_indexed_empty(row):
    kind, reason = status(ROBUSTNESS / row["path"])
    assert (kind, reason) == ("no_text", NO_TEXT_REASON)


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
    assert kind == "ok" and "".join(pages) == "".join(load_pages(CONTRACT, CONTRACT.read_bytes()))

    owner_only = tmp_path / "owner_only.pdf"
    owner_only.write_bytes(encrypted("", "owner"))
    assert status(owner_only)[0] == "ok"

    blank = tmp_path / "scan.pdf"
    writer = pypdf.PdfWriter()
    writer.add_blank_page(612, 792)
    writer.write(blank)
    with pytest.raises(NoTextError, match="OCR is not enabled"):
        load_pages(blank, blank.read_bytes())

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
