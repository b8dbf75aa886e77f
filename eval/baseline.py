"""The stock LlamaIndex pipeline that `rag eval --baseline` measures beside ours, in the same run.

SimpleDirectoryReader (pypdf, one document a page) -> SentenceSplitter(chunk_size, with its default
tokenizer and an overlap of a fifth, as its default 1,024/200) -> all-MiniLM-L6-v2 (the same bundled
model) -> Chroma; per question, `as_retriever(similarity_top_k, file-name filter)` and the hits in rank
order, each counted with the Llama-3 tokenizer, until the next one would pass the budget. No keyword
search, no neighbour expansion, no merging. Its index is built once in the results folder and reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rag.embeddings import bundled_model_path
from rag.tokens import llama3_tokens

SIZES = (1024, 256)


@dataclass(frozen=True)
class Node:
    text: str
    file: str
    page: int
    tokens: int


class StockPipeline:
    def __init__(self, docs: Path, folder: Path, chunk_size: int, device: str = "cpu"):
        import chromadb
        from llama_index.core import VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.name = f"llamaindex-{chunk_size}"
        self.chunk_size = chunk_size
        self.embed_model = HuggingFaceEmbedding(model_name=str(bundled_model_path()), device=device)
        folder.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(folder))
        marker = folder / "built.json"
        wanted = {"docs": str(docs.resolve()), "files": sorted(p.name for p in docs.rglob("*") if p.is_file())}
        if not marker.exists() or json.loads(marker.read_text()) != wanted:
            if "stock" in [c.name for c in client.list_collections()]:
                client.delete_collection("stock")
            self._build(docs, client.create_collection("stock"))
            marker.write_text(json.dumps(wanted))
        store = ChromaVectorStore(chroma_collection=client.get_collection("stock"))
        self.index = VectorStoreIndex.from_vector_store(store, embed_model=self.embed_model)

    def _build(self, docs: Path, collection) -> None:
        from llama_index.core import SimpleDirectoryReader
        from llama_index.core.ingestion import IngestionPipeline
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.vector_stores.chroma import ChromaVectorStore

        documents = SimpleDirectoryReader(str(docs), recursive=True).load_data()
        pipeline = IngestionPipeline(transformations=[
            SentenceSplitter(chunk_size=self.chunk_size, chunk_overlap=self.chunk_size // 5), self.embed_model])
        nodes = pipeline.run(documents=documents)
        store = ChromaVectorStore(chroma_collection=collection)
        for lo in range(0, len(nodes), 5000):  # Chroma takes at most ~5,000 records a call
            store.add(nodes[lo:lo + 5000])

    def context(self, question: str, documents: Sequence[str], budget: int) -> tuple[list[str], list[Node]]:
        """(ranked hit texts, the hits that fit the budget in rank order)."""
        from llama_index.core.vector_stores import FilterCondition, MetadataFilter, MetadataFilters

        filters = None
        if documents:
            filters = MetadataFilters(filters=[MetadataFilter(key="file_name", value=d) for d in documents],
                                      condition=FilterCondition.OR)
        k = max(10, 2 * budget // self.chunk_size)  # a chunk holds more Llama-3 tokens than half its size
        found = self.index.as_retriever(similarity_top_k=k, filters=filters).retrieve(question)
        ranked = [n.node.get_content() for n in found]
        packed, used = [], 0
        for hit, text in zip(found, ranked):
            tokens = llama3_tokens(text)
            if used + tokens > budget:
                break
            used += tokens
            meta = hit.node.metadata
            packed.append(Node(text, meta.get("file_name", ""), int(meta.get("page_label") or 0)
                               if str(meta.get("page_label", "")).isdigit() else 0, tokens))
        return ranked, packed
