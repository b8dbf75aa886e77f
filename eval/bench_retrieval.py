"""Retrieval + packing latency on an index of >= 100K chunks, beside LlamaIndex's stock retriever.

    python -m eval.bench_retrieval [--docs ../shared/data/cuad-dev/docs] [--copies 19] [--questions 100]

The index: the CUAD contracts ingested once (embed_dtype "auto": bfloat16 where the CPU has it natively, as
bfloat16 emulated is slower than float32), then their stored chunks copied under new document ids until the
collection holds >= 100K chunks (vectors, BM25 rows and manifest entries alike: what ingesting the copies would
store, without embedding them again).
For each budget (8K, 32K, 128K Llama-3 tokens) and each of a seeded sample of dev questions, over the
whole knowledge base (no document scope): ours = hybrid retrieval of budget/150 hits + golden-first
packing with neighbour expansion, counted with the Llama-3 tokenizer; stock = LlamaIndex
`VectorStoreIndex.from_vector_store(ChromaVectorStore).as_retriever(similarity_top_k=same k)` on the
same collection with the same embedding model (vector search only, no packing). Excludes the LLM.
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from eval.bench_ingest import machine
from rag.config import Settings
from rag.embeddings import Embedder, bundled_model_path
from rag.indexer import ingest
from rag.lexical import Row
from rag.knowledge_base import KnowledgeBase, chunk_id
from rag.manifest import Document, FileRow
from rag.packing import pack
from rag.retrieval import Retriever
from rag.tokens import llama3_tokens

BUDGETS = (8 * 1024, 32 * 1024, 128 * 1024)


def build(docs: Path, settings: Settings, embedder: Embedder, copies: int) -> int:
    ingest(docs, settings, embedder=embedder)
    kb = KnowledgeBase.open(settings, embedder)
    store, manifest = kb.store, kb.manifest
    got = store.collection.get(include=["embeddings", "documents", "metadatas"])
    originals = manifest.documents()
    for c in range(1, copies):
        for doc in originals.values():
            new_id = f"{doc.doc_id}r{c}"
            path = str(Path(doc.path).parent / f"copy{c}" / Path(doc.path).name)
            with manifest.transaction() as m:
                m.put_document(Document(new_id, doc.sha256, "complete", path, doc.pages, doc.chunks, doc.tokens,
                                        doc.ingested_at))
                m.put_file(FileRow(path, new_id, 0, "ok", "", doc.pages, doc.chunks, doc.ingested_at))
        ids, vectors, texts, metas, rows = [], [], [], [], {}
        for cid, vector, text, meta in zip(got["ids"], got["embeddings"], got["documents"], got["metadatas"]):
            new_doc = f"{meta['doc_id']}r{c}"
            new_cid = chunk_id(new_doc, meta["chunk"])
            ids.append(new_cid)
            vectors.append(vector)
            texts.append(text)
            metas.append({**meta, "doc_id": new_doc, "path": str(Path(meta["path"]).parent / f"copy{c}" / meta["file"])})
            rows.setdefault(new_doc, []).append(
                Row(new_cid, meta["chunk"], meta["page_start"], meta["page_end"], meta["tokens"], text))
        store.upsert(ids, vectors, texts, metas)
        with manifest.transaction() as m:
            for doc_id, doc_rows in rows.items():
                m.lexical.put(doc_id, doc_rows)
        print(f"copy {c}: {store.count()} chunks", flush=True)
    count = store.count()
    kb.close()
    return count


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, default=Path("../shared/data/cuad-dev/docs"))
    parser.add_argument("--questions-file", type=Path, default=Path("../shared/data/cuad-dev/questions.jsonl"))
    parser.add_argument("--copies", type=int, default=19)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("eval/reports/retrieval_benchmark"))
    parser.add_argument("--index", type=Path, help="keep the built index here, and reuse it when it is there")
    args = parser.parse_args()
    lines = args.questions_file.read_text().splitlines()
    questions = [json.loads(line)["question"] for line in random.Random(0).sample(lines, args.questions)]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=args.index or Path(tmp), collection="bench")
        embedder = Embedder(settings)
        started = time.perf_counter()
        built = (settings.index_dir / "built.json")
        if built.exists():
            chunks, build_s = json.loads(built.read_text())
        else:
            chunks = build(args.docs, settings, embedder, args.copies)
            build_s = time.perf_counter() - started
            built.write_text(json.dumps([chunks, build_s]))

        from llama_index.core import VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.vector_stores.chroma import ChromaVectorStore

        retriever = Retriever(settings, embedder)
        collection = retriever.kb.store.collection  # the same Chroma collection object
        stock_index = VectorStoreIndex.from_vector_store(
            ChromaVectorStore(chroma_collection=collection),
            embed_model=HuggingFaceEmbedding(model_name=str(bundled_model_path()), device="cpu"))
        for q in questions[:5]:  # warm both paths
            retriever.search(q, 10)
            stock_index.as_retriever(similarity_top_k=10).retrieve(q)

        results = {}
        for budget in BUDGETS:
            k = budget // 150
            ours, stock, used, sources = [], [], [], []
            stock_retriever = stock_index.as_retriever(similarity_top_k=k)
            for q in questions:
                t = time.perf_counter()
                hits = retriever.search(q, k).hits
                packed = pack(hits, budget, llama3_tokens, neighbours=retriever.neighbours, llama_counts=True)
                ours.append(time.perf_counter() - t)
                used.append(packed.tokens)
                sources.append(len(packed.sources))
                assert packed.tokens <= budget
                t = time.perf_counter()
                stock_retriever.retrieve(q)
                stock.append(time.perf_counter() - t)
            results[budget] = {"k": k, "ours": percentiles(ours), "stock_llamaindex": percentiles(stock),
                               "mean_packed_tokens": statistics.mean(used), "mean_sources": statistics.mean(sources)}
            print(budget, json.dumps(results[budget]), flush=True)
        retriever.close()

    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "chunks": chunks, "build_s": build_s,
              "questions": len(questions), "budgets": results}
    from eval.report import save

    save(args.out, report, render)


def render(r: dict) -> str:
    rows = "\n".join(
        f"| {int(b) // 1024}K | {v['k']} | {v['ours']['p50_ms']:.1f} | {v['ours']['p95_ms']:.1f} | "
        f"{v['stock_llamaindex']['p50_ms']:.1f} | {v['stock_llamaindex']['p95_ms']:.1f} | "
        f"{v['mean_sources']:.0f} | {v['mean_packed_tokens']:.0f} |" for b, v in r["budgets"].items())
    return f"""# Retrieval + packing benchmark

{r['date']}, {r['machine']}. Index: {r['chunks']:,} chunks (the 103 CUAD contracts, copied; built in
{r['build_s']:.0f} s). {r['questions']} seeded dev questions over the whole knowledge base; the LLM excluded.

| budget | hits k | ours p50 ms | ours p95 ms | stock LlamaIndex p50 ms | stock p95 ms | sources packed | tokens packed |
|---|---:|---:|---:|---:|---:|---:|---:|
{rows}

Ours = query embedding + Chroma vector search + BM25 (SQLite FTS5) + reciprocal rank fusion + golden-first
packing with neighbour expansion, every block counted with the Llama-3 tokenizer. Stock =
`VectorStoreIndex.from_vector_store(ChromaVectorStore(...)).as_retriever(similarity_top_k=k)` on the same
collection and embedding model: vector search only, no keyword half, no packing or token counting.
"""


if __name__ == "__main__":
    main()
