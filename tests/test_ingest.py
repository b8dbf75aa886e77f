"""Ingestion end to end on real PDFs, a real Chroma in tmp_path and the real bundled model."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from filelock import FileLock

from rag.errors import ConfigError, IndexLockedError
from rag.indexer import ingest
from rag.report import FAILED, NO_TEXT, OK, REMOVED, SKIPPED, UNCHANGED
from rag.knowledge_base import KnowledgeBase

from helpers import CONTRACTS, ROOT, stored


def statuses(report):
    return {os.path.basename(f.path): f.status for f in report.files}


def test_sample_corpus_end_to_end(tmp_path, embedder):
    from rag.config import Settings

    settings = Settings(index_dir=tmp_path / "index", collection="sample")
    report = ingest(CONTRACTS, settings, embedder=embedder)
    assert set(statuses(report).values()) == {OK} and len(report.files) == 10
    t = report.totals()
    assert t["chunks"] == t["embedded"] == t["chunks_in_index"] > 200
    assert t["pages"] == 63

    kb = KnowledgeBase.open(settings, embedder)
    store = kb.store
    clause = "the agreement is governed by the laws of the State of California except conflicts of law"
    hits = store.collection.query(query_embeddings=embedder.embed([clause]), n_results=1,
                                  where={"file": "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"})
    assert "governed by the laws of the State of California" in " ".join(hits["documents"][0][0].split())
    meta = hits["metadatas"][0][0]
    assert {"doc_id", "sha256", "path", "file", "page_start", "page_end", "start", "end", "chunk", "tokens"} <= set(meta)
    assert 1 <= meta["page_start"] <= meta["page_end"] <= 8 and meta["tokens"] > 0

    # the keyword index holds the same chunks and ranks the clause first for a lawyer's words
    manifest = kb.manifest
    netgear = [d.doc_id for d in manifest.documents().values() if "NETGEAR" in d.path]
    best, _ = manifest.lexical.search("Which state's law governs the agreement?", 5, netgear)[0]
    assert "governed by the laws of the State of California" in " ".join(store.collection.get(ids=[best])[
        "documents"][0].split())
    kb.close()

    again = ingest(CONTRACTS, settings, embedder=embedder)
    assert set(statuses(again).values()) == {UNCHANGED}
    assert again.embedded == 0 and again.chunks_in_index == t["chunks_in_index"]


def test_unchanged_reingest_loads_no_model(tmp_path, settings, folder, embedder):
    ingest(folder, settings, embedder=embedder)
    code = ("import sys, json; from rag.cli import main; "
            f"rc = main(['ingest', {str(folder)!r}, '--index', {str(settings.index_dir)!r}, "
            f"'--collection', {settings.collection!r}, '--json']); "
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["totals"]["unchanged"] == 3 and report["totals"]["embedded"] == 0
    assert {f["status"] for f in report["files"]} == {"unchanged"}


def test_change_delete_move_and_copy(tmp_path, settings, folder, embedder):
    first = ingest(folder, settings, embedder=embedder)
    chunks_before = first.chunks_in_index
    a, b, c = sorted(folder.iterdir())
    kb = KnowledgeBase.open(settings, embedder)

    def chunks_of(name):
        kb.refresh()  # each ingest is another writer: see what it wrote
        return kb.store.collection.get(where={"file": name}, include=[])["ids"]

    # change: a's bytes become another contract's; its old chunks go once the new ones are in
    old_ids = set(chunks_of(a.name))
    other = next(p for p in sorted(CONTRACTS.glob("*.pdf")) if p.name not in {a.name, b.name, c.name})
    shutil.copy(other, a)
    # delete b; move c into a subfolder; copy nothing yet
    b.unlink()
    (folder / "sub").mkdir()
    moved = folder / "sub" / c.name
    c.rename(moved)
    report = ingest(folder, settings, embedder=embedder)
    got = {f.path: (f.status, f.reason) for f in report.files}
    assert got[str(a)][0] == OK
    assert got[str(b)] == (REMOVED, "no longer in the folder")
    assert got[str(moved)] == (UNCHANGED, f"moved from {c}")
    assert report.embedded == len(chunks_of(a.name)) and not (old_ids & set(chunks_of(a.name)))
    assert report.removed_documents == 2  # a's old version and b
    paths = {m["path"] for m in kb.store.collection.get(where={"file": c.name}, include=["metadatas"])["metadatas"]}
    assert paths == {str(moved)}  # relabelled, not re-embedded

    # copy: same bytes twice are indexed once
    shutil.copy(moved, folder / "copy.pdf")
    report = ingest(folder, settings, embedder=embedder)
    assert report.embedded == 0
    assert next(f for f in report.files if f.path.endswith("copy.pdf")).reason.startswith("same content as")
    assert kb.store.count() == sum(len(chunks_of(n)) for n in {a.name, c.name})
    assert chunks_before > 0
    kb.close()
    stored(settings, embedder)  # the keyword index followed every change


def test_bad_files_are_reported_and_the_batch_goes_on(tmp_path, settings, folder, embedder):
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "cut.pdf").write_bytes(next(folder.glob("*.pdf")).read_bytes()[:1500])
    (folder / "latin1.txt").write_bytes("Caf\xe9".encode("latin-1"))
    (folder / "notes.md").write_text("# Notes\n\nThe term is five years.")
    (folder / "letter.docx").write_bytes(b"PK\x03\x04")  # a zip header and nothing else
    (folder / "letter.odt").write_bytes(b"PK\x03\x04")  # a type the knowledge base does not read
    (folder / ".hidden.pdf").write_bytes(b"")
    outside = tmp_path / "outside.pdf"
    shutil.copy(next(folder.glob("*.pdf")), outside)
    (folder / "link-out.pdf").symlink_to(outside)
    (folder / "dangling.pdf").symlink_to(tmp_path / "nowhere.pdf")
    os.mkfifo(folder / "pipe.pdf")

    out = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index", str(settings.index_dir),
                          "--collection", settings.collection, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    by_name = {os.path.basename(f["path"]): f for f in report["files"]}
    assert ".hidden.pdf" not in by_name
    assert by_name["empty.pdf"]["status"] == FAILED and by_name["empty.pdf"]["reason"] == "empty file (0 bytes)"
    assert by_name["cut.pdf"]["status"] in (FAILED, NO_TEXT)
    assert by_name["latin1.txt"]["reason"].startswith("not UTF-8 text")
    assert by_name["notes.md"]["status"] == OK and by_name["notes.md"]["chunks"] == 1
    assert by_name["letter.docx"]["status"] == FAILED and by_name["letter.docx"]["reason"].startswith(
        "the Word file is damaged (its zip package cannot be unpacked")
    assert by_name["letter.odt"]["status"] == SKIPPED
    assert by_name["link-out.pdf"]["status"] == SKIPPED and "outside the folder" in by_name["link-out.pdf"]["reason"]
    assert by_name["dangling.pdf"]["reason"].startswith("broken symlink")
    assert by_name["pipe.pdf"]["reason"] == "not a regular file"
    assert sum(f["status"] == OK for f in report["files"]) == 4  # the three contracts and notes.md
    assert all(f["reason"] for f in report["files"] if f["status"] != OK)
    # failures are remembered with their reasons, for whoever lists the library
    kb = KnowledgeBase.open(settings)
    rows = kb.manifest.files()
    kb.close()
    assert rows[str(folder / "empty.pdf")].status == FAILED


def test_file_vanishing_mid_run(settings, folder, embedder):
    for i in range(3):  # more files than the parser reads ahead
        (folder / f"extra{i}.md").write_text(f"Schedule {i}. Payment is due in {i + 30} days.")
    victim = folder / "extra2.md"

    def on_event(kind, data):
        if kind == "file" and victim.exists():
            victim.unlink()

    report = ingest(folder, settings, embedder=embedder, on_event=on_event)
    got = {os.path.basename(f.path): (f.status, f.reason) for f in report.files}
    assert got["extra2.md"] == (FAILED, "vanished during ingest (deleted or moved while reading)")
    assert sum(s == OK for s, _ in got.values()) == 5


def test_a_second_ingest_on_a_locked_index_is_refused(settings, folder, embedder):
    settings.index_dir.mkdir(parents=True)
    with FileLock(settings.index_dir / f"ingest-{settings.collection}.lock"):
        with pytest.raises(IndexLockedError, match="another `rag ingest` is writing"):
            ingest(folder, settings, embedder=embedder)
    assert ingest(folder, settings, embedder=embedder).totals()["ok"] == 3


def test_bad_usage_exits_2(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True,  # noqa: E731
                                       cwd=ROOT)
    missing = run("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "i"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    assert run("ingest").returncode == 2
    assert run("ingest", str(tmp_path), "--collection", "x").returncode == 2


def test_single_file_target(settings, embedder):
    path = sorted(CONTRACTS.glob("*.pdf"))[0]
    report = ingest(path, settings, embedder=embedder)
    assert [f.status for f in report.files] == [OK]
    with pytest.raises(ConfigError):
        ingest(path.with_name("missing.pdf"), settings, embedder=embedder)


def test_unreadable_file_and_folder_are_reported(tmp_path, settings, folder):
    secret = folder / "secret.pdf"
    shutil.copy(next(folder.glob("*.pdf")), secret)
    secret.chmod(0)
    locked = folder / "locked"
    locked.mkdir()
    shutil.copy(secret.with_name(sorted(p.name for p in folder.glob("*.pdf"))[0]), locked)
    locked.chmod(0)
    # root reads anything: drop the capabilities that let it, so the file is truly unreadable
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    out = subprocess.run([*prefix, sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index",
                          str(settings.index_dir), "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1, out.stderr
    files = {os.path.basename(f["path"]): f for f in json.loads(out.stdout)["files"]}
    assert files["secret.pdf"] == {"path": str(secret), "status": FAILED, "reason": "cannot read: Permission denied",
                                   "pages": 0, "chunks": 0}
    assert files["locked"]["status"] == FAILED and files["locked"]["reason"] == "cannot list this folder: Permission denied"
    assert sum(f["status"] == OK for f in files.values()) == 3


def test_keyword_index_backfills_from_the_store(settings, folder, embedder):
    """An index built before the keyword index existed gets it on the next ingest, without embedding."""
    ingest(folder, settings, embedder=embedder)
    want = stored(settings, embedder)
    kb = KnowledgeBase.open(settings, embedder)
    kb.manifest.db.execute("DELETE FROM chunks")
    kb.close()
    report = ingest(folder, settings, embedder=embedder)
    assert report.embedded == 0
    assert stored(settings, embedder) == want
