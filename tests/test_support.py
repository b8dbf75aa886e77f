"""A written answer is checked against its sources before anyone reads it: names, places, figures and dates no
source it cites holds are marked, an answer with none supported is shown as such beside the quote answer, and
a page is never shown as the support of an answer it contradicts. Real pages, a real server process."""

import json
import subprocess
import sys

import pytest

from rag.citations import claims, support
from rag.engine import Engine
from rag.knowledge_base import KnowledgeBase
from rag.retrieval import Retriever

from helpers import ROOT, scripted

NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"
TICKETS = "TICKETSCOMINC_06_22_1999-EX-10.22-SPONSORSHIP_AGREEMENT.pdf"


@pytest.fixture(scope="module")
def netgear_page_8(sample_index):
    """The page of the NETGEAR agreement that holds its governing-law clause (California)."""
    kb = KnowledgeBase.open(sample_index)
    try:
        [doc_id] = [row.doc_id for path, row in kb.manifest.files().items() if path.endswith(NETGEAR)]
        return kb.page_texts(doc_id, 8, 8)[8]
    finally:
        kb.close()


def test_claims_are_the_names_places_figures_and_dates_an_answer_states():
    assert claims("The CEO's annual salary is $1.1 million [2].", "What is the CEO's annual salary?") == [
        "1.1 million"]  # the question's words state nothing; [2] is no figure
    assert claims("It is governed by the 10th Amendment.") == ["10th", "Amendment"]
    assert claims("Payment is due on May 8, 2014 in Delaware.") == ["8", "2014", "Payment", "May", "Delaware"]
    assert claims("The documents do not say.") == []


def test_support_is_read_in_the_page_itself(netgear_page_8):
    question = "Which state's law governs the agreement?"
    assert "California" in netgear_page_8 and "Tennessee" not in netgear_page_8
    assert support("California law governs it.", question, [netgear_page_8]).verdict == "supported"
    told = support("Tennessee", question, [netgear_page_8])
    assert (told.verdict, told.unsupported) == ("unsupported", ("Tennessee",))
    partly = support("California, and the 10th Amendment.", question, [netgear_page_8])
    assert partly.verdict == "partly supported" and "10th" in partly.unsupported
    assert support("$1,100,000", "", ["a fee of $1.1 million"]).verdict == "supported"  # a figure, written otherwise


def answer_from(url, sample_index, embedder, question, documents, answer_text, tmp_path):
    (tmp_path / "answer.txt").write_text(answer_text)
    settings = sample_index.replace(llm_backend="vllm", llm_url=url)
    engine = Engine(settings, retriever=Retriever(settings, embedder))
    try:
        return engine.ask(question, documents)
    finally:
        engine.close()


def test_an_invented_answer_is_unsupported_and_the_quote_answer_stands_beside_it(sample_index, embedder, tmp_path):
    """The bundled model answered "$1.1 million" for a CEO's salary no document mentions: here a real server
    process says the same, and `rag ask` says plainly not to rely on it, and what the documents do say."""
    question = "What is the CEO's annual salary?"
    with scripted("scripted_llm.py", tmp_path) as (url, _):
        answer = answer_from(url, sample_index, embedder, question, [TICKETS],
                             "The CEO's annual salary is $1.1 million.", tmp_path)
        printed = subprocess.run([sys.executable, "-m", "rag.cli", "ask", question, "--doc", TICKETS, "--index",
                                  str(sample_index.index_dir), "--collection", sample_index.collection, "--llm-url",
                                  url], capture_output=True, text=True, cwd=ROOT)
        listed = subprocess.run([sys.executable, "-m", "rag.cli", "ask", question, "--doc", TICKETS, "--index",
                                 str(sample_index.index_dir), "--collection", sample_index.collection, "--llm-url",
                                 url, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert (answer.support, answer.unsupported) == ("unsupported", ["1.1 million"])
    assert answer.citations == []  # no page is offered as its support
    assert answer.instead is not None and answer.instead.mode == "quote"
    assert answer.instead.ranked and all(q.file == TICKETS for q in answer.instead.ranked)
    assert printed.returncode == 0, printed.stderr
    assert "UNSUPPORTED: nothing it states (1.1 million) is in the sources it cites" in printed.stdout
    assert "What the documents say, in their own words" in printed.stdout
    got = json.loads(listed.stdout)
    assert got["support"] == "unsupported" and got["instead"]["mode"] == "quote"


def test_a_page_that_contradicts_the_answer_is_never_shown_as_its_support(sample_index, embedder, tmp_path):
    """The app showed NETGEAR p. 8 (California) under a generated "Tennessee" as "matched by its words"."""
    question = "Which state's law governs this agreement? Answer with the state."
    with scripted("scripted_llm.py", tmp_path) as (url, _):
        wrong = answer_from(url, sample_index, embedder, question, [NETGEAR],
                            "The agreement is governed by the laws of the State of Tennessee.", tmp_path)
        right = answer_from(url, sample_index, embedder, question, [NETGEAR],
                            "The agreement is governed by the laws of the State of California.", tmp_path)
    assert wrong.citations == [] and wrong.support == "unsupported" and wrong.unsupported == ["Tennessee"]
    [cited] = right.citations
    assert cited.inferred and "California" in cited.passage and right.support == "supported"
    assert right.instead is None


@pytest.mark.slow
def test_the_cli_says_the_bundled_model_is_too_small_to_write_answers(sample_index):
    done = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Which state's law governs the agreement?",
                           "--doc", NETGEAR, "--index", str(sample_index.index_dir), "--collection",
                           sample_index.collection, "--answer", "generate", "--backend", "embedded"],
                          capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ,
                                                                         "RAG_MAX_ANSWER_TOKENS": "16",
                                                                         "RAG_BUDGET": "256"})
    assert done.returncode == 0, done.stderr
    assert "WARNING: the bundled SmolLM2-135M is too small to write answers" in done.stderr
