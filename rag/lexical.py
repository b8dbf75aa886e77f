"""The keyword half of retrieval: BM25 over every stored chunk, with SQLite's FTS5.

Chroma has no self-hosted BM25, and rebuilding a BM25 index per question is what makes other local
RAG tools crawl on large knowledge bases. FTS5 keeps a persistent inverted index that takes inserts
and deletes, ranks with BM25 (`bm25()`), and lives in the manifest's database: a document's chunks
enter it in the same transaction that marks the document complete, and leave it in the same one that
hides it for removal, so the keyword and vector halves always see the same documents.
"""

from __future__ import annotations

import re
import sqlite3
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple, Sequence

from rag.text import STOPWORDS

SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, collection TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    chunk INTEGER NOT NULL, page_start INTEGER NOT NULL, page_end INTEGER NOT NULL, tokens INTEGER NOT NULL,
    text TEXT NOT NULL, heading TEXT NOT NULL DEFAULT '', UNIQUE (collection, chunk_id));
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks (collection, doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
"""
# A chunk is found by its words and its table's heading's. Triggers made before headings indexed the text
# alone: replaced, and as a chunk without a heading is indexed as before, their rows stay valid.
INDEXED = "CASE WHEN {0}.heading = '' THEN {0}.text ELSE {0}.heading || char(10) || {0}.text END"
TRIGGERS = f"""
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text) VALUES (new.id, {INDEXED.format('new')}); END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, {INDEXED.format('old')}); END;
"""
# Per connection: the question's words through the same tokenizer, to learn their stems.
QUESTION_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS temp.question_fts USING fts5(word, tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS temp.question_vocab USING fts5vocab(temp, question_fts, 'instance');
"""
COMMON_SHARE = 0.02  # a word in more than this share of all chunks leaves the keyword query...
PRUNE_FROM = 5000  # ...once the index is large enough for it to matter
SQLITE_VARIABLES = 500  # ids bound in one `IN (...)`, well under SQLite's limit on a statement's variables (999)

_WORD = re.compile(r"\w+", re.UNICODE)


class Row(NamedTuple):
    chunk_id: str
    chunk: int  # index in its document
    page_start: int
    page_end: int
    tokens: int  # Llama-3 tokens
    text: str
    heading: str = ""  # a chunk that starts inside a table: the table's heading (rag.reading.chunking.table_heading)


def content_words(question: str, synonyms: Mapping[str, Sequence[str]] = MappingProxyType({})) -> list[str]:
    """The question's words for the keyword query, each followed by the words `synonyms` give for it (what
    contracts write for a plain word: rag.domain.contracts.CONTRACT_WORDS)."""
    words = [w for w in _WORD.findall(question.lower()) if w not in STOPWORDS]
    return list(dict.fromkeys(v for w in words for v in (w, *synonyms.get(w, ()))))


def match_expression(words: Sequence[str]) -> str | None:
    """An FTS5 query that ORs the words, each quoted (no query syntax leaks in)."""
    return " OR ".join(f'"{w}"' for w in words) or None


class LexicalIndex:
    """BM25 over the chunks of one collection, in the manifest's SQLite database (pass its connection)."""

    def __init__(self, db, collection: str):
        self.db, self.collection = db, collection
        self._df: dict[str, int] = {}  # chunks per word stem, for selective()
        self._df_version: tuple[int, int] | None = None
        db.executescript(SCHEMA + QUESTION_SCHEMA)
        if "heading" not in {row[1] for row in db.execute("PRAGMA table_info(chunks)")}:  # made before headings
            try:
                db.execute("ALTER TABLE chunks ADD COLUMN heading TEXT NOT NULL DEFAULT ''")
            except sqlite3.OperationalError as e:  # another process added it first
                if "duplicate column" not in str(e):
                    raise
        if not self._triggers_current():
            db.execute("BEGIN IMMEDIATE")
            try:
                if not self._triggers_current():  # another process may have replaced them meanwhile
                    db.execute("DROP TRIGGER IF EXISTS chunks_ai")
                    db.execute("DROP TRIGGER IF EXISTS chunks_ad")
                    for statement in TRIGGERS.strip().split("END;")[:-1]:
                        db.execute(statement + "END;")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _triggers_current(self) -> bool:
        found = dict(self.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN "
                                     "('chunks_ai', 'chunks_ad')"))
        return len(found) == 2 and all("heading" in sql for sql in found.values())

    def put(self, doc_id: str, chunks: Iterable[Row]) -> None:
        """The chunks of one document, replacing what it had."""
        self.drop(doc_id)
        self.db.executemany(
            "INSERT INTO chunks (collection, chunk_id, doc_id, chunk, page_start, page_end, tokens, text, heading) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(self.collection, r.chunk_id, doc_id, r.chunk, r.page_start, r.page_end, r.tokens, r.text, r.heading)
             for r in chunks])

    def get(self, chunk_ids: Sequence[str]) -> dict[str, Row]:
        """Stored chunks by id (texts and pages for hits and their neighbours, without asking Chroma)."""
        found: dict[str, Row] = {}
        for lo in range(0, len(chunk_ids), SQLITE_VARIABLES):
            part = list(chunk_ids[lo:lo + SQLITE_VARIABLES])
            rows = self.db.execute(
                "SELECT chunk_id, chunk, page_start, page_end, tokens, text, heading FROM chunks WHERE collection = ? "
                f"AND chunk_id IN ({','.join('?' * len(part))})", (self.collection, *part))
            found.update((r[0], Row(*r)) for r in rows)
        return found

    def openings(self, doc_ids: Sequence[str], chars: int = 600) -> list[tuple[str, str, str]]:
        """(chunk id, doc id, its first `chars` characters) of the documents' chunks that do not start inside a
        table (they have no heading), in document order: where a table, a statement, may open."""
        if not doc_ids:
            return []
        return self.db.execute(
            f"SELECT chunk_id, doc_id, substr(text, 1, ?) FROM chunks WHERE collection = ? AND heading = '' "
            f"AND doc_id IN ({','.join('?' * len(doc_ids))}) ORDER BY doc_id, chunk",
            (chars, self.collection, *doc_ids)).fetchall()

    def drop(self, doc_id: str) -> None:
        self.db.execute("DELETE FROM chunks WHERE collection = ? AND doc_id = ?", (self.collection, doc_id))

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM chunks WHERE collection = ?", (self.collection,)).fetchone()[0]

    def documents(self) -> set[str]:
        rows = self.db.execute("SELECT DISTINCT doc_id FROM chunks WHERE collection = ?", (self.collection,))
        return {r[0] for r in rows}

    def search(self, question: str, k: int, doc_ids: Sequence[str] | None = None,
               synonyms: Mapping[str, Sequence[str]] = MappingProxyType({})) -> list[tuple[str, float]]:
        """The k best chunks by BM25, as (chunk_id, score) with higher = better; optionally within documents;
        each of the question's words also searched as the words `synonyms` give for it (content_words).

        Within documents every content word is kept: a word common across the whole index ("exclusive" in a
        folder of distribution agreements) still tells one contract's clauses apart."""
        words = content_words(question, synonyms)
        expression = match_expression(words if doc_ids is not None else self.selective(words))
        if expression is None or k <= 0 or (doc_ids is not None and not doc_ids):
            return []
        ranked = "SELECT rowid, bm25(chunks_fts) AS rank FROM chunks_fts WHERE chunks_fts MATCH ?"
        if doc_ids is None:  # rank in FTS5 alone, then look up the k best: joining every match costs 3x
            rows = self.db.execute(
                f"SELECT c.chunk_id, f.rank FROM ({ranked} ORDER BY rank LIMIT ?) f JOIN chunks c ON c.id = f.rowid "
                "WHERE c.collection = ? ORDER BY f.rank", (expression, k, self.collection)).fetchall()
            if len(rows) == k or len(rows) == self._matches(expression, k):
                return [(chunk_id, -rank) for chunk_id, rank in rows]  # FTS5's bm25() is lower-is-better
        scope, within = "", ()
        if doc_ids is not None:
            marks = ",".join("?" * len(doc_ids))
            scope = f" AND c.doc_id IN ({marks})"
            # A document's chunks are stored in one insert, so their row ids are consecutive: FTS5 reads only
            # that range of each word's matches (all of them, for a word in every chunk, would take 60 ms
            # on 100K chunks instead of a few); the join still checks each row's document.
            within = self.db.execute(f"SELECT min(id), max(id) FROM chunks WHERE collection = ? AND doc_id IN "
                                     f"({marks})", (self.collection, *doc_ids)).fetchone()
            if within[0] is None:
                return []
            ranked += " AND rowid BETWEEN ? AND ?"
        rows = self.db.execute(  # scoped, or other collections share the database: filter every match
            f"SELECT c.chunk_id, f.rank FROM ({ranked}) f JOIN chunks c ON c.id = f.rowid "
            f"WHERE c.collection = ?{scope} ORDER BY f.rank LIMIT ?",
            (expression, *within, self.collection, *(doc_ids or ()), k))
        return [(chunk_id, -rank) for chunk_id, rank in rows]

    def _matches(self, expression: str, k: int) -> int:
        """How many chunks (of any collection) match, counting to k at most."""
        return self.db.execute("SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
                               (expression, k)).fetchone()[0]

    def selective(self, words: list[str]) -> list[str]:
        """The words that are not in more than COMMON_SHARE of all chunks (at least the two rarest).

        A word in many chunks adds little to BM25 but makes an OR query rank much of the index: on 100K
        chunks, BM25 p50 was 110 ms with every word, 37 ms without words in >10% of chunks, 12 ms >2%.
        Counting a common word's chunks reads its whole posting list, so counts are kept until the
        index changes (SQLite's data_version for other connections' writes, total_changes for ours).
        """
        if len(words) <= 2 or (total := self.db.execute("SELECT max(id) FROM chunks").fetchone()[0] or 0) < PRUNE_FROM:
            return words
        version = (self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes)
        if version != self._df_version:
            self._df, self._df_version = {}, version
        self.db.execute("DELETE FROM temp.question_fts")
        self.db.executemany("INSERT INTO temp.question_fts (rowid, word) VALUES (?, ?)", enumerate(words))
        stems = {words[doc]: term for term, doc in self.db.execute("SELECT term, doc FROM temp.question_vocab")}
        if unknown := [t for t in set(stems.values()) if t not in self._df]:
            found = dict(self.db.execute(f"SELECT term, doc FROM chunks_vocab WHERE term IN ({','.join('?' * len(unknown))})",
                                         unknown))
            self._df.update((t, found.get(t, 0)) for t in unknown)
        self._df_version = (version[0], self.db.total_changes)  # our temp-table writes are not index changes
        count = {w: self._df.get(stems.get(w), 0) for w in words}
        kept = [w for w in words if count[w] <= COMMON_SHARE * total]
        return kept if len(kept) >= 2 else sorted(words, key=count.get)[:2]
