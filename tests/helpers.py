"""What tests share: where the real data is, a free port, what an index holds, and helpers for tests
that drive real processes (wait for a state, never for a fixed time; find every process a command left
behind; run the `rag` command). Fixtures live in conftest.py; everything else is imported from here."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "data" / "contracts"
SHARED = ROOT.parent / "shared" / "data"
ROBUSTNESS = SHARED / "pdf-robustness"

needs_shared = pytest.mark.skipif(not ROBUSTNESS.is_dir(), reason="../shared/data is not beside this checkout")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stored(settings, embedder):
    """Everything the index holds as it is on disk now, for comparing two indexes chunk for chunk; and a
    check that the keyword index holds exactly the chunks Chroma holds."""
    from rag.knowledge_base import KnowledgeBase
    from rag.store import refresh_local_client

    kb = KnowledgeBase(settings, embedder.model_id, client=refresh_local_client(settings))
    got = kb.store.collection.get(include=["metadatas", "documents"])
    chunks = sorted(zip(got["ids"], got["documents"], [json.dumps(m, sort_keys=True) for m in got["metadatas"]]))
    m = kb.manifest
    docs = sorted((d.doc_id, d.state, d.path, d.pages, d.chunks, d.tokens) for d in m.documents().values())
    files = sorted((f.path, f.doc_id, f.status, f.pages, f.chunks) for f in m.files().values())
    keyword = sorted(m.db.execute("SELECT chunk_id, doc_id, chunk, page_start, page_end, text, tokens FROM chunks "
                                  "WHERE collection = ?", (settings.collection,)).fetchall())
    kb.close()
    assert [(k[0], k[5]) for k in keyword] == [(cid, text) for cid, text, _ in chunks]  # the same chunks
    assert [(k[2], k[3], k[4], k[6]) for k in keyword] == [(meta["chunk"], meta["page_start"], meta["page_end"],
                                                            meta["tokens"]) for meta in (json.loads(c[2]) for c in chunks)]
    return chunks, docs, files, keyword


def wait_for(condition, timeout: float = 120) -> bool:
    """Poll `condition` until it holds; False if it still does not after `timeout` seconds (a failure bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def processes_in_session(session: int) -> dict[int, str]:
    """Every live process (pid -> command line) in a session: what a command started with
    start_new_session=True, and anything it started, left behind, or that was re-parented to init."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[3]) == session:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue  # gone meanwhile
    return found


def parse_workers(session: int) -> list[int]:
    return [pid for pid, cmd in processes_in_session(session).items() if "rag.reading.worker" in cmd]


def rag(*args: str, env: dict | None = None, ignore_sigint: bool = False, **popen) -> subprocess.Popen:
    """`rag ARGS` as its own session (so everything it starts can be found), stdout and stderr piped.
    ignore_sigint: start it as a shell starts a background job, with SIGINT ignored."""
    import signal

    def prepare():
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=prepare,
                            env={**os.environ, **(env or {})}, **popen)


def loaded(pid: int, library: str) -> bool:
    """Whether the process has mapped a shared library whose name contains `library` (e.g. libtorch)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def catches(pid: int, signum: int) -> bool:
    """Whether the process has installed its own handler for a signal (SigCgt in /proc/PID/status)."""
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)


@contextlib.contextmanager
def scripted(script: str, folder: Path, *args: str,
             answer: str = "The agreement is governed by the laws of California [1]."):
    """tests/SCRIPT (scripted_llm.py, scripted_ollama.py) on a free port, answering every chat with `answer`:
    yields its URL and the log of the requests it answered."""
    port = free_port()
    (folder / "answer.txt").write_text(answer)
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / script), str(port), str(folder / "answer.txt"),
                             *args])
    try:
        assert wait_for(lambda: _listening(port), timeout=60)
        yield f"http://127.0.0.1:{port}", folder / "answer.log"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
