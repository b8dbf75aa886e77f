"""The knowledge base keeps its stores in agreement, or says so and how to fix it: a deleted chroma folder,
a damaged manifest, a reader in another process, a kill between two versions of a file. Real indexes, real
`rag` processes."""

import json
import shutil
import signal
import sqlite3

import pytest

from rag.backends.openai import RetrievalOnly
from rag.engine import Engine
from rag.indexer import ingest
from rag.knowledge_base import KnowledgeBase, manifest_path
from rag.retrieval import Retriever
from rag.store import refresh_local_client

from helpers import CONTRACTS, rag, wait_for
from hostile import slow_pdf

NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"


def fresh(settings, embedder) -> KnowledgeBase:
    """The knowledge base as it is on disk now (not as this process's Chroma remembers it)."""
    return KnowledgeBase(settings, embedder.model_id, client=refresh_local_client(settings))


def cli(*args, env=None):
    proc = rag(*args, env=env)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def test_a_deleted_chroma_folder_is_said_then_repaired_by_ingest(tmp_path, settings, folder, embedder):
    ingest(folder, settings, embedder=embedder)
    kb = fresh(settings, embedder)
    want = kb.health()
    kb.close()
    shutil.rmtree(settings.index_dir / "chroma")  # what a user does after "cannot open the index"
    where = ["--index", str(settings.index_dir), "--collection", settings.collection]
    code, _, err = cli("ask", "Which law governs?", *where, "--backend", "embedded")
    assert code == 1 and "inconsistent" in err and "rag ingest FOLDER" in err and "Traceback" not in err
    code, out, err = cli("ingest", str(folder), *where, "--json")
    report = json.loads(out)
    assert code == 0, err
    assert report["totals"]["embedded"] == want.complete_chunks and report["notes"][0].startswith("repaired: Chroma")
    kb = fresh(settings, embedder)
    assert kb.health() == want and kb.health().ok
    kb.close()
    code, out, err = cli("ingest", str(folder), *where, "--json")
    assert code == 0 and json.loads(out)["totals"]["embedded"] == 0 and not json.loads(out)["notes"]


def test_a_damaged_manifest_is_one_line_that_says_how_to_get_out(tmp_path, settings, folder, embedder):
    ingest(folder, settings, embedder=embedder)
    path = manifest_path(settings)
    where = ["--index", str(settings.index_dir), "--collection", settings.collection]
    intact = path.read_bytes()
    path.write_bytes(b"\x00garbage header" * 8 + intact[128:])
    for command in (["ingest", str(folder)], ["ask", "Which law governs?", "--backend", "embedded"]):
        code, _, err = cli(*command, *where)
        assert code == 1 and "cannot be read" in err and f"mv {path}" in err and "Traceback" not in err, err
    # damaged pages inside: every other page of its second half
    damaged = bytearray(intact)
    for at in range(len(intact) // 2 // 4096 * 4096, len(intact), 8192):
        damaged[at:at + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(damaged))
    code, _, err = cli("ask", "Which law governs?", *where, "--backend", "embedded")
    assert code == 1 and "cannot be read" in err and "Traceback" not in err, err
    path.rename(path.with_name("manifest.damaged"))  # the way out it names: move it away, ingest again
    code, out, err = cli("ingest", str(folder), *where, "--json")
    assert code == 0 and json.loads(out)["totals"]["embedded"] == 0, err  # vectors reused, nothing re-embedded


def test_a_reader_sees_vectors_another_process_added(tmp_path, settings, folder, embedder):
    ingest(folder, settings, embedder=embedder)
    retriever = Retriever(settings, embedder)  # a long-lived reader, like the app
    (folder / "board-minutes.md").write_text("The board approved the purchase of a lighthouse in Cornwall.")
    code, _, err = cli("ingest", str(folder), "--index", str(settings.index_dir), "--collection", settings.collection)
    assert code == 0, err
    try:
        question = "When was the coastal beacon bought?"  # no word in common: only the vectors can find it
        hits = retriever.search(question, 5).hits
        assert "board-minutes.md" in {h.file for h in hits}
        found = retriever.kb.store.collection.query(query_embeddings=embedder.embed([question]), n_results=1,
                                                    include=["metadatas"])
        assert found["metadatas"][0][0]["file"] == "board-minutes.md"
    finally:
        retriever.close()


def test_a_kill_after_a_new_version_is_stored_leaves_only_that_version_searchable(tmp_path, settings, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    fee = folder / "a-fees.md"
    fee.write_text("Fees. The licence fee is one hundred dollars, payable monthly.")
    slow_pdf(folder / "z-slow.pdf", pages=300, operators=1_000_000)  # keeps the run busy after a-fees.md
    ingest(folder, settings.replace(parse_timeout=2), embedder=embedder)
    fee.write_text("Fees. The licence fee is two hundred euros, payable yearly.")
    kb = fresh(settings, embedder)
    before = kb.manifest.files()[str(fee)].doc_id
    kb.close()
    proc = rag("ingest", str(folder), "--index", str(settings.index_dir), "--collection", settings.collection)

    def new_version_stored():
        try:
            with sqlite3.connect(manifest_path(settings), timeout=5) as db:
                row = db.execute("SELECT doc_id FROM files WHERE path = ?", (str(fee),)).fetchone()
            return row is not None and row[0] != before
        except sqlite3.Error:
            return False

    assert wait_for(lambda: new_version_stored() or proc.poll() is not None)
    assert proc.poll() is None, "the run ended before the kill: the slow PDF should have held it"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kb = fresh(settings, embedder)
    retriever = Retriever(settings, embedder, kb=kb)
    try:
        texts = " ".join(h.text for h in retriever.search("What is the licence fee and when is it paid?", 10).hits)
    finally:
        retriever.close()
        kb.close()
    assert "two hundred euros" in texts and "one hundred dollars" not in texts


def test_per_question_options_change_the_question_not_the_engine(sample_index, embedder):
    engine = Engine(sample_index, llm=RetrievalOnly(), retriever=Retriever(sample_index, embedder))
    question = "Which state's law governs the agreement?"
    try:
        small = engine.context(question, [NETGEAR], budget=1024, ordering="reverse", top_k=3)
        default = engine.context(question, [NETGEAR])
    finally:
        engine.close()
    assert len(small.hits) <= 3 and small.budget <= 1024 and small.ordering == "reverse"
    assert len(default.hits) > 3 and default.budget > 1024 and default.ordering == "golden"


@pytest.fixture
def folder(tmp_path):
    target = tmp_path / "docs"
    target.mkdir()
    for path in sorted(CONTRACTS.glob("*.pdf"), key=lambda p: p.stat().st_size)[:2]:
        shutil.copy(path, target / path.name)
    return target
