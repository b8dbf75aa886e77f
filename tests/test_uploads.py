"""Uploads and removal, the library side of the app: untrusted names and contents, real index."""

import html
import shutil

import pytest

from rag.errors import FileError, UnknownDocumentError
from rag.indexer import ingest, remove_file
from rag.knowledge_base import KnowledgeBase, uploads_dir
from rag.uploads import MAX_UPLOAD_MB, check_content, safe_name, save_upload
from rag.page_view import answer_words, highlight_html, render_page
from rag.retrieval import Retriever

from helpers import CONTRACTS


@pytest.mark.parametrize("sent, kept", [
    ("contract.pdf", "contract.pdf"),
    ("../../etc/passwd.pdf", "passwd.pdf"),
    ("..\\..\\Windows\\evil.PDF", "evil.pdf"),
    ("C:\\Users\\me\\Lease 2024 (final).pdf", "Lease 2024 (final).pdf"),
    ("a\x00b\x1b[31m.md", "ab_31m.md"),
    ("  .hidden notes.txt", "hidden notes.txt"),
    ("<script>alert(1)</script>.txt", "script_.txt"),  # "/" ends a folder name, even there
])
def test_safe_name(sent, kept):
    assert safe_name(sent) == kept


@pytest.mark.parametrize("sent", ["run.exe", "notes", "archive.pdf.zip", ".pdf", "../", "///.pdf"])
def test_names_refused(sent):
    with pytest.raises(FileError):
        safe_name(sent)


def test_types_are_checked_by_content():
    pdf = (CONTRACTS / sorted(p.name for p in CONTRACTS.glob("*.pdf"))[0]).read_bytes()
    check_content("a.pdf", pdf)
    check_content("a.md", "# Überschrift\nText".encode())
    for name, data, said in [("a.pdf", b"MZ\x90\x00 an executable", "not a PDF"),
                             ("a.txt", pdf, "holds a PDF: name it .pdf"),
                             ("a.txt", "naïve".encode("latin-1"), "not UTF-8"),
                             ("a.md", b"", "empty"),
                             ("a.txt", b"x" * (MAX_UPLOAD_MB * 2**20 + 1),
                              f"is {MAX_UPLOAD_MB}.01 MB: files up to {MAX_UPLOAD_MB} MB")]:
        with pytest.raises(FileError, match=said):
            check_content(name, data)


def test_uploads_are_saved_apart_ingested_and_removed(settings, embedder, tmp_path):
    first = save_upload(settings, "../notes.md", b"The governing law is the law of Delaware.")
    assert first == uploads_dir(settings) / "notes.md" and first.read_bytes().startswith(b"The governing")
    assert save_upload(settings, "notes.md", b"The governing law is the law of Delaware.") == first  # same file
    second = save_upload(settings, "notes.md", b"Payment is due within 30 days.")
    assert second.name == "notes (2).md" and first.exists()

    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(first, folder / "copy.md")  # the same content in a folder of the user's
    for target in (first, second, folder):
        ingest(target, settings, embedder=embedder)
    kb = KnowledgeBase.open(settings, embedder)
    manifest = kb.manifest
    assert {p.rsplit("/", 1)[-1] for p in manifest.files()} == {"notes.md", "notes (2).md", "copy.md"}

    remove_file(str(first), settings)  # its content lives on in copy.md
    assert not first.exists() and str(first) not in manifest.files()
    retriever = Retriever(settings, embedder)
    assert [h.file for h in retriever.search("governing law Delaware", 3).hits][:1] == ["copy.md"]
    remove_file(str(folder / "copy.md"), settings)
    assert (folder / "copy.md").exists()  # the user's own file stays where it is
    assert "Delaware" not in " ".join(h.text for h in retriever.search("governing law Delaware", 3).hits)
    with pytest.raises(UnknownDocumentError, match="nothing to remove"):
        remove_file(str(folder / "copy.md"), settings)
    retriever.close()
    kb.close()


def test_passages_are_escaped_and_marked():
    text = "<script>alert('x')</script> This Agreement is governed by the laws of Delaware & <b>New York</b>."
    shown = highlight_html(text, answer_words("Delaware law governs [1]"))
    assert "<script>" not in shown and "&#60;script&#62;" in shown and "<b>" not in shown
    assert "<mark>Delaware</mark>" in shown and "<mark>governed</mark>" not in shown
    assert html.unescape(shown.replace("<mark>", "").replace("</mark>", "")) == text  # every character shown
    assert "<mark>" not in highlight_html("the and of", answer_words("the and of"))


def test_a_cited_page_renders():
    path = sorted(CONTRACTS.glob("*.pdf"))[0]
    png = render_page(path, 1, width=400)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileError, match="no page 999"):
        render_page(path, 999)
