"""Shared fixtures: real models, real Chroma in tmp_path, real PDFs from data/ and ../shared/data. (What
tests share besides fixtures is in helpers.py.)"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.config import Settings

from helpers import CONTRACTS, free_port


@pytest.fixture(scope="session")
def embedder():
    from rag.embeddings import Embedder

    return Embedder(Settings())


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(index_dir=tmp_path / "index", collection="test")


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three of the sample contracts (the shortest ones), copied so a test may change them."""
    target = tmp_path / "docs"
    target.mkdir()
    for path in sorted(CONTRACTS.glob("*.pdf"), key=lambda p: p.stat().st_size)[:3]:
        shutil.copy(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, embedder) -> Settings:
    """The shipped sample corpus (data/contracts), ingested once for every test that only reads it."""
    from rag.indexer import ingest

    settings = Settings(index_dir=tmp_path_factory.mktemp("sample-index"), collection="sample")
    ingest(CONTRACTS, settings, embedder=embedder)
    return settings


@pytest.fixture(scope="session")
def llama_cpp_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(_bundled_gguf()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
                             # llama-cpp-python 0.3.36's batched prompt decoding segfaults on this CPU
                             # (AVX-512/AMX kernels); one token per batch is slow but sound
                             "--n_batch", "1"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _bundled_gguf():
    from rag.backends.embedded import bundled_gguf

    return bundled_gguf()
