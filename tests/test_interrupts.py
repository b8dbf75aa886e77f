"""Kills and interrupts, on real `rag` processes: nothing of ours outlives them, Ctrl-C and SIGTERM stop
every command promptly at any stage, and an index killed again and again ends, after one rerun, exactly
as a clean run leaves it."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from rag.config import Settings
from rag.indexer import ingest

from helpers import CONTRACTS, ROOT, catches, loaded, parse_workers, processes_in_session, rag, stored, wait_for
from hostile import slow_pdf

pytestmark = pytest.mark.slow
QUESTIONS = ROOT / "data" / "questions.jsonl"


@pytest.fixture
def busy_folder(tmp_path):
    """Sample contracts, with a PDF first in line that keeps the parsing worker busy (~10 s a page)."""
    target = tmp_path / "docs"
    target.mkdir()
    slow_pdf(target / "0-slow.pdf", pages=300, operators=1_000_000)
    for path in sorted(CONTRACTS.glob("*.pdf"))[:3]:
        shutil.copy(path, target)
    return target


def test_kill_9_leaves_no_process_behind_and_a_pipe_ends(tmp_path, busy_folder):
    """`rag ingest DIR | cat`, and the ingest killed with SIGKILL while its worker parses: the worker goes
    too (it held the pipe, so `cat` never ended), and nothing is left re-parented to init."""
    shell = subprocess.Popen(["sh", "-c", f"'{sys.executable}' -m rag.cli ingest '{busy_folder}' --index "
                              f"'{tmp_path / 'index'}' | cat"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    session = shell.pid
    assert wait_for(lambda: parse_workers(session)), processes_in_session(session)
    [ingesting] = [pid for pid, cmd in processes_in_session(session).items() if cmd.startswith(sys.executable)
                   and " -m rag.cli " in cmd]
    subprocess.run(["kill", "-9", str(ingesting)], check=True)
    shell.communicate(timeout=60)  # cat saw the end of its input
    assert wait_for(lambda: not processes_in_session(session), timeout=30), processes_in_session(session)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_an_ingest_cleanly(tmp_path, busy_folder, sig, code):
    """Started as a script's background job (SIGINT ignored, which Python keeps), stopped while its worker
    parses: it says so, exits 128+signal, stops its worker and frees the index for the next run."""
    index = tmp_path / "index"
    proc = rag("ingest", str(busy_folder), "--index", str(index), ignore_sigint=True)
    assert wait_for(lambda: parse_workers(proc.pid))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted; run it again" in err and "Traceback" not in err
    assert wait_for(lambda: not processes_in_session(proc.pid), timeout=30), processes_in_session(proc.pid)
    rerun = rag("ingest", str(busy_folder), "--index", str(index), "--json", env={"RAG_PARSE_TIMEOUT": "2"})
    out, err = rerun.communicate(timeout=600)
    totals = json.loads(out)["totals"]
    assert rerun.returncode == 1 and totals["ok"] == 3 and totals["failed"] == 1, err  # the slow PDF, timed out


@pytest.mark.parametrize("stage", ["starting", "loading the models", "answering"])
def test_ctrl_c_stops_an_eval_at_any_stage(sample_index, tmp_path, stage):
    out = tmp_path / "run"
    proc = rag("eval", str(QUESTIONS), "--index", str(sample_index.index_dir), "--collection",
               sample_index.collection, "--out", str(out), "--retrieval-only", "--budgets", "4k,8k",
               ignore_sigint=True)
    assert wait_for(lambda: catches(proc.pid, signal.SIGINT) or proc.poll() is not None)  # Python has started
    if stage == "loading the models":
        assert wait_for(lambda: loaded(proc.pid, "libtorch") or proc.poll() is not None)
    elif stage == "answering":
        assert wait_for(lambda: (out / "results.jsonl").exists() or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


SEARCH_UNDER_CTRL_C = """
import random, signal, sys, threading
from pathlib import Path
from rag.config import Settings
from rag.embeddings import Embedder
from rag.retrieval import Retriever

signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
settings = Settings(index_dir=Path(sys.argv[1]), collection=sys.argv[2])
embedder = Embedder(settings)
Retriever(settings, embedder).search("warm up", 20)
main, stop = threading.main_thread().ident, threading.Event()

def ctrl_c_now_and_then():
    while not stop.wait(random.uniform(0.001, 0.03)):
        signal.pthread_kill(main, signal.SIGINT)

threading.Thread(target=ctrl_c_now_and_then, daemon=True).start()
interrupted = 0
while interrupted < 300:
    retriever = None
    try:
        retriever = Retriever(settings, embedder)
        while True:
            retriever.search("governing law of this agreement", 20)
    except KeyboardInterrupt:  # then, as the CLI does, close the knowledge base at once
        interrupted += 1
        try:
            if retriever:
                retriever.close()
        except KeyboardInterrupt:
            pass
stop.set()
print("interrupted", interrupted)
"""


def test_ctrl_c_in_mid_search_then_closing_the_index_never_crashes(sample_index):
    # a search reads keywords in a thread while it embeds the question; Ctrl-C lands anywhere in it, and the
    # caller closes the index: before the manifest waited for that thread, this crashed (SIGSEGV) every run
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", SEARCH_UNDER_CTRL_C,
                           str(sample_index.index_dir), sample_index.collection],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "interrupted 300" in done.stdout, done.stderr[-3000:]


def stored_chunks(index) -> int:
    try:
        with sqlite3.connect(index / "manifest.sqlite", timeout=5) as con:
            return con.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents WHERE state = 'complete'").fetchone()[0]
    except sqlite3.Error:  # not there yet, or its tables not yet
        return 0


def test_random_kills_then_one_rerun_end_as_a_clean_run(tmp_path, embedder):
    """A realistic folder (contracts, notes, a broken PDF, one too slow to read), an ingest killed with
    SIGKILL or SIGTERM at a random moment, five times in a row: no process of ours survives any of them,
    and one more run leaves manifest, keyword index and Chroma chunk for chunk as one clean run does."""
    folder = tmp_path / "docs"
    shutil.copytree(CONTRACTS, folder)
    (folder / "notes").mkdir()
    (folder / "notes" / "renewal.md").write_text("# Renewal\n\nThe board approved the NETGEAR renewal on 1 May 2004.\n")
    (folder / "notes" / "contacts.txt").write_text("Legal: Jane Doe, extension 4411.\n")
    whole = (CONTRACTS / "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf").read_bytes()
    (folder / "notes" / "truncated.pdf").write_bytes(whole[:5000])
    slow_pdf(folder / "notes" / "slow.pdf", pages=50, operators=1_000_000)
    limits = {"RAG_PARSE_TIMEOUT": "3"}

    reference = Settings(index_dir=tmp_path / "reference", collection="kbase", parse_timeout=3)
    ingest(folder, reference, embedder=embedder)
    want = stored(reference, embedder)
    total = sum(d[4] for d in want[1])

    index = tmp_path / "killed"
    seed = int(os.environ.get("RAG_TEST_SEED") or time.time())  # a failure message names it: rerun with it
    rng = random.Random(seed)
    moments: list = [f"RAG_TEST_SEED={seed}"]
    for _ in range(5):
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        moment = rng.choice(["at once", "worker parsing", "chunks stored"])
        share = rng.uniform(0.1, 0.9)
        moments.append((sig.name, moment, round(share, 2)))
        proc = rag("ingest", str(folder), "--index", str(index), "--collection", "kbase", env=limits)
        if moment == "worker parsing":
            wait_for(lambda: parse_workers(proc.pid) or proc.poll() is not None)
        elif moment == "chunks stored":
            wait_for(lambda: stored_chunks(index) >= share * total or proc.poll() is not None)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
        assert wait_for(lambda: not processes_in_session(proc.pid), timeout=30), (moments, processes_in_session(proc.pid))

    rerun = rag("ingest", str(folder), "--index", str(index), "--collection", "kbase", "--json", env=limits)
    out, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 1, err  # two files cannot be read: said, and the rest is indexed
    totals = json.loads(out)["totals"]
    assert totals["failed"] == 2 and totals["ok"] + totals["unchanged"] == 12, (moments, totals)
    assert stored(Settings(index_dir=index, collection="kbase"), embedder) == want, f"differs after {moments}"
