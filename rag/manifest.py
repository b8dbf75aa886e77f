"""What the index holds, in SQLite beside it: documents (by content) and the files that point at them.

A document is `pending` while its chunks are written and becomes `complete` only after the last one is
stored; queries hide every document that is not complete. A file row maps a path to its document (or
to the reason it could not be indexed). Every change is one SQLite transaction, so a killed ingest
leaves rows that the next run can trust: complete documents are whole, pending ones are resumed or
removed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from typing import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.lexical import SQLITE_VARIABLES, LexicalIndex
from rag.paths import loaded, stored, valid_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL, doc_id TEXT NOT NULL, sha256 TEXT NOT NULL, state TEXT NOT NULL,
    path TEXT NOT NULL, pages INTEGER NOT NULL, chunks INTEGER NOT NULL, tokens INTEGER NOT NULL,
    ingested_at REAL NOT NULL, PRIMARY KEY (collection, doc_id));
CREATE TABLE IF NOT EXISTS generations (collection TEXT PRIMARY KEY, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    collection TEXT NOT NULL, path TEXT NOT NULL, doc_id TEXT, size INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, pages INTEGER NOT NULL, chunks INTEGER NOT NULL,
    updated_at REAL NOT NULL, sha256 TEXT NOT NULL DEFAULT '', reading TEXT NOT NULL DEFAULT '',
    read_reason TEXT NOT NULL DEFAULT '', read_at REAL NOT NULL DEFAULT 0, PRIMARY KEY (collection, path));
CREATE TABLE IF NOT EXISTS pages (
    collection TEXT NOT NULL, doc_id TEXT NOT NULL, page INTEGER NOT NULL, text TEXT NOT NULL,
    ocr INTEGER NOT NULL DEFAULT 0, section TEXT NOT NULL DEFAULT '', PRIMARY KEY (collection, doc_id, page));
CREATE TABLE IF NOT EXISTS reviews (
    collection TEXT NOT NULL, doc_id TEXT NOT NULL, model TEXT NOT NULL, cells TEXT NOT NULL,
    PRIMARY KEY (collection, doc_id));
"""
# columns added since the first manifests, by table: an older manifest gets them (with their defaults) when opened
ADDED_COLUMNS = {
    "pages": (("ocr", "INTEGER NOT NULL DEFAULT 0"), ("section", "TEXT NOT NULL DEFAULT ''")),
    "files": (("sha256", "TEXT NOT NULL DEFAULT ''"), ("reading", "TEXT NOT NULL DEFAULT ''"),
              ("read_reason", "TEXT NOT NULL DEFAULT ''"), ("read_at", "REAL NOT NULL DEFAULT 0")),
}
FILE_COLUMNS = "path, doc_id, size, status, reason, pages, chunks, updated_at, sha256, reading, read_reason, read_at"


@dataclass(frozen=True)
class Document:
    doc_id: str
    sha256: str
    state: str  # pending | complete
    path: str  # the path its chunks are labelled with
    pages: int
    chunks: int
    tokens: int  # Llama-3 tokens of its text
    ingested_at: float


@dataclass(frozen=True)
class FileRow:
    path: str
    doc_id: str | None
    size: int
    status: str
    reason: str
    pages: int
    chunks: int
    updated_at: float
    # a file that was read and gave nothing to index (failed, no_text): the bytes that were read, the signature
    # of what decided the reading (rag.indexer), the reason it gave and when; the same bytes under the same
    # signature are not read again
    sha256: str = ""
    reading: str = ""
    read_reason: str = ""
    read_at: float = 0.0


class Manifest:
    """Opened by rag.knowledge_base.KnowledgeBase, which owns where it lives."""

    def __init__(self, path: Path, collection: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.collection = collection
        # check_same_thread=False: retrieval runs the keyword search in a thread while the vector search
        # runs; the connection is never used by two threads at once
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        for table, added in ADDED_COLUMNS.items():  # made by an older version?
            columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for column, kind in added:
                if column not in columns:
                    try:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    except sqlite3.OperationalError as e:  # another process added it first
                        if "duplicate column" not in str(e):
                            raise
        self.lexical = LexicalIndex(self.db, collection)  # BM25 over the chunks, in this same database
        self.reading = threading.Lock()  # held by a thread that reads while its caller does something else

    def close(self) -> None:
        """Close the database, after stopping and awaiting a thread's read: a caller stopped by Ctrl-C closes
        while its search thread may still be reading, and SQLite crashes the process when closed under a query."""
        if not self.reading.acquire(blocking=False):
            self.db.interrupt()  # only then: an interrupt left pending would also stop close's checkpoint
            self.reading.acquire()
            with contextlib.suppress(sqlite3.OperationalError):
                self.db.execute("SELECT 1")  # takes any interrupt still pending
        try:
            self.db.close()
        finally:
            self.reading.release()

    @contextlib.contextmanager
    def transaction(self):
        """Statements inside land together or not at all, and make a new generation of the knowledge base
        (readers in other processes notice it, and refresh what they hold in memory)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.db.execute("INSERT INTO generations VALUES (?, 1) ON CONFLICT (collection) DO UPDATE SET "
                            "generation = generation + 1", (self.collection,))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def generation(self) -> int:
        """How many times the knowledge base has changed (0: never written)."""
        row = self.db.execute("SELECT generation FROM generations WHERE collection = ?", (self.collection,)).fetchone()
        return row[0] if row else 0

    def changed_elsewhere(self) -> bool:
        """Whether another connection committed since this was last asked (SQLite's data_version: cheap)."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        changed, self._data_version = version != getattr(self, "_data_version", version), version
        return changed

    def chunk_counts(self) -> tuple[int, int]:
        """Chunks of complete documents, and of all documents (being written or removed included)."""
        row = self.db.execute("SELECT COALESCE(SUM(CASE WHEN state = 'complete' THEN chunks END), 0), "
                              "COALESCE(SUM(chunks), 0) FROM documents WHERE collection = ?",
                              (self.collection,)).fetchone()
        return row[0], row[1]

    # documents
    def documents(self) -> dict[str, Document]:
        rows = self.db.execute(
            "SELECT doc_id, sha256, state, path, pages, chunks, tokens, ingested_at FROM documents "
            "WHERE collection = ?", (self.collection,))
        return {r[0]: _document(r) for r in rows}

    def has_documents(self) -> bool:
        return self.db.execute("SELECT 1 FROM documents WHERE collection = ? AND state = 'complete' LIMIT 1",
                               (self.collection,)).fetchone() is not None

    def document(self, doc_id: str) -> Document | None:
        row = self.db.execute(
            "SELECT doc_id, sha256, state, path, pages, chunks, tokens, ingested_at FROM documents "
            "WHERE collection = ? AND doc_id = ?", (self.collection, doc_id)).fetchone()
        return _document(row) if row else None

    def paths(self, doc_ids) -> dict[str, str]:
        """The path each complete document's chunks are labelled with."""
        ids = list(doc_ids)
        found: dict[str, str] = {}
        for lo in range(0, len(ids), SQLITE_VARIABLES):
            part = ids[lo:lo + SQLITE_VARIABLES]
            found.update((doc_id, loaded(path)) for doc_id, path in self.db.execute(
                f"SELECT doc_id, path FROM documents WHERE collection = ? AND state = 'complete' "
                f"AND doc_id IN ({','.join('?' * len(part))})", (self.collection, *part)))
        return found

    def hidden(self) -> list[str]:
        """Documents whose chunks queries must not see (being written, or being removed)."""
        rows = self.db.execute("SELECT doc_id FROM documents WHERE collection = ? AND state != 'complete'",
                               (self.collection,))
        return [r[0] for r in rows]

    def put_document(self, doc: Document) -> None:
        self.db.execute("INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                        (self.collection, doc.doc_id, doc.sha256, doc.state, stored(doc.path), doc.pages, doc.chunks,
                         doc.tokens, doc.ingested_at))

    def set_state(self, doc_id: str, state: str) -> None:
        self.db.execute("UPDATE documents SET state = ? WHERE collection = ? AND doc_id = ?",
                        (state, self.collection, doc_id))

    def set_path(self, doc_id: str, path: str) -> None:
        self.db.execute("UPDATE documents SET path = ? WHERE collection = ? AND doc_id = ?",
                        (stored(path), self.collection, doc_id))

    def drop_document(self, doc_id: str) -> None:
        self.db.execute("DELETE FROM documents WHERE collection = ? AND doc_id = ?", (self.collection, doc_id))
        self.db.execute("DELETE FROM pages WHERE collection = ? AND doc_id = ?", (self.collection, doc_id))
        self.db.execute("DELETE FROM reviews WHERE collection = ? AND doc_id = ?", (self.collection, doc_id))

    # contract reviews: a document's cells (rag.review), as JSON, and the review model that made them
    def put_review(self, doc_id: str, model: str, cells: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO reviews (collection, doc_id, model, cells) VALUES (?, ?, ?, ?)",
                        (self.collection, doc_id, model, cells))

    def reviews(self, model: str, doc_ids: Sequence[str] | None = None) -> dict[str, str]:
        """The stored cells (JSON) of each document reviewed by `model` (of those of `doc_ids`, given)."""
        if doc_ids is None:
            return dict(self.db.execute("SELECT doc_id, cells FROM reviews WHERE collection = ? AND model = ?",
                                        (self.collection, model)))
        found = {}
        for at in range(0, len(doc_ids), SQLITE_VARIABLES):
            chunk = list(doc_ids[at:at + SQLITE_VARIABLES])
            found.update(self.db.execute(
                f"SELECT doc_id, cells FROM reviews WHERE collection = ? AND model = ? AND doc_id IN "
                f"({', '.join('?' * len(chunk))})", (self.collection, model, *chunk)))
        return found

    # page texts: what quotes are cut from and checked against
    def put_pages(self, doc_id: str, texts: list[str], ocr: Sequence[int] = (), sections: Sequence[str] = ()) -> None:
        """A document's page texts; `ocr`: the numbers of those read by OCR; `sections`: for a document without
        pages, each one's section label."""
        self.db.execute("DELETE FROM pages WHERE collection = ? AND doc_id = ?", (self.collection, doc_id))
        labels = list(sections) + [""] * (len(texts) - len(sections))
        self.db.executemany(
            "INSERT INTO pages (collection, doc_id, page, text, ocr, section) VALUES (?, ?, ?, ?, ?, ?)",
            ((self.collection, doc_id, n, valid_text(t), int(n in ocr), valid_text(label))
             for n, (t, label) in enumerate(zip(texts, labels), 1)))

    def sections(self, doc_ids: Iterable[str]) -> dict[str, dict[int, str]]:
        """Each page's section label, of each of the documents that has them (Word, HTML)."""
        found: dict[str, dict[int, str]] = {}
        ids = list(doc_ids)
        for lo in range(0, len(ids), SQLITE_VARIABLES):
            part = ids[lo:lo + SQLITE_VARIABLES]
            for doc_id, page, label in self.db.execute(
                    f"SELECT doc_id, page, section FROM pages WHERE collection = ? AND section != '' AND doc_id IN "
                    f"({','.join('?' * len(part))})", (self.collection, *part)):
                found.setdefault(doc_id, {})[page] = label
        return found

    def ocr_pages(self, doc_ids: Iterable[str]) -> dict[str, set[int]]:
        """The pages read by OCR, of each of the documents that has any."""
        found: dict[str, set[int]] = {}
        ids = list(doc_ids)
        for lo in range(0, len(ids), SQLITE_VARIABLES):
            part = ids[lo:lo + SQLITE_VARIABLES]
            for doc_id, page in self.db.execute(
                    f"SELECT doc_id, page FROM pages WHERE collection = ? AND ocr = 1 AND doc_id IN "
                    f"({','.join('?' * len(part))})", (self.collection, *part)):
                found.setdefault(doc_id, set()).add(page)
        return found

    def pages(self, doc_id: str, first: int, last: int) -> dict[int, str]:
        """The stored text of pages first..last (1-based) of a document, by page number."""
        return dict(self.db.execute("SELECT page, text FROM pages WHERE collection = ? AND doc_id = ? AND page "
                                    "BETWEEN ? AND ?", (self.collection, doc_id, first, last)))

    def without_pages(self) -> set[str]:
        """Complete documents whose page texts are not stored (indexed by a version that did not keep them)."""
        rows = self.db.execute(
            "SELECT doc_id FROM documents d WHERE collection = ? AND state = 'complete' AND pages > 0 AND NOT EXISTS "
            "(SELECT 1 FROM pages p WHERE p.collection = d.collection AND p.doc_id = d.doc_id)", (self.collection,))
        return {r[0] for r in rows}

    # files
    def files(self) -> dict[str, FileRow]:
        rows = self.db.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE collection = ?", (self.collection,))
        return {loaded(r[0]): FileRow(loaded(r[0]), *r[1:]) for r in rows}

    def put_file(self, row: FileRow) -> None:
        self.db.execute(f"INSERT OR REPLACE INTO files (collection, {FILE_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                        (self.collection, stored(row.path), row.doc_id, row.size, row.status, valid_text(row.reason),
                         row.pages, row.chunks, row.updated_at, row.sha256, row.reading, valid_text(row.read_reason),
                         row.read_at))

    def drop_file(self, path: str) -> None:
        self.db.execute("DELETE FROM files WHERE collection = ? AND path = ?", (self.collection, stored(path)))

    def pointing_at(self, doc_id: str, but: str) -> int:
        """Files other than `but` whose row points at the document."""
        return self.db.execute("SELECT count(*) FROM files WHERE collection = ? AND doc_id = ? AND path != ?",
                               (self.collection, doc_id, stored(but))).fetchone()[0]

    def referenced(self) -> set[str]:
        rows = self.db.execute("SELECT DISTINCT doc_id FROM files WHERE collection = ? AND doc_id IS NOT NULL",
                               (self.collection,))
        return {r[0] for r in rows}


def _document(row) -> Document:
    return Document(row[0], row[1], row[2], loaded(row[3]), *row[4:])


def now() -> float:
    return time.time()
