"""The knowledge base on disk, owned by one object: where it lives, how its ids are made, who may write,
its stores, whether they agree, and when a reader must refresh.

An index folder (settings.index_dir) holds, per collection:

    manifest.sqlite             documents, files and the keyword index (SQLite; shared by collections)
    chroma/                     the vectors (or a `chroma run` server at settings.chroma_url)
    ingest-COLLECTION.lock      held by the one process writing to the collection
    uploads/COLLECTION/         files added through the app

Ids come from content: a document is its file's sha256 (first 32 hex digits) and a signature of what
else decides its chunks and vectors (chunker version and settings, embedding model); a chunk is its
document's id and its index. They are made here and nowhere else.

The three stores must agree: the keyword index holds exactly the chunks of complete documents; Chroma
holds those, plus what an ingest is writing or removing. `health()` checks that with three counts; a
reader refuses to answer from a knowledge base that disagrees (and says the one command that repairs
it), and `rag ingest` repairs it (re-embeds what Chroma lost, drops what only Chroma holds). Every
write transaction makes a new generation; a reader in another process notices (SQLite's data_version)
and reopens what it holds in memory, so it sees the vectors a later ingest added.

A reader and an ingest in two processes may work on the same index at once. Chroma's in-process copy of a
local store (its vector graph, brought up to date from Chroma's log when a query starts) can lag the
metadata that the ingest writes meanwhile: a query that filters by metadata (ours hide documents being
written) then fails on an id its graph does not hold yet ("Error finding id"). `read` reads such a failed
read once more, from a copy made afresh; if that fails too, it says in one line to ask again. `health`
counts the stores only when no write landed between its counts, so a running ingest is never taken for
damage.

Errors of SQLite (the manifest) are said by `damaged`: a full disk as DiskFullError (rag.store.disk_full),
a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) as IndexDamagedError with the way out, anything else as
StoreError; never a full disk as damage.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from rag.reading.chunking import CHUNKER_VERSION
from rag.config import Settings
from rag.errors import (IndexChangedError, IndexDamagedError, IndexInconsistentError, IndexLockedError, RagError,
                        StoreError, StoreReadError, UnknownDocumentError)
from rag.manifest import Document, FileRow, Manifest
from rag.paths import shown
from rag.store import ChunkStore, disk_full, disk_full_error, open_client, refresh_local_client

log = logging.getLogger(__name__)
T = TypeVar("T")
HEALTH_TRIES = 5  # counts taken again while an ingest keeps writing between them; the last are kept


# --- layout -----------------------------------------------------------------------------------------

def manifest_path(settings: Settings) -> Path:
    return settings.index_dir / "manifest.sqlite"


def uploads_dir(settings: Settings) -> Path:
    return settings.index_dir / "uploads" / settings.collection


def lock_path(settings: Settings) -> Path:
    return settings.index_dir / f"ingest-{settings.collection}.lock"


# --- ids --------------------------------------------------------------------------------------------

def signature(settings: Settings, model_id: str, reader: str = "") -> str:
    """What, besides the bytes, decides a document's chunks and vectors; `reader`: its file type's extractors and
    their versions (rag.reading.filetypes)."""
    spec = f"chunker={CHUNKER_VERSION};tokens={settings.chunk_tokens};overlap={settings.chunk_overlap};model={model_id}"
    spec += f";reader={reader}" if reader else ""
    return hashlib.sha256(spec.encode()).hexdigest()[:8]


def doc_id(sha256: str, sig: str) -> str:
    return f"{sha256[:32]}-{sig}"


def chunk_id(document: str, index: int) -> str:
    return f"{document}-{index:05d}"


def doc_of(chunk: str) -> str:
    return chunk.rsplit("-", 1)[0]


# --- the object -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Health:
    complete_chunks: int  # chunks of complete documents, by the manifest
    all_chunks: int  # with those of documents being written or removed
    keyword_rows: int  # in the keyword index
    vectors: int  # in Chroma

    @property
    def vectors_lost(self) -> bool:
        return self.vectors < self.complete_chunks

    @property
    def ok(self) -> bool:
        return self.keyword_rows == self.complete_chunks and self.complete_chunks <= self.vectors <= self.all_chunks

    def problem(self) -> str:
        if self.keyword_rows != self.complete_chunks:
            return (f"its keyword index holds {self.keyword_rows} chunks where the manifest lists "
                    f"{self.complete_chunks}")
        if self.vectors_lost:
            return f"Chroma holds {self.vectors} vectors where the manifest lists {self.complete_chunks} chunks"
        return f"Chroma holds {self.vectors - self.all_chunks} vectors of documents the manifest does not list"


class KnowledgeBase:
    """One collection of one index folder: manifest (with the keyword index) and Chroma, opened together."""

    def __init__(self, settings: Settings, model_id: str, client=None):
        self.settings = settings
        self.model_id = model_id
        try:
            self.manifest = Manifest(manifest_path(settings), settings.collection)
        except sqlite3.Error as e:  # SQLite's errors become ours where it is opened (a full disk, a damaged file)
            raise damaged(settings, e) from e
        try:
            self.store = ChunkStore(settings, model_id, client or open_client(settings))
        except BaseException:
            self.manifest.close()
            raise
        self.generation = self.manifest.generation()
        self.manifest.changed_elsewhere()  # from now on, a write by another process is noticed
        self.lock = threading.Lock()  # one reader at a time on the manifest's connection (the app's sessions)

    @classmethod
    def open(cls, settings: Settings, embedder=None) -> KnowledgeBase:
        """The knowledge base of these settings (the embedder names the model its vectors must come from)."""
        from rag.embeddings import Embedder

        return cls(settings, (embedder or Embedder(settings)).model_id)

    def close(self) -> None:
        self.manifest.close()

    def library(self) -> list[tuple[FileRow, Document | None]]:
        """Every file the knowledge base knows (indexed or not, with its reason), and its document, by name."""
        with self.lock:
            documents = self.manifest.documents()
            rows = sorted(self.manifest.files().values(), key=lambda f: Path(f.path).name.lower())
        return [(f, documents.get(f.doc_id) if f.doc_id else None) for f in rows]

    def named(self, documents: Sequence[str]) -> list[str]:
        """Document ids for file names or paths; a name that matches nothing is an error that lists names. (The
        caller holds `lock` where threads share the knowledge base, as retrieval does.)"""
        files = self.manifest.files()
        ids: list[str] = []
        for name in documents:
            found = [row.doc_id for path, row in files.items()
                     if row.doc_id and name in (path, Path(path).name, shown(path), shown(Path(path).name))]
            if not found:
                known = sorted({shown(Path(p).name) for p, row in files.items() if row.doc_id})
                listed = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
                raise UnknownDocumentError(
                    f"no document named {shown(name)!r} in collection {self.settings.collection!r} "
                    f"(it holds {listed or 'nothing yet'}): check the name, or `rag ingest` it first")
            ids.extend(found)
        return list(dict.fromkeys(ids))

    def page_texts(self, doc_id: str, first: int, last: int) -> dict[int, str]:
        """The stored text of a document's pages first..last, by number: what quotes are checked against."""
        with self.lock:
            return self.manifest.pages(doc_id, first, last)

    def sections(self, doc_ids) -> dict[str, dict[int, str]]:
        """Each page's section label, of each of the documents that has them (Word, HTML)."""
        with self.lock:
            return self.manifest.sections(doc_ids)

    def ocr_pages(self, doc_ids) -> dict[str, set[int]]:
        """The pages read by OCR, of each of the documents that has any."""
        with self.lock:
            return self.manifest.ocr_pages(doc_ids)

    @property
    def uploads(self) -> Path:
        return uploads_dir(self.settings)

    @contextlib.contextmanager
    def writing(self):
        """Held while writing: a second writer stops at once with a message (the OS frees it if we die)."""
        from filelock import FileLock, Timeout

        self.settings.index_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path(self.settings))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise IndexLockedError(
                f"another `rag ingest` is writing to collection {self.settings.collection!r} in "
                f"{self.settings.index_dir}: wait for it to finish, then run this again (unchanged files cost "
                "nothing)") from None
        try:
            yield self
        finally:
            lock.release()

    def health(self) -> Health:
        """The three counts, taken while nothing was written between them: an ingest in another process that
        marks a document pending, then writes its vectors, must not look like vectors the manifest lacks."""
        for _ in range(HEALTH_TRIES):
            before = self._data_version()
            with self._snapshot():  # the manifest's two counts, from one state of it
                complete, everything = self.manifest.chunk_counts()
                keyword = self.manifest.lexical.count()
            vectors = self.read(self.store.count)
            if self._data_version() == before:
                break
        return Health(complete, everything, keyword, vectors)

    def _data_version(self) -> int:
        """Changes when another connection commits to the manifest (unlike changed_elsewhere, asking keeps no
        state: refresh's own question stays unanswered)."""
        return self.manifest.db.execute("PRAGMA data_version").fetchone()[0]

    @contextlib.contextmanager
    def _snapshot(self):
        """One read transaction on the manifest, unless one is open already (a writer's own)."""
        db = self.manifest.db
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

    def check(self) -> None:
        """Raise IndexInconsistentError, saying what is wrong and how to repair it, unless the stores agree."""
        health = self.health()
        if not health.ok:
            raise IndexInconsistentError(
                f"the knowledge base {self.settings.collection!r} in {self.settings.index_dir} is inconsistent: "
                f"{health.problem()}. Repair it with `rag ingest FOLDER` on the folder you ingested (it re-embeds "
                "what Chroma lost); if that cannot fix it, move the index folder away and ingest again")

    def refresh(self) -> bool:
        """Notice a newer generation written by another process, and reopen Chroma to see its vectors.
        Cheap when nothing changed (one PRAGMA); True when it refreshed."""
        if not self.manifest.changed_elsewhere():
            return False
        generation = self.manifest.generation()
        if generation == self.generation:
            return False
        self.generation = generation
        self.reopen()
        return True

    def reopen(self) -> None:
        """Drop this process's copy of a local Chroma store and read it afresh from disk (a server has one copy
        for every client: nothing to reopen)."""
        if not self.settings.chroma_url:
            self.store = ChunkStore(self.settings, self.model_id, refresh_local_client(self.settings))

    def read(self, reading: Callable[[], T]) -> T:
        """`reading()`, which reads Chroma; when Chroma fails to read it (another process changed the index under
        this one's copy), once more from a copy made afresh. Raises IndexChangedError, one line, if that fails
        too. The caller holds `lock` when the knowledge base is shared between threads."""
        try:
            return reading()
        except StoreReadError as e:
            log.info("reading the index again, from a fresh copy: %s", e)
            self.reopen()
        try:
            return reading()
        except StoreReadError as e:
            raise IndexChangedError(
                f"the knowledge base {self.settings.collection!r} in {self.settings.index_dir} changed while it was "
                "being read (a `rag ingest` is writing to it): ask again; if this repeats when no ingest is "
                f"running, run `rag ingest FOLDER` on the folder you ingested to repair it ({e})") from e


def damaged(settings: Settings, error: Exception) -> RagError:
    """What an SQLite error of the manifest means for the user, and how to get out of it: a full disk
    (DiskFullError), a damaged file (IndexDamagedError: move it away, ingest again), or else a StoreError."""
    path = manifest_path(settings)
    if disk_full(error, settings.index_dir):
        return disk_full_error(settings.index_dir)
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return IndexDamagedError(
            f"the knowledge base's manifest at {path} cannot be read ({error}): move it away (`mv {path} "
            f"{path}.damaged`) and run `rag ingest FOLDER` again; vectors already in Chroma are reused, not "
            "re-embedded")
    name = getattr(error, "sqlite_errorname", "")  # SQLITE_IOERR_SHMMAP says more than "disk I/O error"
    return StoreError(
        f"the knowledge base's manifest at {path} cannot be used ({error}{', ' + name if name else ''}): check that {settings.index_dir} is "
        "there and writable, and that no other program holds it, or set RAG_INDEX_DIR; then run this again")
