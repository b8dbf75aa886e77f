import sqlite3

import pytest

from rag.config import Settings, load_settings
from rag.domain.contracts import CONTRACT_WORDS
from rag.lexical import LexicalIndex, Row, content_words, match_expression


def rows(doc, *texts):
    return [Row(f"{doc}-{i}", i, 1, 1, len(t.split()), t) for i, t in enumerate(texts)]


@pytest.fixture
def index():
    db = sqlite3.connect(":memory:", isolation_level=None)
    lexical = LexicalIndex(db, "kbase")
    lexical.put("d1", rows("d1", "This Agreement is governed by the laws of the State of California.",
                           "Either party may terminate this Agreement for convenience on 30 days notice."))
    lexical.put("d2", rows("d2", "The laws of Delaware govern; venue lies in Wilmington.",
                           "Payment is due within sixty days of invoice."))
    LexicalIndex(db, "other").put("x", rows("x", "California California California law"))  # another collection
    return lexical


def test_bm25_ranks_by_content_words_within_scope(index):
    assert {c for c, _ in index.search("Which state's law governs?", 2)} == {"d1-0", "d2-0"}
    assert index.search("What law governs? California", 1)[0][0] == "d1-0"
    assert [c for c, _ in index.search("governing law", 5, doc_ids=["d2"])] == ["d2-0"]
    assert index.search("terminated for convenience", 5)[0][0] == "d1-1"  # porter stemming
    assert index.search("California", 5, doc_ids=[]) == []
    scores = [s for _, s in index.search("laws of California and Delaware", 5)]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


def test_replace_and_drop_a_document(index):
    index.put("d1", rows("d1", "Replaced text about trademarks."))
    assert index.get(["d1-0", "d1-1", "x-0"]) == {"d1-0": Row("d1-0", 0, 1, 1, 4, "Replaced text about trademarks.")}
    assert index.search("convenience", 5) == []
    assert index.search("trademarks", 5)[0][0] == "d1-0"
    index.drop("d1")
    assert index.documents() == {"d2"}


@pytest.mark.parametrize("question", ['"quoted" NEAR(a b) OR -x* AND ^col:', "the of and", "", "ünïcödé térms?"])
def test_no_query_syntax_leaks_in(index, question):
    index.search(question, 5)  # never an FTS5 syntax error
    expression = match_expression(content_words(question))
    assert expression is None or all(part.startswith('"') and part.endswith('"') for part in expression.split(" OR "))


def test_common_words_are_pruned_with_counts_that_follow_the_index(tmp_path, monkeypatch):
    import rag.lexical

    monkeypatch.setattr(rag.lexical, "PRUNE_FROM", 0)
    monkeypatch.setattr(rag.lexical, "COMMON_SHARE", 0.5)
    reader = LexicalIndex(sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None), "kbase")
    writer = LexicalIndex(sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None), "kbase")
    reader.put("d1", rows("d1", "payment terms", "invoice dates", "widget specs", "other"))
    words = ["widgets", "payment", "invoice"]
    assert reader.selective(words) == words  # one chunk in four has each
    reader.put("d2", rows("d2", *["widget supply"] * 6))  # this connection's write
    assert reader.selective(words) == ["payment", "invoice"]  # 7 of 10 chunks: too common to rank by
    writer.drop("d2")  # another connection's write
    assert reader.selective(words) == words
    assert reader.search("widgets payment invoice", 3)[0][0] in {"d1-0", "d1-1", "d1-2"}


def test_within_documents_every_word_counts_and_only_their_rows_are_read(tmp_path, monkeypatch):
    """A word too common to rank the whole index by ("widget": in 7 of 10 chunks) still tells one document's
    chunks apart; and the search, narrowed to the documents' row ids, finds what an unnarrowed one finds."""
    import rag.lexical

    monkeypatch.setattr(rag.lexical, "PRUNE_FROM", 0)
    monkeypatch.setattr(rag.lexical, "COMMON_SHARE", 0.5)
    index = LexicalIndex(sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None), "kbase")
    index.put("d1", rows("d1", "widget warranty", "payment terms", "invoice dates", "other"))
    index.put("d2", rows("d2", *["widget supply"] * 6))
    index.put("d3", rows("d3", "payment of widget fees", "widget colours"))
    assert index.selective(["widget", "warranty"]) == ["widget", "warranty"]  # two words: both kept anyway
    assert "widget" not in index.selective(["widget", "payment", "invoice"])  # unscoped, it is dropped
    assert {c for c, _ in index.search("widget payment invoice", 5, doc_ids=["d1"])} == {"d1-0", "d1-1", "d1-2"}
    assert [c for c, _ in index.search("widget colours", 5, doc_ids=["d3"])] == ["d3-1", "d3-0"]
    both = index.search("widget payment", 10, doc_ids=["d1", "d3"])
    assert {c for c, _ in both} == {"d1-0", "d1-1", "d3-0", "d3-1"}  # d2, inside the id range, is filtered out
    assert index.search("widget", 5, doc_ids=["unknown"]) == []


OLD_SCHEMA = """
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, collection TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    chunk INTEGER NOT NULL, page_start INTEGER NOT NULL, page_end INTEGER NOT NULL, tokens INTEGER NOT NULL,
    text TEXT NOT NULL, UNIQUE (collection, chunk_id));
CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
"""


def test_a_tables_heading_is_searched_with_its_chunk_and_an_older_index_learns_headings(tmp_path):
    path = tmp_path / "manifest.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(OLD_SCHEMA)  # an index made before headings, holding a document
    db.execute("INSERT INTO chunks (collection, chunk_id, doc_id, chunk, page_start, page_end, tokens, text) "
               "VALUES ('kbase', 'old-0', 'old', 0, 1, 1, 5, 'Accounts payable 408 24 148')")
    db.close()
    db = sqlite3.connect(path, isolation_level=None)
    lexical = LexicalIndex(db, "kbase")
    LexicalIndex(db, "kbase")  # a second opening finds them current
    heading = "Consolidated Statement of Cash Flows\n(Millions) 2018 2017 2016"
    lexical.put("new", [Row("new-0", 0, 1, 1, 9, "Inventories (509) (387) 57", heading),
                        Row("new-1", 1, 1, 1, 9, "Operating lease cash flows 120 110")])
    assert [c for c, _ in lexical.search("consolidated statement of cash flows", 5)][0] == "new-0"
    assert lexical.get(["new-0"])["new-0"].heading == heading and lexical.get(["old-0"])["old-0"].heading == ""
    lexical.drop("old")  # a row indexed by the old trigger leaves the index cleanly (its words leave too)
    lexical.drop("new")
    assert lexical.search("accounts payable inventories statement", 5) == []
    assert db.execute("SELECT count(*) FROM chunks_vocab").fetchone()[0] == 0


def test_a_questions_plain_words_bring_the_words_contracts_use_unless_switched_off():
    asked = "Can they raise the prices?"
    assert content_words(asked, CONTRACT_WORDS) == ["raise", "increase", "prices", "fee", "rate", "charge"]
    assert content_words("What is the fee?", CONTRACT_WORDS) == ["fee"]  # only plain words are translated
    assert content_words(asked) == ["raise", "prices"]  # the generic search knows no contract words
    assert Settings().contract_words and load_settings(environ={"RAG_CONTRACT_WORDS": "0"}).contract_words is False
