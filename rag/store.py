"""The chunk store: one Chroma collection per knowledge base, embedded or behind a `chroma run` server.

chromadb is used directly rather than through LlamaIndex's ChromaVectorStore: ingestion needs
content-derived ids, "which of these ids are already stored" (to resume a killed run) and deletes by
metadata, which the client does in one call each. The records stay readable by ChromaVectorStore
(text in `documents`, flat metadata), so LlamaIndex retrievers can query the same collection.

Chunk metadata: doc_id, sha256, path, file, page_start, page_end, start, end, chunk, tokens (Llama-3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

from rag.config import Settings
from rag.errors import ConfigError, StoreError

log = logging.getLogger(__name__)


def chroma_path(settings: Settings) -> Path:
    return settings.index_dir / "chroma"


def refresh_local_client(settings: Settings):
    """A new client for the local store, reading it afresh from disk. Chroma keeps one in-memory copy of a
    local store per process, which does not see vectors another process wrote: this drops that copy (every
    client of this process then needs making again, which rag does only through KnowledgeBase.refresh)."""
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
    except Exception as e:
        raise StoreError(f"cannot open the index at {path} ({e}): check the folder, or set RAG_INDEX_DIR") from e


class ChunkStore:
    """Chunks of one knowledge base. `model_id` is recorded on the collection and checked on open."""

    def __init__(self, settings: Settings, model_id: str, client=None):
        self.client = client or open_client(settings)
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

    def count(self) -> int:
        return self.collection.count()

    def ids(self) -> list[str]:
        """Every chunk id stored (for repairs: the ids name their documents)."""
        return self.collection.get(include=[])["ids"]

    def existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in _batches(list(ids), self.batch):
            found.update(self.collection.get(ids=part, include=[])["ids"])
        return found

    def upsert(self, ids: Sequence[str], embeddings, texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        for lo in range(0, len(ids), self.batch):
            hi = lo + self.batch
            self.collection.upsert(ids=list(ids[lo:hi]), embeddings=embeddings[lo:hi],
                                   documents=list(texts[lo:hi]), metadatas=list(metadatas[lo:hi]))

    def relabel(self, doc_id: str, path: str, file: str) -> None:
        """Point a document's chunks at a new path (a moved or renamed file): metadata only, no embedding."""
        ids = self.collection.get(where={"doc_id": doc_id}, include=[])["ids"]
        for part in _batches(ids, self.batch):
            self.collection.update(ids=part, metadatas=[{"path": path, "file": file}] * len(part))

    def delete_document(self, doc_id: str) -> None:
        self.collection.delete(where={"doc_id": doc_id})

    def visible_filter(self, hidden: Iterable[str]) -> dict[str, Any] | None:
        """A Chroma `where` that hides the chunks of documents not yet complete (None when there are none)."""
        hidden = sorted(hidden)
        return {"doc_id": {"$nin": hidden}} if hidden else None


def _batches(items: list, size: int):
    for lo in range(0, len(items), size):
        yield items[lo:lo + size]
