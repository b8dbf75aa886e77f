"""Question -> ranked hits: vector search in Chroma plus BM25 (rag.lexical), fused by reciprocal rank.

Both halves see the same chunks of the same complete documents: the keyword index only ever holds
complete documents, and the vector query hides the ones being written or removed. A question may be
scoped to named documents ("ask about this contract").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.config import Settings
from rag.domain import filings
from rag.domain.clause_models import Clause
from rag.domain.contracts import CONTRACT_WORDS
from rag.embeddings import Embedder
from rag.knowledge_base import KnowledgeBase, chunk_id, doc_of
from rag.packing import Hit
from rag.paths import shown

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al., 2009)
STATEMENT_DOCUMENTS = 3  # an unscoped question's statements are looked for in the documents of its 3 best hits
STATEMENT_SCOPE = 16  # ... and those of a question scoped to more documents (each costs ~3 ms of reading titles)
STATEMENT_WEIGHT = 2  # a question asks for its statements: their openings count as two rankings in fusion


@dataclass
class Retrieved:
    hits: list[Hit]
    seconds: dict[str, float] = field(default_factory=dict)


def fuse(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ranked id lists: score(id) = sum over lists of 1 / (k + rank)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    """Searches one knowledge base. It refuses one whose stores disagree (saying how to repair it), and
    before each question notices whether another process wrote to it, and then sees what was written. A
    search that Chroma fails because an ingest wrote meanwhile is made once more, afresh (KnowledgeBase.read)."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, kb: KnowledgeBase | None = None):
        self.settings = settings
        self.embedder = embedder or Embedder(settings)
        self._owns_kb = kb is None
        self.kb = kb or KnowledgeBase(settings, self.embedder.model_id)
        self._paths: dict[str, str] = {}  # doc_id -> path, for the hits of the current question
        self.synonyms = CONTRACT_WORDS if settings.contract_words else {}  # for the keyword query
        with self.kb.lock:  # the app's sessions share the knowledge base
            self.kb.check()

    @property
    def manifest(self):
        return self.kb.manifest

    def close(self) -> None:
        if self._owns_kb:
            self.kb.close()

    def scope(self, documents: Sequence[str]) -> list[str]:
        """Document ids for file names or paths (rag.knowledge_base.KnowledgeBase.named)."""
        return self.kb.named(documents)

    def search(self, question: str, k: int, documents: Sequence[str] | None = None,
               clause: Clause | None = None) -> Retrieved:
        """The k best chunks for the question, fused from vector and keyword search; for a question scoped to
        documents, also their opening and, given the `clause` model it asks (rag.domain.clause_models), their chunks
        that hold its keywords and, for a model learned from enough contracts, their chunks as it ranks them."""
        with self.kb.lock:
            return self.kb.read(lambda: self._fresh_search(question, k, documents, clause))

    def _fresh_search(self, question: str, k: int, documents: Sequence[str] | None, clause) -> Retrieved:
        if self.kb.refresh():  # another process wrote: see its vectors; check the stores still agree
            self.kb.check()
        return self._search(question, k, documents, clause)

    def _search(self, question: str, k: int, documents: Sequence[str] | None, clause) -> Retrieved:
        t0 = time.perf_counter()
        doc_ids = self.scope(documents) if documents else None
        keyword: list[str] = []
        failed: list[BaseException] = []
        hidden = self.manifest.hidden()

        def keyword_search():  # SQLite releases the GIL: this runs while the model embeds the question
            try:
                with self.manifest.reading:
                    keyword.extend(cid for cid, _ in self.manifest.lexical.search(question, k, doc_ids, self.synonyms))
            except Exception as e:  # raised again below, in the caller's thread
                failed.append(e)

        worker = threading.Thread(target=keyword_search)
        worker.start()
        try:
            vector = self._vector(question, k, doc_ids, hidden)
        finally:
            worker.join()
        if failed:
            raise failed[0]
        t1 = time.perf_counter()
        rankings = [vector, keyword]
        if doc_ids and self.settings.lead:  # a contract's opening names it, its parties and its date
            rankings.append([chunk_id(d, 0) for d in doc_ids])
        if doc_ids and clause is not None:
            if clause.keywords:
                rankings.append([cid for cid, _ in self.manifest.lexical.search(clause.keywords, k, doc_ids,
                                                                                 self.synonyms)])
            if clause.retrieving:
                rankings.append(self._by_clause(clause, k, doc_ids, hidden))
        wanted = filings.asked(question) if self.settings.statements else ()
        if wanted:  # a filing's statements that the question names or needs the figures of
            within = doc_ids if doc_ids and len(doc_ids) <= STATEMENT_SCOPE else list(dict.fromkeys(
                doc_of(cid) for cid, _ in fuse(rankings)[:STATEMENT_DOCUMENTS]))
            rankings += [filings.openings(self.manifest.lexical.openings(within), wanted)] * STATEMENT_WEIGHT
        fused = fuse(rankings)[:k]
        t2 = time.perf_counter()
        self._paths = {}
        hits = self._hits(fused)
        return Retrieved(hits, {"search": t1 - t0, "fuse": t2 - t1, "fetch": time.perf_counter() - t2})

    def halves(self, question: str, k: int, documents: Sequence[str] | None = None) -> tuple[list[Hit], list[Hit]]:
        """The k best chunks by vectors alone, and by keywords alone (what fusion combines; for evaluation)."""
        with self.kb.lock:
            doc_ids = self.scope(documents) if documents else None
            vector = self._hits([(cid, 0.0) for cid in self.kb.read(
                lambda: self._vector(question, k, doc_ids, self.manifest.hidden()))])
            keyword = self._hits(self.manifest.lexical.search(question, k, doc_ids, self.synonyms))
        return vector, keyword

    def neighbours(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], Hit]:
        """The chunks next to hits, by (doc_id, chunk index), in one lookup: for packing to grow sources with."""
        with self.kb.lock:
            hits = self._hits([(chunk_id(document, index), 0.0) for document, index in wanted], rank_from=0)
        return {(h.doc_id, h.chunk): h for h in hits}

    def _vector(self, question: str, k: int, doc_ids: list[str] | None, hidden: list[str] = ()) -> list[str]:
        conditions = []
        if doc_ids is not None:
            conditions.append({"doc_id": {"$in": doc_ids}})
        if hidden:
            conditions.append(self.kb.store.visible_filter(hidden))
        where = conditions[0] if len(conditions) == 1 else ({"$and": conditions} if conditions else None)
        return self.kb.store.query(self.embedder.embed([question]), k, where)

    def _by_clause(self, clause, k: int, doc_ids: list[str], hidden: list[str]) -> list[str]:
        """The documents' k chunks that the clause model scores highest (a contract's few hundred vectors)."""
        where = {"doc_id": {"$in": doc_ids}}
        if hidden:
            where = {"$and": [where, self.kb.store.visible_filter(hidden)]}
        ids, vectors = self.kb.store.vectors(where)
        if not ids:
            return []
        scores = clause.score(np.asarray(vectors, dtype=np.float32))
        return [ids[i] for i in np.argsort(-scores)[:k]]

    def _hits(self, ranked: list[tuple[str, float]], rank_from: int = 1) -> list[Hit]:
        rows = self.manifest.lexical.get([cid for cid, _ in ranked])
        document = {cid: doc_of(cid) for cid in rows}
        missing = set(document.values()) - self._paths.keys()
        if missing:
            self._paths.update(self.manifest.paths(missing))
        sections = self.manifest.sections(set(document.values()))  # Word and HTML: cited by section, not page
        hits = []
        for cid, score in ranked:
            row = rows.get(cid)
            path = self._paths.get(document.get(cid, ""))
            if row is None or path is None:
                continue  # written by an ingest still running, or being removed: not visible
            hits.append(Hit(cid, document[cid], shown(Path(path).name), path, row.chunk, row.page_start, row.page_end,
                            row.text, score, rank_from + len(hits), row.tokens,
                            sections.get(document[cid], {}).get(row.page_start, ""), row.heading))
        return hits
