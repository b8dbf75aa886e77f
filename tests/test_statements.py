"""A filing's financial statements for the questions that need them (rag.domain.filings): on real pages of 3M's
2018 10-K (tests/files) — its liquidity discussion, the auditor's report that names every statement, the
income statement and the balance sheet — a question that names a statement, or asks for a figure only a
statement holds, gets that statement, where vector and keyword search alone bring the prose about it."""

import json
import shutil
from pathlib import Path

import pytest

from rag.domain import filings
from rag.backends.openai import RetrievalOnly
from rag.config import Settings
from rag.engine import Engine
from rag.reading.filetypes import load_pages
from rag.indexer import ingest
from rag.retrieval import Retriever

FILES = Path(__file__).parent / "files"
FILING = FILES / "3M_2018_10K_pages_43-44_54_56_58.pdf"  # pages 43-44, 54, 56, 58 of the 10-K
STATEMENT_PAGES = FILES / "3M_2018_10K_pages_58-60.pdf"  # balance sheet, changes in equity, cash flows
DATA = Path(__file__).parents[1] / "data"
QUICK_RATIO = "Does 3M have a reasonably healthy liquidity profile based on its quick ratio for FY2018?"


@pytest.mark.parametrize("question, wanted", [
    ("Using the balance sheet, what were 3M's total assets?", ("balance sheet",)),
    ("What is the FY2019 fixed asset turnover ratio? Base it on the statement of income and the statement of "
     "financial position.", ("balance sheet", "income statement")),
    ("What is Amazon's FY2017 days payable outstanding (DPO)? Use the balance sheet and the P&L statement.",
     ("balance sheet", "income statement")),
    ("What is the FY2018 capital expenditure amount (in USD millions) for 3M?", ("cash flow statement",)),
    ("Among operations, investing, and financing activities, which brought in the most cash?",
     ("cash flow statement",)),
    ("Is Verizon a capital intensive business based on FY 2022 data?",
     ("balance sheet", "income statement", "cash flow statement")),
    (QUICK_RATIO, ("balance sheet",)),
    ("What drove gross margin change as of FY2022 for JnJ?", ("income statement",)),
    ("Which business segment of JnJ will be treated as a discontinued operation?", ()),
])
def test_the_statements_a_question_needs(question, wanted):
    assert filings.asked(question) == wanted


def test_contract_questions_ask_for_no_statement():
    questions = [json.loads(line)["question"] for line in (DATA / "questions.jsonl").open()]
    assert questions and not [q for q in questions if filings.asked(q)]


def test_a_statement_is_known_by_its_title_above_its_rows():
    pages = load_pages(FILING, FILING.read_bytes()).pages + load_pages(STATEMENT_PAGES,
                                                                        STATEMENT_PAGES.read_bytes()).pages
    assert [filings.title(p) for p in pages] == [
        None, None,  # the liquidity discussion (it names the balance sheet in prose)
        None,  # the auditor's report: "the consolidated balance sheet ... statements of income ... cash flows"
        "income statement",  # "Consolidated Statement of Incom e": PDF text splits words
        "balance sheet", "balance sheet",  # "Consolidated Balance Shee t", in both files
        None,  # changes in equity
        "cash flow statement"]
    assert filings.title("Index to Financial Statements\nConsolidated Balance Sheet 58\nConsolidated "
                            "Statement of Cash Flows 60\n") is None  # no rows follow: an index
    assert filings.title("Balance Sheet Data\nTotal assets 36,500 37,987 32,906\nLong-term debt 13,411 "
                            "12,096 10,678\n") is None  # selected data, its title no statement's


@pytest.mark.parametrize("line, name", [
    ("CONSOLIDATED STATEMENTS OF INCOME (LOSS)", "income statement"),
    ("Consolidated Statements of Operations and Comprehensive Loss", "income statement"),
    ("Statements of Consolidated Income", "income statement"),
    ("CONDENSED CONSOLIDATED BALANCE SHEETS (Unaudited) (in millions)", "balance sheet"),
    ("Consolidated Statement of Financial Position", "balance sheet"),
    ("Consolidated Statements of Cash Flows (continued)", "cash flow statement"),
    ("Consolidated Statements of Comprehensive Income", None),  # not the income statement
    ("Balance Sheet Data", None),
])
def test_statement_titles_as_filings_write_them(line, name):
    assert filings.title(f"ACME CORP\n{line}\nNet sales $ 1,000 $ 900\nCost of sales 600 500\n") == name


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("statements")
    (root / "docs").mkdir()
    shutil.copy(FILING, root / "docs" / FILING.name)
    shutil.copy(DATA / "contracts" / "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf", root / "docs")
    settings = Settings(index_dir=root / "index", collection="statements")
    assert not ingest(root / "docs", settings, embedder=embedder).has_failures
    return settings


@pytest.mark.parametrize("scoped", [True, False])
def test_a_question_that_needs_the_balance_sheet_gets_it(index, embedder, scoped):
    found = {}
    for on in (True, False):
        settings = index.replace(statements=on)
        engine = Engine(settings, llm=RetrievalOnly(), retriever=Retriever(settings, embedder))
        try:
            context = engine.context(QUICK_RATIO, [FILING.name] if scoped else None, budget=1000, quoting=True)
        finally:
            engine.close()
        found[on] = "\n".join(s.text for s in context.packed.sources)
    assert "Total current liabilities" in found[True] and "Total current assets" in found[True]
    assert "Total current liabilities" not in found[False]  # the prose about liquidity wins without it


def test_a_named_statement_comes_first(index, embedder):
    engine = Engine(index, llm=RetrievalOnly(), retriever=Retriever(index, embedder))
    try:
        context = engine.context("Based on the P&L, what was 3M's FY2018 gross margin?", [FILING.name],
                                 budget=1000, quoting=True)
    finally:
        engine.close()
    best = min(context.packed.sources, key=lambda s: s.rank)
    assert best.page_start == 4 and "Cost of sales 16,682 16,055 15,118" in best.text  # the income statement
