"""Real processes: an ingest killed at any point, two ingests at once, a real `chroma run` server,
and the whole robustness corpus."""

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from rag.config import Settings
from rag.indexer import ingest
from rag.report import FAILED, NO_TEXT, OK, SKIPPED

from helpers import CONTRACTS, ROBUSTNESS, ROOT, free_port, needs_shared, stored, wait_for

pytestmark = pytest.mark.slow


def rag_ingest(folder, settings, *extra):
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index",
                             str(settings.index_dir), "--collection", settings.collection, "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def stored_chunks(settings) -> int:
    """Chunks written so far, read from the manifest's view (no Chroma client in this process)."""
    db = settings.index_dir / "manifest.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents WHERE state = 'complete'").fetchone()[0]
    except sqlite3.OperationalError:  # the file exists, its tables not yet: the ingest has just started
        return 0


def test_killed_ingest_reruns_to_the_same_state(tmp_path, embedder):
    reference = Settings(index_dir=tmp_path / "reference", collection="kbase")
    ingest(CONTRACTS, reference, embedder=embedder)
    want = stored(reference, embedder)
    total = sum(d[4] for d in want[1])

    # kill -9 at three points: during the first document, midway, and near the end
    for i, fraction in enumerate((0.0, 0.45, 0.85)):
        settings = Settings(index_dir=tmp_path / f"killed{i}", collection="kbase")
        proc = rag_ingest(CONTRACTS, settings)
        if fraction == 0.0:
            assert wait_for(lambda: (settings.index_dir / "manifest.sqlite").exists() and proc.poll() is None)
            time.sleep(3)  # inside model loading or the first embedding
        else:
            assert wait_for(lambda: stored_chunks(settings) >= fraction * total or proc.poll() is not None)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rerun = rag_ingest(CONTRACTS, settings)
        out, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, err
        assert stored(settings, embedder) == want, f"killed at {fraction:.0%}: state differs"


def test_two_ingests_at_once_one_waits_its_turn(tmp_path, embedder):
    settings = Settings(index_dir=tmp_path / "index", collection="kbase")
    first = rag_ingest(CONTRACTS, settings)
    lock = settings.index_dir / "ingest-kbase.lock"
    assert wait_for(lambda: lock.exists() and _locked(lock))
    second = rag_ingest(CONTRACTS, settings)
    out2, err2 = second.communicate(timeout=300)
    out1, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert second.returncode == 1 and "another `rag ingest` is writing" in err2 and "Traceback" not in err2
    assert json.loads(out1)["totals"]["ok"] == 10
    reference = Settings(index_dir=tmp_path / "reference", collection="kbase")
    ingest(CONTRACTS, reference, embedder=embedder)
    assert stored(settings, embedder) == stored(reference, embedder)


def _locked(path) -> bool:
    import fcntl

    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


@pytest.fixture
def chroma_server(tmp_path):
    port = free_port()
    chroma = os.path.join(os.path.dirname(sys.executable), "chroma")
    proc = subprocess.Popen([chroma, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up():
        import urllib.request

        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1)
            return True
        except OSError:
            return False

    assert wait_for(up, timeout=60), "chroma run did not start"
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_chroma_server_mode(tmp_path, chroma_server, folder, embedder):
    settings = Settings(index_dir=tmp_path / "local", collection="served", chroma_url=chroma_server)
    report = ingest(folder, settings, embedder=embedder)
    assert report.totals()["ok"] == 3 and report.chunks_in_index == report.embedded > 0
    assert not (settings.index_dir / "chroma").exists()  # the vectors live in the server

    import chromadb

    port = int(chroma_server.rsplit(":", 1)[1])
    remote = chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("served")
    assert remote.count() == report.embedded
    again = ingest(folder, settings, embedder=embedder)
    assert again.embedded == 0 and again.totals()["unchanged"] == 3


def test_chroma_server_down_names_the_url(tmp_path, folder):
    url = f"http://127.0.0.1:{free_port()}"
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(folder), "--index", str(tmp_path / "i"),
                          "--chroma-url", url], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1
    assert url in out.stderr and "chroma run" in out.stderr and "Traceback" not in out.stderr


@needs_shared
def test_robustness_corpus_every_file_accounted_for(tmp_path, embedder):
    settings = Settings(index_dir=tmp_path / "index", collection="robust")
    report = ingest(ROBUSTNESS, settings, embedder=embedder)
    by_path = {os.path.relpath(f.path, ROBUSTNESS): f for f in report.files}
    with open(ROBUSTNESS / "INDEX.tsv", newline="") as f:
        index = list(csv.DictReader(f, delimiter="\t"))
    for row in index:
        got = by_path[row["path"]]
        assert got.status in (OK, FAILED, NO_TEXT), (row["path"], got)
        assert got.status == OK or got.reason, row["path"]
        if "encrypted_user_password" in row["tags"]:
            assert got.status == FAILED and got.reason.startswith("encrypted")
        if "no_text_layer" in row["tags"] and row["pypdf"] == "ok":  # scans: read by OCR, or said to hold no text
            assert got.status == NO_TEXT or (got.status == OK and "read by OCR" in got.reason), (row["path"], got)
    pdfs = {row["path"] for row in index}
    others = {p: f for p, f in by_path.items() if p not in pdfs}  # READMEs, licences, INDEX.tsv, a .zip...
    assert {f.status for p, f in others.items() if p.endswith((".md", ".txt"))} == {OK}
    assert {f.status for p, f in others.items() if not p.endswith((".md", ".txt"))} == {SKIPPED}
    assert report.chunks_in_index == report.embedded > 0
    assert by_path["ocrmypdf_resources/francais.pdf"].reason == "page 1 of 1 read by OCR"
