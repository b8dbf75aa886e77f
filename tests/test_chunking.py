import re

import pytest

from rag.reading.chunking import PAGE_BREAK, chunk_pages
from rag.reading.filetypes import load_pages

from helpers import CONTRACTS


def words(texts):
    """A whitespace tokenizer: one token per run of non-space characters."""
    return [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]


def test_chunks_respect_the_limit_and_point_back_into_their_pages():
    pages = ["First sentence here. Second one follows it.\nA line without an end",
             "Page two begins. " + "word " * 40 + "end."]
    chunks = chunk_pages(pages, words, max_tokens=10, overlap=3)
    assert all(len(words([c.text])[0]) <= 10 for c in chunks)
    for c in chunks:
        if c.page_start == c.page_end:
            assert pages[c.page_start - 1][c.start:c.end] == c.text
        else:
            assert c.text == pages[c.page_start - 1][c.start:] + PAGE_BREAK + pages[c.page_end - 1][:c.end]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].text == "First sentence here. Second one follows it."  # cut at a sentence end
    # overlap: each chunk after the first starts inside the previous one's text (the sentence-end cut and a
    # page's first chunk excepted)
    offset = [0, len(pages[0]) + len(PAGE_BREAK)]
    starts = [offset[c.page_start - 1] + c.start for c in chunks]
    ends = [offset[c.page_end - 1] + c.end for c in chunks]
    assert all(b < e for b, e in zip(starts[2:], ends[1:]) if b != offset[1])


def test_a_page_opens_a_chunk_and_a_table_row_is_never_split():
    heading = "Consolidated Statement of Cash Flows\n(Millions) 2018 2017 2016\nInvesting activities:\n"
    rows = "".join(f"Purchases of property, plant and equipment no. {i}. (1,577) (1,373) (1,420)\n" for i in range(40))
    pages = ["Narrative text before the statements. " * 30, heading + rows, "Notes. " * 20]
    chunks = chunk_pages(pages, words, max_tokens=48, overlap=8)
    assert [c.start for c in chunks if c.page_start == 2][0] == 0  # the statement's page opens with its title
    assert any(c.text.startswith("Consolidated Statement") for c in chunks)
    page_starts = {c.page_start for c in chunks if c.start == 0}
    assert page_starts == {1, 2, 3}
    for c in chunks:
        if c.page_start == 2 and c.page_end == 2:
            assert c.text.endswith(("(1,420)", "2016")), c.text[-60:]  # rows end whole, never at "no. 7."
            assert pages[1][c.start - 1:c.start] in ("", "\n", " ")
            # one that starts inside the table carries its heading, and both fit the window together
            assert c.heading == ("" if c.start == 0 else "Consolidated Statement of Cash Flows\n(Millions) 2018 2017 2016")
            assert len(words([c.heading + "\n" + c.text])[0]) <= 48
    assert all(c.heading == "" for c in chunks if c.page_start != 2)


def test_every_word_is_in_some_chunk():
    pages = ["alpha beta. gamma delta epsilon. " * 30, "", "zeta eta theta."]
    chunks = chunk_pages(pages, words, max_tokens=20, overlap=4)
    covered = set()
    text = PAGE_BREAK.join(pages)
    offset = [0, len(pages[0]) + 2, len(pages[0]) + len(pages[1]) + 4]
    for c in chunks:
        at = offset[c.page_start - 1] + c.start
        assert text[at:at + len(c.text)] == c.text
        covered.update(range(at, at + len(c.text)))
    assert all(i in covered for m in re.finditer(r"\S+", text) for i in range(*m.span()))


def test_a_word_longer_than_the_window_is_cut_not_dropped():
    pages = ["x" * 50]  # one token for the whitespace tokenizer; cut by characters via the real one below
    chars = lambda texts: [[(i, i + 1) for i in range(len(t))] for t in texts]  # noqa: E731
    chunks = chunk_pages(pages, chars, max_tokens=16, overlap=0)
    assert "".join(c.text for c in chunks) == pages[0]
    assert all(len(c.text) <= 16 for c in chunks)


@pytest.mark.parametrize("name", sorted(p.name for p in CONTRACTS.glob("*.pdf"))[:4])
def test_real_contract_chunks_fit_the_embedding_window(embedder, name):
    path = CONTRACTS / name
    pages = load_pages(path, path.read_bytes()).pages
    window = embedder.chunk_tokens
    assert window == 254  # all-MiniLM-L6-v2 reads 256 word pieces, 2 of them [CLS] and [SEP]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(embedder.tokenizer_json())
    tokenize = lambda texts: [e.offsets for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]  # noqa: E731
    chunks = chunk_pages(pages, tokenize, window, 24)
    assert chunks
    lengths = [len(spans) for spans in tokenize([c.text for c in chunks])]
    assert max(lengths) <= window  # nothing silently cut by the model
    assert sum(lengths) / len(lengths) > 0.7 * window  # and chunks are not needlessly small
    for c in chunks:
        assert 1 <= c.page_start <= c.page_end <= len(pages)
        assert pages[c.page_start - 1][c.start:].startswith(c.text[:20])


def test_word_and_html_table_rows_are_rows_too():
    # Word and HTML tables come as one line per row, cells joined by " | " (rag.reading.filetypes)
    rows = "".join(f"Line item {i} | 1,{i:03d} | ({i},250) | 7.5%\n" for i in range(60))
    pages = ["Schedule of Fees\nItem | 2024 | 2023 | Change\n" + rows]
    chunks = chunk_pages(pages, words, max_tokens=80, overlap=6)
    assert len(chunks) > 3 and all(c.text.endswith("7.5%") for c in chunks)
    assert all(c.text.startswith("Line item") for c in chunks[1:])  # rows whole: no overlap inside one
    assert all(c.heading == "Schedule of Fees\nItem | 2024 | 2023 | Change" for c in chunks[1:])
