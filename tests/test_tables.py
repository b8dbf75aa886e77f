"""Tables in a real filing (three statement pages of 3M's 2018 10-K, tests/files): rows stay whole on one line,
a page opens a chunk, a chunk that starts inside a table carries the table's heading into its vector and into
the model's prompt, and a hit on a statement brings the rest of it."""

import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from rag.reading.chunking import PAGE_BREAK, chunk_pages, embedded_text, in_table
from rag.config import Settings
from rag.engine import Engine
from rag.reading.filetypes import load_pages
from rag.indexer import ingest

FILING = Path(__file__).parent / "files" / "3M_2018_10K_pages_58-60.pdf"
CASH_FLOWS = "Consolidated Statement of Cash Flows"
ROW = "Purchases of property, plant and equipment (PP&E) (1,577) (1,373) (1,420)"


@pytest.fixture(scope="module")
def chunks(embedder):
    tokenizer = Tokenizer.from_str(embedder.tokenizer_json())
    tokenize = lambda texts: [e.offsets for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]  # noqa: E731
    pages = load_pages(FILING, FILING.read_bytes()).pages
    return pages, chunk_pages(pages, tokenize, embedder.chunk_tokens, 24), tokenize


def test_a_row_is_one_line(chunks):
    pages, _, _ = chunks
    assert ROW in pages[2].splitlines()
    assert "\xa0" not in "".join(pages) and "\n\n" not in pages[2]


def test_pages_open_chunks_and_chunks_end_between_rows(chunks, embedder):
    pages, found, tokenize = chunks
    assert {c.page_start for c in found if c.start == 0} == {1, 2, 3}
    for c in found:
        page = pages[c.page_end - 1]
        assert c.end == len(page) or page[c.end] == "\n" or not in_table(c.text), c.text[-80:]
        assert len(tokenize([embedded_text(c)])[0]) <= embedder.chunk_tokens  # the heading fits the window too
    inside = [c for c in found if c.page_start == 3 and c.start > 0]
    assert inside and all(c.heading == f"3M Company and Subsidiaries\n{CASH_FLOWS}\nYears ended December 31\n"
                          "(Millions) 2018 2017 2016" for c in inside), [c.heading for c in inside]
    assert all(c.heading == "" for c in found if c.start == 0)
    assert PAGE_BREAK not in "".join(c.text for c in found if c.page_start == c.page_end)


def test_a_hit_on_a_statement_brings_the_statement_and_its_heading(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(FILING, docs / FILING.name)
    settings = Settings(index_dir=tmp_path / "index", collection="tables")
    ingest(docs, settings, embedder=embedder)
    engine = Engine(settings)
    try:
        question = "How much did 3M spend on purchases of property, plant and equipment in 2018?"
        context = engine.context(question, budget=2048, quoting=True)
        found = next(s for s in context.packed.sources if ROW in s.text)
        lines = load_pages(FILING, FILING.read_bytes()).pages[2].splitlines()
        assert all(line in found.text for line in lines[4:-1])  # the whole statement, not the hit's few rows
        headed = [h for h in engine.retriever.search(question, 20).hits if h.heading]
        assert headed, "no chunk of the statements starts inside a table"
        block = next(s for s in engine.reordered(context, "golden").packed.sources).block()
        assert block.startswith("[1] 3M_2018_10K_pages_58-60.pdf, p")
        from rag.prompts import source_block
        shown = source_block(1, headed[0].file, headed[0].page_start, headed[0].page_end, headed[0].text,
                             heading=headed[0].heading)
        assert f"{headed[0].heading.splitlines()[-1]}, continued)\n" in shown
    finally:
        engine.close()
