"""Clause models: learned from the clauses lawyers marked in cuad-dev, applied to the questions that ask for them."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from rag.backends.openai import RetrievalOnly
from rag.domain.clause_models import BUNDLED, RETRIEVAL_DOCUMENTS, Clause, ClauseModels, Clauses
from rag.embeddings import BUNDLED_MODEL
from rag.engine import Engine
from rag.errors import ConfigError
from rag.knowledge_base import doc_of
from rag.retrieval import Retriever

from helpers import ROOT

GOVERNING_LAW = "Which state/country's law governs the interpretation of the contract?"
NON_COMPETE = ("Is there a restriction on the ability of a party to compete with the counterparty or operate in a "
               "certain geography or business or technology sector?")
NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"
MARTIN = "MARTINMIDSTREAMPARTNERSLP_01_23_2004-EX-10.3-TRANSPORTATION_SERVICES_AGREEMENT.pdf"


@pytest.fixture(scope="module")
def clauses(embedder):
    return Clauses.open("", BUNDLED_MODEL, embedder.embed)


def test_the_bundled_models_answer_the_questions_they_were_trained_on_and_those_naming_their_clause(clauses, embedder):
    models = clauses.models
    assert len(models.questions) == len(models.names) == models.weights.shape[0] == 41
    assert models.embedding == BUNDLED_MODEL and models.weights.shape[1] == 384

    def asked(question):
        clause = clauses.find(question, np.asarray(embedder.embed([question])[0]))
        return None if clause is None else clause.name

    assert asked(GOVERNING_LAW) == "Governing Law" and asked(NON_COMPETE) == "Non-Compete"
    assert asked("Is there a non-compete clause?") == "Non-Compete"  # named, in other words (cosine 0.66)
    assert asked("Is there a noncompete?") == "Non-Compete"
    assert asked("What is the governing law?") == "Governing Law"
    assert asked("Which state's law governs the agreement?") == "Governing Law"  # its words, in another order
    assert asked("Does the contract have a most favored nation clause?") == "Most Favored Nation"
    assert asked("Who won the 2018 football World Cup?") is None
    price = ("Is there a restriction on the ability of a party to raise or reduce prices of technology, goods, or "
             "services provided?")
    vector = np.asarray(embedder.embed([price])[0])
    assert models.documents[models.names.index("Price Restrictions")] < RETRIEVAL_DOCUMENTS
    assert not clauses.find(price, vector).retrieving  # learned from too few contracts to fetch chunks
    vector = np.asarray(embedder.embed([GOVERNING_LAW])[0])
    law = clauses.find(GOVERNING_LAW, vector)
    assert law.retrieving and {"governed", "laws"} <= set(law.keywords.split())  # learned from 82 contracts
    probe = np.eye(384, dtype=np.float32)  # the model's weights, read back through its score
    assert np.allclose(law.score(probe) - law.bias, models.weights[models.names.index("Governing Law")], atol=1e-6)
    assert asked("Can the parties meet on Fridays?") is None  # "parties": too common a word to name a clause
    # in a person's words: the nearest trained question, when its own model agrees (eval/plain_phrasings.json)
    assert asked("What law applies to this contract?") == "Governing Law"
    assert asked("Is there a limit on liability?") == "Cap On Liability"
    assert asked("What price per Bitcoin is paid for the tokens delivered?") is None


def test_a_question_in_other_words_quotes_the_clause_it_asks_for(sample_index, embedder):
    """Martin Midstream's agreement: "What law applies" put a compliance-with-laws clause ahead of its Texas
    governing-law clause before the question was recognised as asking for Governing Law."""
    engine = Engine(sample_index, llm=RetrievalOnly(), retriever=Retriever(sample_index, embedder))
    try:
        answer = engine.ask("What law applies to this contract?", [MARTIN], answer="quote")
    finally:
        engine.close()
    assert "laws of the State of Texas" in answer.quotes[0].shown()


def test_models_apply_only_to_the_embedding_model_they_were_trained_with(tmp_path, embedder):
    models = ClauseModels.load(BUNDLED)
    other = tmp_path / "other.npz"
    replace(models, embedding="BAAI/bge-small-en-v1.5").save(other)
    assert Clauses.open(str(other), BUNDLED_MODEL, embedder.embed).models is None
    assert Clauses.open("none", BUNDLED_MODEL, embedder.embed).models is None
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not numpy")
    with pytest.raises(ConfigError, match="RAG_CLAUSE_MODELS=none"):
        Clauses.open(str(broken), BUNDLED_MODEL, embedder.embed)
    uneven = tmp_path / "uneven.npz"  # a file that says it is for this model, with rows missing
    replace(models, bias=models.bias[:3]).save(uneven)
    with pytest.raises(ConfigError, match="3 biases"):
        Clauses.open(str(uneven), BUNDLED_MODEL, embedder.embed)
    narrow = tmp_path / "narrow.npz"  # weights of another width, under this model's name
    replace(models, weights=models.weights[:, :100]).save(narrow)
    clauses = Clauses.open(str(narrow), BUNDLED_MODEL, embedder.embed)
    with pytest.raises(ConfigError, match="100 dimensions and the embedding model makes 384"):
        clauses.find("Is there a non-compete?", np.zeros(384, dtype=np.float32))


def test_a_scoped_search_also_finds_the_chunks_the_clause_model_ranks_first_or_its_keywords_find(sample_index,
                                                                                                 embedder):
    """A chunk no words of the question find comes up when the clause model ranks it first, or (for a model
    learned from too few contracts to rank chunks) when it holds the model's keywords."""
    retriever = Retriever(sample_index, embedder)
    try:
        question = "Which state's law governs the agreement?"
        plain = retriever.search(question, 5, [NETGEAR]).hits
        doc = plain[0].doc_id
        got = retriever.kb.store.collection.get(where={"doc_id": doc}, include=["embeddings", "documents"])
        far = [cid for cid in got["ids"] if cid not in {h.chunk_id for h in plain}]
        target = np.asarray(got["embeddings"][got["ids"].index(far[-1])], dtype=np.float32)
        ranked = retriever.search(question, 5, [NETGEAR], Clause("probe", target, 0.0, "", RETRIEVAL_DOCUMENTS)).hits
        assert far[-1] in {h.chunk_id for h in ranked} and all(doc_of(h.chunk_id) == doc for h in ranked)
        weak = Clause("probe", target, 0.0, "", RETRIEVAL_DOCUMENTS - 1)  # ranks sentences, fetches no chunks
        assert far[-1] not in {h.chunk_id for h in retriever.search(question, 5, [NETGEAR], weak).hits}
        text = got["documents"][got["ids"].index(far[0])]
        words = [w for w in dict.fromkeys(text.lower().split()) if w.isalpha() and len(w) > 6][:4]
        found = retriever.search(question, 5, [NETGEAR], replace(weak, keywords=" ".join(words))).hits
        assert far[0] in {h.chunk_id for h in found}, words
    finally:
        retriever.close()


def test_quote_answers_with_and_without_clause_models(sample_index, embedder):
    with_models = Engine(sample_index, llm=RetrievalOnly(), retriever=Retriever(sample_index, embedder))
    without = Engine(sample_index.replace(clause_models="none"), llm=RetrievalOnly(),
                     retriever=Retriever(sample_index, embedder))
    try:
        answer = with_models.ask(GOVERNING_LAW, [NETGEAR], answer="quote")
        assert not answer.abstained and "laws of the State of California" in answer.quotes[0].shown()
        assert with_models.quoter.clause(GOVERNING_LAW) is not None and without.quoter.clause(GOVERNING_LAW) is None
        # without them, the question's words and meaning alone rank the sentences
        answer = without.ask("Which state's law governs the agreement?", [NETGEAR], answer="quote")
        assert not answer.abstained and "laws of the State of California" in answer.quotes[0].shown()
    finally:
        with_models.close()
        without.close()


@pytest.mark.slow
def test_calibration_fits_clause_models_that_find_clauses_in_contracts_they_never_saw(sample_index, tmp_path):
    """eval.calibrate_quotes on the sample's 410 questions: fitted on five contracts, measured on the other
    five, the clause models put a gold clause first more often than the same ranking without them."""
    out = tmp_path / "calibration"
    done = subprocess.run([sys.executable, "-m", "eval.calibrate_quotes", str(ROOT / "data" / "questions.jsonl"),
                           "--index", str(sample_index.index_dir), "--out", str(out), "--models",
                           str(tmp_path / "models.npz"), "--held-out", str(tmp_path / "held")],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "RAG_COLLECTION": sample_index.collection})
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.with_suffix(".json").read_text())
    for fold in summary["held_out"]:
        assert fold["with_clause_models"]["ungated_top1"] > fold["without"]["ungated_top1"]
    models = ClauseModels.load(tmp_path / "models.npz")
    assert models.embedding == BUNDLED_MODEL and 0 < len(models.questions) <= 41
    assert {p.name for p in (tmp_path / "held").iterdir()} == {"fold-1.npz", "fold-2.npz", "questions-1.jsonl",
                                                                "questions-2.jsonl"}
    assert "clause_threshold" in out.with_suffix(".md").read_text()
