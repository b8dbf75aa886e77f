"""An index under stress, with real `rag` processes and real contracts: readers asking while an ingest
writes the same index (issue 20, item 6), and an index whose disk fills up (item 7)."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import DiskFullError, IndexDamagedError
from rag.indexer import ingest
from rag.knowledge_base import damaged, manifest_path

from helpers import CONTRACTS, ROOT, rag, stored, wait_for

pytestmark = pytest.mark.slow

QUESTIONS = ["Which law governs the agreement?", "How can the agreement be terminated?",
             "What are the payment terms?", "Who owns the intellectual property?"]

# a long-lived reader, as the app is: one Retriever, a question after another, until told to stop
READER = r"""
import sys
from pathlib import Path
from rag.config import Settings
from rag.errors import RagError
from rag.retrieval import Retriever

index, collection, scope, stop = sys.argv[1:5]
questions = sys.argv[5:]
retriever = Retriever(Settings(index_dir=Path(index), collection=collection))
asked = 0
while not Path(stop).exists():
    question = questions[asked % len(questions)]
    try:
        hits = retriever.search(question, 10, [scope] if asked % 2 else None).hits
        print("answered", len(hits), flush=True)
    except RagError as e:
        print("said", str(e).replace(chr(10), " "), flush=True)
    asked += 1
retriever.close()
"""

CHANGED = "changed while"  # the one line a reader may say instead of answering


def one_line(err: str, command: str) -> str:
    """The error line a `rag COMMAND` printed (exactly one), with no traceback anywhere."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"rag {command}: ")]
    assert len(lines) == 1, err
    return lines[0]


def pending_document(settings) -> bool:
    """Whether an ingest is writing a document now (its chunks are going into Chroma)."""
    try:
        with sqlite3.connect(settings.index_dir / "manifest.sqlite", timeout=5) as db:
            return db.execute("SELECT 1 FROM documents WHERE collection = ? AND state = 'pending'",
                              (settings.collection,)).fetchone() is not None
    except sqlite3.Error:
        return False


def test_asks_while_an_ingest_writes_answer_or_say_one_line(tmp_path, embedder):
    """A `rag ingest` writes the index while a long-lived reader searches it again and again (scoped to a
    document or not) and `rag ask` processes ask it one after another: no traceback, ever; each ask answers
    from the documents already complete, or says in one line to ask again; the ingest itself completes."""
    contracts = sorted(CONTRACTS.glob("*.pdf"), key=lambda p: p.stat().st_size)
    base, more = tmp_path / "base", tmp_path / "more"
    base.mkdir()
    more.mkdir()
    for path in contracts[:2]:
        shutil.copy(path, base)
    for path in contracts[2:]:
        shutil.copy(path, more)
    settings = Settings(index_dir=tmp_path / "index", collection="stress")
    ingest(base, settings, embedder=embedder)
    where = ["--index", str(settings.index_dir), "--collection", settings.collection]
    scope = contracts[0].name

    writer = rag("ingest", str(more), *where, "--json")
    stop = tmp_path / "stop"
    reader = None
    asks = []
    try:
        assert wait_for(lambda: pending_document(settings) or writer.poll() is not None, timeout=300)
        assert writer.poll() is None, writer.communicate()
        reader = subprocess.Popen([sys.executable, "-c", READER, str(settings.index_dir), settings.collection,
                                   scope, str(stop), *QUESTIONS], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        while writer.poll() is None:  # fresh processes, one after another, for as long as the ingest writes
            n = len(asks)
            ask = rag("ask", QUESTIONS[n % len(QUESTIONS)], *where, "--backend", "embedded",
                      *(["--doc", scope] if n % 2 else []))
            out, err = ask.communicate(timeout=600)
            asks.append((ask.returncode, out, err))
        out, err = writer.communicate(timeout=600)
    finally:
        stop.touch()
        if writer.poll() is None:
            writer.kill()
        if reader is not None:
            read, read_err = reader.communicate(timeout=600)
    assert writer.returncode == 0 and "Traceback" not in err, err
    report = json.loads(out)
    assert {f["status"] for f in report["files"]} == {"ok"}

    assert reader.returncode == 0 and "Traceback" not in read_err, read_err
    said = read.splitlines()
    assert len(said) >= 10, (said, read_err)  # it asked many times while the ingest wrote
    for line in said:
        assert line.startswith("answered") or (line.startswith("said") and CHANGED in line), line
    assert sum(line.startswith("answered") for line in said) >= len(said) // 2, said

    assert len(asks) >= 2, asks
    for code, out, err in asks:
        assert code in (0, 1), err
        assert "Traceback" not in err, err
        if code == 1:
            assert CHANGED in one_line(err, "ask"), err
        else:
            assert out.strip(), err  # an answer: quotes, or that the documents do not say


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a real file system of the size asked (tmpfs; the test runs as root, as CI does) and yields where."""
    mounted = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode:
            pytest.fail(f"this test mounts a {size} tmpfs, which needs root (CI runs as root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:  # lazily: this process's Chroma clients may still hold files there
        subprocess.run(["umount", "--lazy", str(point)], check=True)


def said_full(err: str, command: str, index: Path) -> None:
    """`rag COMMAND` said in one line that the disk is full: which folder, how much is free, what to do; and
    never that the manifest is damaged, nor to move it."""
    line = one_line(err, command)
    assert "disk holding the index" in line and str(index) in line and " free)" in line, line
    assert "free space on it" in line and "RAG_INDEX_DIR" in line and "--index" in line, line
    assert "mv " not in err and "damaged" not in err and "move it away" not in err, err


@pytest.mark.parametrize("size", ["1m", "3m"])
def test_a_full_disk_is_said_as_such_and_with_room_again_a_rerun_completes_the_index(small_disk, size, sample_index,
                                                                                     embedder):
    """An index on a small disk: the first ingest fills it, a later ingest and an ask find it full; each says so
    in one line (exit 1, no traceback, no advice to move the manifest). With room again (the same file system,
    remounted bigger), one rerun leaves the index exactly as a clean run does."""
    index = small_disk(size)
    settings = Settings(index_dir=index, collection=sample_index.collection)
    where = ["--index", str(index), "--collection", settings.collection]
    for command in (["ingest", str(CONTRACTS)], ["ingest", str(CONTRACTS)],
                    ["ask", "Which law governs the agreement?", "--backend", "embedded"]):
        proc = rag(*command, *where)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 1, err
        said_full(err, command[0], index)

    subprocess.run(["mount", "-o", "remount,size=64m", str(index)], check=True)
    proc = rag("ingest", str(CONTRACTS), *where, "--json")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert {f["status"] for f in json.loads(out)["files"]} <= {"ok", "unchanged"}
    assert stored(settings, embedder) == stored(sample_index, embedder)  # chunk for chunk, as a clean run

    # a reader writes next to nothing: with the disk all but full (256 KB left), an ask still answers
    with open(index / "filler", "wb") as filler:
        os.posix_fallocate(filler.fileno(), 0, shutil.disk_usage(index).free - 256 * 1024)
    proc = rag("ask", "Which law governs the agreement?", *where, "--backend", "embedded")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in err and "governed" in out, err


def test_sqlite_errors_are_said_for_what_they_are(small_disk, tmp_path):
    """`damaged`, which the shells call on any SQLite error: a full disk (real SQLITE_FULL, from a real full
    disk) is DiskFullError; a manifest busy elsewhere is no damage either; only a damaged file gets the advice
    to move it away."""
    disk = small_disk("1m")
    full = sqlite3.connect(disk / "manifest.sqlite")
    full.execute("CREATE TABLE filler (data BLOB)")
    with pytest.raises(sqlite3.OperationalError) as raised:
        for _ in range(1000):
            full.execute("INSERT INTO filler VALUES (?)", (os.urandom(64 * 1024),))
    said = damaged(Settings(index_dir=disk), raised.value)
    assert isinstance(said, DiskFullError) and "mv " not in str(said) and str(disk) in str(said), said

    elsewhere = Settings(index_dir=tmp_path / "index")
    elsewhere.index_dir.mkdir()
    holder = sqlite3.connect(manifest_path(elsewhere), isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as raised:
        sqlite3.connect(manifest_path(elsewhere), timeout=0).execute("INSERT INTO t VALUES (1)")
    said = damaged(elsewhere, raised.value)
    assert not isinstance(said, (DiskFullError, IndexDamagedError)) and "mv " not in str(said), said
    holder.execute("ROLLBACK")
    holder.close()

    manifest_path(elsewhere).write_bytes(b"\x00garbage header" * 64)
    with pytest.raises(sqlite3.DatabaseError) as raised:
        sqlite3.connect(manifest_path(elsewhere)).execute("SELECT * FROM sqlite_master").fetchall()
    said = damaged(elsewhere, raised.value)
    assert isinstance(said, IndexDamagedError) and f"mv {manifest_path(elsewhere)}" in str(said), said
