"""Shared fixtures: real models, real Chroma in tmp_path, real PDFs from data/ and ../shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "data" / "contracts"
SHARED = ROOT.parent / "shared" / "data"
ROBUSTNESS = SHARED / "pdf-robustness"

needs_shared = pytest.mark.skipif(not ROBUSTNESS.is_dir(), reason="../shared/data is not beside this checkout")


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
