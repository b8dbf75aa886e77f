"""The chunk store: one Chroma collection per knowledge base, embedded or behind a `chroma run` server.

chromadb is used directly rather than through LlamaIndex's ChromaVectorStore: ingestion needs
content-derived ids, "which of these ids are already stored" (to resume a killed run) and deletes by
metadata, which the client does in one call each. The records stay readable by ChromaVectorStore
(text in `documents`, flat metadata), so LlamaIndex retrievers can query the same collection.

Chunk metadata: doc_id, sha256, path, file, page_start, page_end, start, end, chunk, tokens (Llama-3).

This is where chromadb is called, so its errors become ours here, by type (DESIGN.md, convention 12): a
full disk is DiskFullError; a failed read of a local index is StoreReadError (another process writing it
is the usual cause: KnowledgeBase.read reads it afresh); anything else is StoreError.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

from rag.config import Settings
from rag.errors import ConfigError, DiskFullError, RagError, StoreError, StoreReadError

log = logging.getLogger(__name__)

# Chroma's errors do not say when a full disk caused them (a failed write can read "Error in compaction:
# Failed to apply logs to the metadata segment"), and a failed write gives back the room it had taken (SQLite
# rolls back and deletes its journal), so a disk with less room than this left is taken as the cause.
LOW_SPACE = 64 * 2**20
_IO_CODES = (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN)  # SQLite errors a full disk may also cause


def chroma_path(settings: Settings) -> Path:
    return settings.index_dir / "chroma"


def free_space(folder: Path) -> int | None:
    """Bytes an unprivileged writer may still write on the disk holding `folder` (None if it cannot be told)."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def disk_full(error: BaseException, folder: Path) -> bool:
    """Whether `error`, raised writing or reading the index in `folder`, comes from its disk being full:
    ENOSPC or EDQUOT anywhere in its chain, SQLite's SQLITE_FULL, or a store's error with the disk (nearly) full.
    A damaged SQLite file (SQLITE_CORRUPT, SQLITE_NOTADB) is never taken for a full disk."""
    seen: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in seen:
        seen.append(e)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, sqlite3.Error) and (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF == sqlite3.SQLITE_FULL:
            return True
        e = e.__cause__ or e.__context__
    if isinstance(error, sqlite3.Error) and (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF not in _IO_CODES:
        return False  # damage (SQLITE_CORRUPT, SQLITE_NOTADB), a lock held elsewhere, a misuse: not the disk's doing
    free = free_space(folder)
    return free is not None and free < LOW_SPACE


def disk_full_error(folder: Path) -> DiskFullError:
    """The full disk said for the user: which folder, how much is free, and what to do."""
    free = free_space(folder)
    left = f"{_size(free)} free" if free is not None else "no room left"
    return DiskFullError(
        f"the disk holding the index {folder} is full ({left}): free space on it, or set RAG_INDEX_DIR (or --index) "
        f"to a folder on a disk with room (copy {folder} there first to keep what is indexed), then run this "
        "again; an ingest resumes where it stopped")


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def refresh_local_client(settings: Settings):
    """A new client for the local store, reading it afresh from disk. Chroma keeps one in-memory copy of a
    local store per process, which does not see vectors another process wrote: this drops that copy (every
    client of this process then needs making again, which rag does only through KnowledgeBase.reopen)."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return open_client(settings)


def open_client(settings: Settings):
    """A chromadb client: HttpClient when settings.chroma_url is set, else PersistentClient(index_dir/chroma)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise ConfigError(f"chroma_url {settings.chroma_url!r} is not an http(s) URL like http://localhost:8000")
        try:
            client = chromadb.HttpClient(host=url.hostname, port=url.port or (443 if url.scheme == "https" else 80),
                                         ssl=url.scheme == "https", settings=chroma_settings)
            client.heartbeat()
        except Exception as e:
            raise StoreError(
                f"Chroma server at {settings.chroma_url} did not answer ({e}): start it with "
                f"`chroma run --path DIR --port {url.port or 8000}`, or unset RAG_CHROMA_URL to use the local index"
            ) from e
        return client
    path = chroma_path(settings)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as e:  # Chroma writes to its database as it opens it, even to read
        if disk_full(e, settings.index_dir):
            raise disk_full_error(settings.index_dir) from e
        raise StoreError(f"cannot open the index at {path} ({e}): check the folder, or set RAG_INDEX_DIR") from e


class ChunkStore:
    """Chunks of one knowledge base. `model_id` is recorded on the collection and checked on open.
    Every call into chromadb goes through `_chroma`, which turns its errors into ours."""

    def __init__(self, settings: Settings, model_id: str, client=None):
        self.settings = settings
        self.client = client or open_client(settings)
        with self._chroma("open"):
            self.batch = self.client.get_max_batch_size()
            self.collection = self.client.get_or_create_collection(
                settings.collection, metadata={"hnsw:space": "cosine", "embedding_model": model_id},
                embedding_function=None)
        built_with = (self.collection.metadata or {}).get("embedding_model")
        if built_with and built_with != model_id:
            raise ConfigError(
                f"collection {settings.collection!r} was built with the embedding model {built_with!r}, not "
                f"{model_id!r}: use another collection (RAG_COLLECTION) or the same model"
            )

    @contextlib.contextmanager
    def _chroma(self, doing: str, reading: bool = False):
        """chromadb's errors, and the file system's, as ours (DESIGN.md, convention 12)."""
        from chromadb.errors import ChromaError

        try:
            yield
        except RagError:
            raise
        except (ChromaError, OSError, sqlite3.Error) as e:
            where = self.settings.chroma_url or str(chroma_path(self.settings))
            if not self.settings.chroma_url and disk_full(e, self.settings.index_dir):
                raise disk_full_error(self.settings.index_dir) from e
            if reading and not self.settings.chroma_url:
                raise StoreReadError(f"Chroma could not {doing} the index at {where} ({e})") from e
            raise StoreError(f"Chroma could not {doing} the index at {where} ({e}): "
                             + ("check that the server is running and healthy" if self.settings.chroma_url else
                                "check the folder, or set RAG_INDEX_DIR")) from e

    def count(self) -> int:
        with self._chroma("count the vectors of", reading=True):
            return self.collection.count()

    def ids(self) -> list[str]:
        """Every chunk id stored (for repairs: the ids name their documents)."""
        with self._chroma("list the chunks of", reading=True):
            return self.collection.get(include=[])["ids"]

    def existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._chroma("look up chunks in", reading=True):
            for part in _batches(list(ids), self.batch):
                found.update(self.collection.get(ids=part, include=[])["ids"])
        return found

    def query(self, embedding, k: int, where: dict[str, Any] | None) -> list[str]:
        """The ids of the k chunks nearest to one embedded question, among those `where` selects."""
        with self._chroma("search", reading=True):
            return self.collection.query(query_embeddings=embedding, n_results=k, where=where, include=[])["ids"][0]

    def vectors(self, where: dict[str, Any]) -> tuple[list[str], list]:
        """The ids and vectors of the chunks `where` selects."""
        with self._chroma("read the vectors of", reading=True):
            got = self.collection.get(where=where, include=["embeddings"])
        return got["ids"], got["embeddings"]

    def chunks(self, where: dict[str, Any]) -> tuple[list[str], list[str], list[dict]]:
        """The ids, texts and metadata of the chunks `where` selects."""
        with self._chroma("read the chunks of", reading=True):
            got = self.collection.get(where=where, include=["documents", "metadatas"])
        return got["ids"], got["documents"], got["metadatas"]

    def upsert(self, ids: Sequence[str], embeddings, texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        with self._chroma("write chunks to"):
            for lo in range(0, len(ids), self.batch):
                hi = lo + self.batch
                self.collection.upsert(ids=list(ids[lo:hi]), embeddings=embeddings[lo:hi],
                                       documents=list(texts[lo:hi]), metadatas=list(metadatas[lo:hi]))

    def relabel(self, doc_id: str, path: str, file: str) -> None:
        """Point a document's chunks at a new path (a moved or renamed file): metadata only, no embedding."""
        with self._chroma("relabel chunks in"):
            ids = self.collection.get(where={"doc_id": doc_id}, include=[])["ids"]
            for part in _batches(ids, self.batch):
                self.collection.update(ids=part, metadatas=[{"path": path, "file": file}] * len(part))

    def delete_document(self, doc_id: str) -> None:
        with self._chroma("delete chunks from"):
            self.collection.delete(where={"doc_id": doc_id})

    def visible_filter(self, hidden: Iterable[str]) -> dict[str, Any] | None:
        """A Chroma `where` that hides the chunks of documents not yet complete (None when there are none)."""
        hidden = sorted(hidden)
        return {"doc_id": {"$nin": hidden}} if hidden else None


def _batches(items: list, size: int):
    for lo in range(0, len(items), size):
        yield items[lo:lo + size]
