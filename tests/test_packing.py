"""Packing invariants, with a word-count tokenizer and with the real Llama-3 tokenizer."""

import random
import re

import pytest

from rag.packing import ORDERINGS, Hit, overlap_join, pack
from rag.tokens import count_llama3

WORDS = [f"w{j}" for j in range(2000)]


def chunk_text(doc: str, i: int) -> str:
    return " ".join(f"{doc}{w}" for w in WORDS[i * 15: i * 15 + 20])  # 20 words, 5 shared with the next chunk


def hit(doc: str, i: int, rank: int) -> Hit:
    text = chunk_text(doc, i)
    return Hit(f"{doc}-{i}", doc, f"{doc}.pdf", f"/x/{doc}.pdf", i, i // 3 + 1, (i + 1) // 3 + 1,
               text, 1.0 / rank, rank, count_llama3([text])[0])  # the count ingestion stores


def neighbours(wanted):
    return {(doc, i): hit(doc, i, 10_000) for doc, i in wanted if 0 <= i < 100}


def word_count(text: str) -> int:
    return len(text.split())


def llama(text: str) -> int:
    return count_llama3([text])[0]


@pytest.mark.parametrize("count", [word_count, llama], ids=["words", "llama3"])
@pytest.mark.parametrize("ordering", ORDERINGS)
def test_budget_never_exceeded(count, ordering):
    rng = random.Random(7)
    for trial in range(40):
        picks = rng.sample([(d, i) for d in "ABC" for i in range(100)], rng.randint(1, 40))
        hits = [hit(d, i, r) for r, (d, i) in enumerate(picks, 1)]
        budget = rng.randint(0, 3000)
        packed = pack(hits, budget, count, ordering=ordering, neighbours=neighbours if trial % 2 else None, seed=trial,
                      llama_counts=count is llama)
        assert packed.tokens <= budget
        assert packed.tokens == sum(count(s.block()) for s in packed.sources) or count is llama
        assert count("".join(s.block() for s in packed.sources)) <= budget + len(packed.sources)
        assert [s.number for s in packed.sources] == list(range(1, len(packed.sources) + 1))
        inside = {r for s in packed.sources for r in s.hits}
        assert inside | {h.rank for h in packed.dropped} == {h.rank for h in hits}  # every hit accounted for


def test_orderings_shape():
    hits = [hit("A", 10 * r, r) for r in range(1, 7)]  # six separate chunks
    by = {o: [s.rank for s in pack(hits, 10_000, word_count, ordering=o).sources] for o in ORDERINGS}
    assert by["golden"] == [1, 2, 3, 4, 5, 6]
    assert by["reverse"] == [6, 5, 4, 3, 2, 1]
    assert by["sandwich"] == [1, 3, 4, 5, 6, 2]
    assert sorted(by["random"]) == by["golden"]
    assert by["random"] == [s.rank for s in pack(hits, 10_000, word_count, ordering="random").sources]  # seeded


def test_adjacent_hits_merge_with_their_overlap_once():
    packed = pack([hit("A", 4, 1), hit("B", 0, 2), hit("A", 5, 3), hit("A", 3, 4)], 10_000, word_count)
    first = packed.sources[0]
    assert (first.doc_id, first.first, first.last, first.hits) == ("A", 3, 5, (1, 3, 4))
    words = first.text.split()
    assert words == [f"A{w}" for w in WORDS[45:95]]  # chunks 3..5, each word once
    assert first.page_start == 2 and first.page_end == 3
    assert [s.rank for s in packed.sources] == [1, 2]


def test_a_hit_that_does_not_fit_is_reported_and_later_ones_still_go_in():
    big = Hit("big", "Z", "z.pdf", "/z.pdf", 0, 1, 1, "word " * 500, 1.0, 1)
    packed = pack([big, hit("A", 0, 2), hit("A", 50, 3)], 100, word_count)
    assert [h.chunk_id for h in packed.dropped] == ["big"]
    assert [s.rank for s in packed.sources] == [2, 3]


def test_neighbours_fill_the_budget_best_source_first():
    hits = [hit("A", 50, 1), hit("B", 50, 2)]
    tight = pack(hits, 60, word_count, neighbours=neighbours)
    assert [(s.first, s.last) for s in tight.sources] == [(50, 50), (50, 50)]
    roomy = pack(hits, 180, word_count, neighbours=neighbours, expand=3)
    a, b = roomy.sources
    assert a.last - a.first >= b.last - b.first >= 1  # the best source grew at least as much
    assert roomy.tokens <= 180
    assert a.hits == (1,)  # neighbours are context, not hits


def test_overlap_join():
    assert overlap_join("the quick brown fox", "brown fox jumps") == "the quick brown fox jumps"
    assert overlap_join("alpha beta", "gamma delta") == "alpha beta\ngamma delta"
    assert overlap_join("a clause. the term is", "the term is five years") == "a clause. the term is five years"


def test_real_consecutive_chunks_join_back_into_the_document(embedder):
    from tokenizers import Tokenizer

    from helpers import CONTRACTS
    from rag.reading.chunking import PAGE_BREAK, chunk_pages
    from rag.reading.filetypes import load_pages

    path = sorted(CONTRACTS.glob("*.pdf"))[0]
    pages = load_pages(path, path.read_bytes()).pages
    tokenizer = Tokenizer.from_str(embedder.tokenizer_json())
    tokenize = lambda texts: [e.offsets for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]  # noqa: E731
    chunks = chunk_pages(pages, tokenize, embedder.chunk_tokens, 24)
    joined = chunks[0].text
    for c in chunks[1:]:
        joined = overlap_join(joined, c.text)
    text = PAGE_BREAK.join(pages)
    # chunks overlap, except where a page opens a chunk: there the join puts one line break for the page break
    squeeze = lambda t: re.sub(r"\s+", " ", t)  # noqa: E731
    assert squeeze(joined) == squeeze(text[text.index(chunks[0].text):])[:len(squeeze(joined))]
