"""Quote answers: verbatim sentences from the stored pages, chosen without a language model, checked."""

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from eval.metrics import quote_matches
from rag.backends.openai import RetrievalOnly
from rag.engine import Engine
from rag.reading.filetypes import load_pages
from rag.indexer import ingest
from rag.knowledge_base import manifest_path
from rag.prompts import NOT_FOUND, WEAK_MATCH
from rag.quotes import MAX_CHARS, WEIGHTS, sentence_spans
from rag.retrieval import Retriever
from rag.review import FOUND

from helpers import CONTRACTS, ROOT, scripted

NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"


@pytest.fixture
def engine(sample_index, embedder):
    engine = Engine(sample_index, llm=RetrievalOnly(), retriever=Retriever(sample_index, embedder))
    yield engine
    engine.close()


def test_sentences_of_a_real_contract_page_are_whole_and_short():
    page = load_pages(CONTRACTS / NETGEAR, (CONTRACTS / NETGEAR).read_bytes()).pages[7]
    spans = sentence_spans(page)
    texts = [page[a:b] for a, b in spans]
    assert all(0 < len(t) <= MAX_CHARS and t == t.strip() for t in texts)
    assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))  # in order, never overlapping
    law = next(t for t in texts if "governed by the laws of the State of California" in " ".join(t.split()))
    assert " ".join(law.split()).startswith("19. ENTIRE AGREEMENT, GOVERNING LAW")  # the clause heading opens its sentence
    assert sentence_spans("The Company, Inc. pays U.S. dollars. Then e.g. this.") == [(0, 36), (37, 52)]


def test_a_quote_answer_is_the_clause_verbatim_at_its_page_and_offsets(engine, sample_index):
    answer = engine.ask("Which state's law governs the agreement?", [NETGEAR], answer="quote")
    assert answer.mode == "quote" and not answer.abstained and 1 <= len(answer.quotes) <= 3
    best = answer.quotes[0]
    assert "laws of the State of California" in best.shown() and answer.text == best.shown()
    assert best.file == NETGEAR and answer.citations[0].file == NETGEAR
    page = load_pages(CONTRACTS / NETGEAR, (CONTRACTS / NETGEAR).read_bytes()).pages[best.page - 1]
    for quote in answer.quotes:  # each is the stored page's text, and the PDF's own page holds it
        stored = engine.retriever.kb.page_texts(quote.doc_id, quote.page, quote.page)[quote.page]
        assert stored[quote.start:quote.end] == quote.text
    assert page[best.start:best.end] == best.text
    assert [q.score for q in answer.quotes] == sorted((q.score for q in answer.quotes), reverse=True)
    assert answer.prompt_tokens == 0 and sum(s["tokens"] for s in answer.sources) <= answer.budget == 4096


def test_a_question_the_documents_do_not_answer_gets_no_quote(engine):
    answer = engine.ask("Who won the 2018 football World Cup?", [NETGEAR], answer="quote")
    assert answer.abstained and answer.text == NOT_FOUND and answer.quotes == [] and answer.citations == []
    assert answer.ranked and answer.ranked[0].score < 0  # what was not good enough: under its threshold


def test_quote_answers_need_no_language_model(sample_index):
    """`rag ask` quotes by default with the bundled embedded model (too small to write answers), and never
    loads it (test_encoder: not even torch); a model that cannot load does not matter when quotes are asked."""
    env = {**os.environ, "RAG_LLM_URL": ""}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Which state's law governs the agreement?",
                          "--json", "--doc", NETGEAR, "--index", str(sample_index.index_dir), "--collection",
                          sample_index.collection], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["mode"] == "quote" and answer["abstained"] is False
    assert {"text", "file", "page", "start", "end"} <= set(answer["quotes"][0])
    assert "California" in answer["quotes"][0]["text"]
    printed = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Which state's law governs the agreement?",
                              "--doc", NETGEAR, "--index", str(sample_index.index_dir), "--collection",
                              sample_index.collection], capture_output=True, text=True, cwd=ROOT, env=env)
    assert printed.returncode == 0 and f"{NETGEAR}, p. {answer['quotes'][0]['page']}, characters" in printed.stdout
    assert "quote budget 4096" in printed.stderr
    broken = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Which state's law governs the agreement?",
                             "--doc", NETGEAR, "--index", str(sample_index.index_dir), "--collection",
                             sample_index.collection, "--answer", "quote"], capture_output=True, text=True, cwd=ROOT,
                            env={**env, "RAG_EMBEDDED_MODEL": "/nonexistent/model.gguf"})
    assert broken.returncode == 0 and "California" in broken.stdout, broken.stderr


def test_a_weak_match_is_never_presented_as_the_answer(engine, sample_index):
    """A question no contract answers drew a royalty clause as its answer, 0.04 over the threshold: a best quote
    under WEIGHTS.weak is a weak match ('may not say'), shown for judging; well under the threshold, none at all."""
    for question, documents in (("What price per Bitcoin is paid for the tokens delivered?", None),
                                ("Is there a non-compete?", [NETGEAR])):
        answer = engine.ask(question, documents, answer="quote")
        assert answer.abstained or answer.weak, (question, answer.ranked[:1])
        best = answer.ranked[0]  # a clause question about a contract is answered from its review (test_review)
        assert answer.text in (NOT_FOUND, WEAK_MATCH)
        assert best.score < WEIGHTS.weak if best.probability is None else best.probability < FOUND
    printed = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Who won the 2018 football World Cup?",
                              "--doc", NETGEAR, "--index", str(sample_index.index_dir), "--collection",
                              sample_index.collection], capture_output=True, text=True, cwd=ROOT)
    assert printed.returncode == 0 and printed.stdout.startswith(f"{NOT_FOUND} The closest sentences score")


def test_an_index_from_before_page_texts_is_read_again_once_without_embedding(settings, folder, embedder):
    ingest(folder, settings, embedder=embedder)
    with sqlite3.connect(manifest_path(settings)) as db:  # as an index made before page texts were kept
        db.execute("DELETE FROM pages")
    again = ingest(folder, settings, embedder=embedder)
    assert again.embedded == 0 and {f.reason for f in again.files} == {"page texts kept for quotes"}
    assert {f.status for f in ingest(folder, settings, embedder=embedder).files} == {"unchanged"}
    engine = Engine(settings, llm=RetrievalOnly(), retriever=Retriever(settings, embedder))
    answer = engine.ask("What is this agreement?", answer="quote")
    engine.close()
    assert answer.ranked and all(q.text for q in answer.ranked)


def test_the_quote_match_of_the_eval():
    clause = ("This Agreement shall be governed and construed in accordance with the laws of New York State "
              "(without regard to the conflict of laws provisions thereof).")
    assert quote_matches("This Agreement shall be governed by the laws of New York State.", [clause])
    assert quote_matches("DEVELOPMENT AGREEMENT This Agreement is made on", ["DEVELOPMENT AGREEMENT"])
    assert not quote_matches("The rent is due on the first day of each month.", [clause])
    assert not quote_matches("x " * 400 + clause, [clause])  # scored on its first 600 characters


def test_a_generated_answer_s_citations_are_checked_against_its_sources(sample_index, embedder, tmp_path):
    """A server model's answer quotes its sources; the quote that is in the source it cites is verified and
    placed on its page, the one that is not is said not to be, in the Answer and in what `rag ask` prints."""
    question, clause = "Which state's law governs the agreement?", "governed by the laws of the State of California"
    with scripted("scripted_llm.py", tmp_path) as (url, _):
        settings = sample_index.replace(llm_backend="vllm", llm_url=url)
        engine = Engine(settings, retriever=Retriever(settings, embedder))
        assert engine.mode == "generate"
        context = engine.context(question, [NETGEAR])
        holds = [s.number for s in context.packed.sources if clause in " ".join(s.text.split())]
        other = next(s.number for s in context.packed.sources if s.number not in holds)
        (tmp_path / "answer.txt").write_text(f'It is governed by California law [{holds[0]}] "{clause}". '
                                             f'It renews every decade [{other}] "{clause}".')
        answer = engine.answer(context)
        pages = engine.retriever.kb.page_texts
        [quote] = answer.quotes
        assert pages(quote.doc_id, quote.page, quote.page)[quote.page][quote.start:quote.end] == quote.text
        engine.close()
        printed = subprocess.run([sys.executable, "-m", "rag.cli", "ask", question, "--doc", NETGEAR, "--index",
                                  str(sample_index.index_dir), "--collection", sample_index.collection, "--llm-url",
                                  url], capture_output=True, text=True, cwd=ROOT)
    first, second = answer.citations
    assert (first.number, first.verified, second.number, second.verified) == (holds[0], True, other, False)
    assert second.quoted == clause
    assert " ".join(quote.text.split()) == clause and quote.source == holds[0]
    assert printed.returncode == 0, printed.stderr
    assert f"[{other}] {NETGEAR}" in printed.stdout and "NOT VERIFIED: its quoted words are not in this source" \
        in printed.stdout
    assert f"(p. {quote.page}, characters {quote.start}-{quote.end})" in printed.stdout


def test_one_quoter_serves_several_threads_while_its_cache_evicts(engine):
    """The app's sessions share one Engine: questions at once, with a cache too small for them, all answer."""
    from concurrent.futures import ThreadPoolExecutor

    engine.quoter.keep = 40  # every question pushes out what the others just embedded
    questions = ["Which state's law governs the agreement?", "Who are the parties?", "How can it be terminated?",
                 "What is the term of the agreement?"] * 2
    contexts = [engine.context(q, [NETGEAR], quoting=True) for q in questions]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(engine.quote_answer, contexts))
    assert all(a.ranked for a in answers) and len(engine.quoter._vectors) <= 40
    assert "laws of the State of California" in answers[0].ranked[0].shown()


def test_calibration_scores_every_sentence_exactly_as_answering_does(sample_index, embedder):
    """eval.calibrate_quotes fits the weights on the scores it computes; a quote answer ranks by the scores it
    computes. Both call rag.quotes.score: on the same sentences of real questions (one asking for a clause a
    model knows, one about the document itself, one for no clause at all) the margins are equal to the last bit."""
    from eval.calibrate_quotes import Pool, features, margins
    from eval.harness import Question
    from rag.domain.clause_models import BUNDLED, ClauseModels
    from rag.domain.clause_training import scored_by
    from rag.quotes import candidates

    asked = [Question("law", "Which state/country's law governs the interpretation of the contract?", (NETGEAR,)),
             Question("name", "What is the name of this contract?", (NETGEAR,)),
             Question("none", "What colour is the logo on the cover?", (NETGEAR,))]
    calibrating = Engine(sample_index.replace(clause_models="none"), llm=RetrievalOnly(),
                         retriever=Retriever(sample_index, embedder))
    answering = Engine(sample_index, llm=RetrievalOnly(), retriever=Retriever(sample_index, embedder))
    try:
        rows, vectors = features(asked, calibrating)
        pool = Pool(rows, vectors, scored_by(ClauseModels.load(BUNDLED), rows, vectors))
        calibrated = margins(pool, WEIGHTS)
        for i, q in enumerate(asked):
            context = calibrating.context(q.question, list(q.documents), quoting=True)
            found = candidates(context.packed.sources, answering.retriever.kb.page_texts)
            assert [c.text for c in found] == rows[i]["texts"] and len(found) > 10
            answered = answering.quoter.margins(q.question, found)
            assert answered.dtype == calibrated.dtype and np.array_equal(answered, calibrated[i, :len(found)]), q.id
        assert pool.has_clause.tolist() == [True, True, False]
        assert answering.quoter.clause(asked[2].question) is None  # and the opening counts for the name question:
        assert answering.quoter.identity(asked[1].question) > WEIGHTS.identity
    finally:
        calibrating.close()
        answering.close()
