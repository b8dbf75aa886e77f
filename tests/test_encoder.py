"""The question-time encoder (rag.encoder, NumPy): the same vectors as sentence-transformers, and a quote answer
that never imports torch, in a real `rag ask` process."""

import json
import shutil
import subprocess
import sys

import numpy as np

from rag.config import Settings
from rag.embeddings import Embedder, bundled_model_path
from rag.encoder import load
from rag.reading.filetypes import load_pages
from rag.quotes import sentence_spans

from helpers import CONTRACTS, ROOT

NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"


def test_numpy_vectors_are_sentence_transformers_vectors():
    """Every sentence of a real contract, a question, an empty text and one past the model's 256 tokens."""
    pages = load_pages(CONTRACTS / NETGEAR, (CONTRACTS / NETGEAR).read_bytes()).pages
    texts = [page[a:b] for page in pages for a, b in sentence_spans(page)]
    texts += ["Which state's law governs the agreement?", "", "x", "word " * 400]
    ours = load(bundled_model_path()).encode(texts)
    theirs = np.asarray(Embedder(Settings(embed_dtype="float32")).embed(texts))
    assert len(texts) > 150 and ours.shape == theirs.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert (ours * theirs).sum(1).min() > 0.9999
    asking = np.asarray(Embedder(Settings(), asking=True).embed(texts[:5]))
    assert np.allclose(asking, ours[:5], atol=1e-6)  # what an Engine embeds with


def test_a_model_it_does_not_compute_is_left_to_sentence_transformers(tmp_path):
    """A copy of the bundled model made to pool by max (not mean or CLS): NumPy declines it, and an asking
    Embedder embeds it with sentence-transformers instead (the vectors differ from mean pooling's)."""
    folder = tmp_path / "max-pooled"
    shutil.copytree(bundled_model_path(), folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True}))
    assert load(folder) is None and load(bundled_model_path()) is not None
    asking = Embedder(Settings(embedding_model=str(folder)), asking=True)
    vectors = np.asarray(asking.embed(["The laws of California govern this agreement."]))
    mean = load(bundled_model_path()).encode(["The laws of California govern this agreement."])
    assert vectors.shape == (1, 384) and (vectors * mean).sum() < 0.999 and asking._model is not None


def test_a_quote_answer_never_imports_torch(sample_index):
    """A cold `rag ask` of the default kind loads no torch, sentence-transformers or transformers: that is
    what made it take ten seconds. It says how long loading took, apart from retrieval."""
    script = ("import runpy, sys; sys.argv = ['rag', 'ask', \"Which state's law governs the agreement?\", '--doc', "
              f"{NETGEAR!r}, '--index', {str(sample_index.index_dir)!r}, '--collection', "
              f"{sample_index.collection!r}]\n"
              "try:\n    runpy.run_module('rag.cli', run_name='__main__')\n"
              "except SystemExit as e:\n    code = e.code\n"
              "print('LOADED', sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
              "if m in sys.modules), file=sys.stderr)\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stderr
    assert "laws of the State of California" in done.stdout
    assert "s (models and index, once per process); retrieve" in done.stderr
