"""Question -> Answer: retrieve, pack golden-first within the budget, then quote or generate, and cite.

Two ways to answer (settings.answer): `quote` ranks the sentences of the retrieved sources and answers
with the best ones, verbatim and checked against their pages (rag.quotes: no language model, so it is
instant, and cannot invent); `generate` prompts the language model and streams what it writes. `auto`
quotes when the model would be the small embedded one, and generates with a server's model.

Budget for sources = min(settings.budget, model context window) - the prompt without sources (system
message, question, chat template) - the answer reserve, all counted with the answering model's own
tokenizer. The whole prompt is counted again before it is sent; it never exceeds the window.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from rag.config import Settings
from rag.errors import PromptTooLongError, RagError
from rag.backends import LLM, open_llm, planned
from rag.packing import Hit, Packed, Source, pack, reorder
from rag.prompts import NOT_FOUND, WEAK_MATCH, messages, neutralize, neutralizer
from rag.embeddings import Embedder
from rag.citations import Citation, check, cite, support, supporting_texts
from rag.quotes import TOP, WEIGHTS, Quote, Quoted, Quoter
from rag.retrieval import Retriever
from rag.review import ANSWERS, FOUND, Reviewer, complete_documents, holding, library_reviews
from rag.domain.cuad import BY_NAME
from rag.tokens import llama3_encoding, llama3_tokens

log = logging.getLogger(__name__)

# a question about documents at large: "which contracts ...", "do any of our agreements ...", "list all contracts ..."
ACROSS = re.compile(r"\b(?:which|what|any|all|every|how many|list)\b(?:\W+\w+){0,3}?\W+(?:contracts|agreements|"
                    r"documents)\b", re.IGNORECASE)
TOKENS_PER_CHUNK = 150  # fewer than a chunk really holds (~220 Llama-3 tokens): enough hits to fill the budget


@dataclass
class Answer:
    question: str
    text: str
    backend: str
    citations: list[Citation]
    sources: list[dict]  # in prompt order: number, rank, score, file, pages, tokens, hits
    not_fitted: list[dict]  # hits that did not fit the budget
    prompt_tokens: int
    budget: int
    ordering: str
    seconds: dict[str, float] = field(default_factory=dict)
    quotes: list[Quote] = field(default_factory=list)  # verbatim sentences that carry the answer, best first
    abstained: bool = False  # it says the documents don't say
    weak: bool = False  # a quote answer whose best sentence matches only weakly: shown as such, not as the answer
    ranked: list[Quote] = field(default_factory=list)  # quote answers: the best sentences whatever their score
    mode: str = "generate"  # quote | generate
    # A written answer checked against what it cites (rag.citations): supported | partly supported | unsupported
    # | "" (it states no name, place, figure or date to check; or a quote answer, which is the documents' text)
    support: str = ""
    unsupported: list[str] = field(default_factory=list)  # what it states that no source it cites contains
    instead: Answer | None = None  # an unsupported answer: the quote answer from the same sources
    too_small: str = ""  # why the model that wrote it cannot be relied on ("" when it can)
    checked: int = 0  # a question about many documents (mode "review"): how many documents were checked

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """What the model will read for one question: the packed sources as chat messages, counted."""

    question: str
    hits: list[Hit]  # retrieved, best first, before packing
    packed: Packed
    chat: list[dict[str, str]]
    prompt_tokens: int
    budget: int
    ordering: str
    history: tuple[tuple[str, str], ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)  # retrieve, pack
    quoting: bool = False  # packed for a quote answer (no prompt: chat is empty)
    documents: tuple[str, ...] = ()  # the documents it was scoped to, as named
    clause: str = ""  # the clause type the question asks about in them (rag.domain.clause_models), or ""


def strength(score: float, probability: float | None) -> str:
    """How strongly a quote answers: the contract review's probability that it holds the clause asked about, else
    its score over the threshold of quote answers."""
    return f"score {score:.2f}" if probability is None else f"probability {probability:.0%}"


def shortfall(abstained: bool, weak: bool, best: Quote | dict | None) -> str:
    """Why a quote answer's best sentences are not given as the answer ("" when they are): how far the best
    (`ranked[0]`, a Quote or its dict) stands under what an answer needs."""
    if not (abstained or weak) or best is None:
        return ""
    score, probability = (best["score"], best.get("probability")) if isinstance(best, dict) else \
        (best.score, best.probability)
    if probability is None:
        return (f"The closest sentences score {score:.2f}, under the 0 a quote answer needs" if abstained else
                f"The best sentence scores {score:.2f}, under the {WEIGHTS.weak} of an answer")
    return (f"The contract review finds the clause asked about at most {probability:.0%} probable, under the "
            f"{ANSWERS:.0%} " + ("an answer needs" if abstained else f"of an answer and the {FOUND:.0%} of a clause "
                                                                       "found"))


class Engine:
    """One knowledge base and one answering model, held open for many questions. What may change from one
    question to the next (documents, budget, ordering, top-k, the conversation) is passed with each call.

    What every question needs (the question encoder, the clause models' questions, Llama 3's tokenizer) starts
    loading in background threads as the engine opens, beside the knowledge base; `warm()` adds the model that
    writes answers when this mode needs one. A question waits for what is still loading, and says how long
    (`seconds["load"]`).
    """

    def __init__(self, settings: Settings, *, llm: LLM | None = None, retriever: Retriever | None = None,
                 kb=None):
        self.settings = settings
        embedder = retriever.embedder if retriever else Embedder(settings, asking=True)
        self._loading: list[threading.Thread] = []
        self._warming = False
        self._background(embedder.warm, llama3_encoding)
        self.retriever = retriever or Retriever(settings, embedder, kb=kb)
        self._llm = llm  # opened when first needed: quote answers need none
        self._llm_lock = threading.Lock()
        self._clean, self._clean_for = neutralize, None
        self.quoter = Quoter.open(settings, embedder, self.retriever.kb.page_texts)
        self._background(self.quoter.warm)
        self._reviewer: Reviewer | None = None  # the contract review's model, opened when a question needs it

    def _background(self, *jobs: Callable[[], object]) -> None:
        """Run the jobs one after another in a thread. A job that fails is done again, and raises, where its
        result is needed."""
        def run():
            for job in jobs:
                try:
                    job()
                except Exception as e:
                    log.debug("loading ahead failed (it is retried where needed): %s", e)
                    return
        thread = threading.Thread(target=run, name="rag-load", daemon=True)
        thread.start()
        self._loading.append(thread)

    def warm(self) -> None:
        """Also start loading the model that writes answers, when this mode needs one (the embedded model loads
        for ~15 s). Returns at once; the next question waits for what is still loading."""
        if not self._warming:
            self._warming = True
            self._background(lambda: self.mode == "generate" and self.llm.load())

    @property
    def loading(self) -> bool:
        """Whether something is still loading (the next question would wait for it)."""
        return any(thread.is_alive() for thread in self._loading)

    def ready(self) -> float:
        """Wait for what is loading; the seconds waited."""
        started = time.perf_counter()
        for thread in self._loading:
            thread.join()
        return time.perf_counter() - started

    @property
    def llm(self) -> LLM:
        with self._llm_lock:
            if self._llm is None:
                self._llm = open_llm(self.settings)
            return self._llm

    @property
    def clean(self):
        """Document text never becomes the answering model's structure (its special tokens are broken)."""
        if self._clean_for is not self.llm:
            self._clean, self._clean_for = neutralizer(self.llm.special_tokens), self.llm
        return self._clean

    @property
    def mode(self) -> str:
        """How questions are answered: `quote` or `generate` (settings.answer, with `auto` resolved: quotes unless a
        model that can write answers is at hand)."""
        s = self.settings
        if s.answer != "auto":
            return s.answer
        if self._llm is None and (backend := planned(s)) is not None and backend.bundled_model and not s.embedded_model:
            return "quote"  # the bundled model, too small to write answers: known without loading it
        return "quote" if self.llm.too_small else "generate"

    def close(self) -> None:
        self.retriever.close()

    def budget(self, question: str, budget: int | None = None, history: Sequence[tuple[str, str]] = ()) -> int:
        """Tokens left for sources once everything else in the prompt and the answer are counted."""
        fixed = self.llm.count_messages(self._chat([], question, history))
        wanted = budget or self.settings.budget
        left = min(wanted, self.llm.context_window - fixed - self.settings.max_answer_tokens,
                   self.llm.max_budget or wanted)
        if left <= 0:
            raise PromptTooLongError(
                f"the question takes {fixed} tokens of the model's {self.llm.context_window}: shorten it")
        return left

    def ask(self, question: str, documents: Sequence[str] | None = None, on_token: Callable[[str], None] | None = None,
            history: Sequence[tuple[str, str]] = (), *, answer: str | None = None, **options) -> Answer:
        """`answer`: quote or generate (default: `mode`); `options`: budget, ordering, top_k (see `context`). A
        question about a clause type across the documents ("which contracts have a non-compete?") is answered
        from the contract review (`review_answer`)."""
        if not documents and not history and (category := self.clause_across(question)):
            return self.review_answer(question, category)
        if (answer or self.mode) == "quote":
            return self.quote_answer(self.context(question, documents, history=history, quoting=True, **options))
        return self.answer(self.context(question, documents, history=history, **options), on_token)

    def context(self, question: str, documents: Sequence[str] | None = None, *, budget: int | None = None,
                ordering: str | None = None, top_k: int | None = None,
                history: Sequence[tuple[str, str]] = (), quoting: bool = False) -> Context:
        """Retrieve and pack: the prompt for `question`, within `budget` (default: settings) and the window.

        `quoting`: for a quote answer: sources within `budget` (default: settings.quote_budget), counted with
        Llama 3's tokenizer, and no prompt (no language model is needed).

        `history`: earlier (question, answer) turns of a conversation, oldest first. They go into the
        prompt before the sources, and the last earlier question joins this one as the search query,
        so a follow-up ("and when does it end?") finds what the conversation is about.
        """
        waited = self.ready()
        started = time.perf_counter()
        if not self.retriever.manifest.has_documents():
            raise RagError(f"the knowledge base {self.settings.collection!r} in {self.settings.index_dir} is empty: "
                           "add documents with `rag ingest FOLDER` first")
        budget = (budget or self.settings.quote_budget) if quoting else self.budget(question, budget, history)
        k = top_k or self.settings.top_k or max(10, budget // TOKENS_PER_CHUNK)
        query = f"{history[-1][0]} {question}" if history else question
        clause = self.quoter.clause(question) if documents else None  # what it finds in them
        hits = self.retriever.search(query, k, documents, clause).hits
        retrieved = time.perf_counter()
        ordering = ordering or self.settings.ordering
        if quoting:
            packed = pack(hits, budget, llama3_tokens, ordering="golden", neighbours=self.retriever.neighbours,
                          expand=self.settings.expand, llama_counts=True, clean=neutralize)
            return Context(question, hits, packed, [], 0, budget, "golden", tuple(history),
                           {"load": waited, "retrieve": retrieved - started, "pack": time.perf_counter() - retrieved},
                           quoting=True, documents=tuple(documents or ()), clause=clause.name if clause else "")
        packed = self._pack(hits, budget, ordering)
        chat = self._chat(packed.sources, question, history)
        prompt_tokens = self.llm.count_messages(chat)
        while prompt_tokens + self.settings.max_answer_tokens > self.llm.context_window and packed.sources:
            budget -= prompt_tokens + self.settings.max_answer_tokens - self.llm.context_window + 16
            packed = self._pack(hits, max(0, budget), ordering)
            chat = self._chat(packed.sources, question, history)
            prompt_tokens = self.llm.count_messages(chat)
        return Context(question, hits, packed, chat, prompt_tokens, budget, ordering, tuple(history),
                       {"load": waited, "retrieve": retrieved - started, "pack": time.perf_counter() - retrieved})

    def reordered(self, context: Context, ordering: str) -> Context:
        """The same sources in another order (for ablations: what ordering alone changes)."""
        started = time.perf_counter()
        packed = reorder(context.packed, ordering)
        chat = self._chat(packed.sources, context.question, context.history)
        return replace(context, packed=packed, chat=chat, prompt_tokens=self.llm.count_messages(chat),
                       ordering=ordering, seconds={**context.seconds, "pack": time.perf_counter() - started})

    def quote_answer(self, context: Context) -> Answer:
        """A quote answer: the best sentences of the context's sources, verbatim, or that the documents don't
        appear to say (when no sentence scores well enough). A question about a clause type in chosen documents
        is answered from their contract review instead (`reviewed`)."""
        started = time.perf_counter()
        chosen = self.reviewed(context) or self.quoter.quote(context.question, context.packed.sources)
        done = time.perf_counter()
        packed, before = context.packed, sum(context.seconds.values())
        by_number = {s.number: s for s in packed.sources}
        first: dict[int, Quote] = {}  # each source's first quote: the source itself, or the page a review quote is on
        for q in chosen.quotes:
            first.setdefault(q.source, q)
        citations = [Citation(n, s.file, s.path, s.page_start, s.page_end, s.text, section=s.section)
                     if (s := by_number.get(n)) else Citation(n, q.file, q.path, q.page, q.page, q.text)
                     for n, q in first.items()]
        text = NOT_FOUND if chosen.abstained else WEAK_MATCH if chosen.weak else chosen.quotes[0].shown()
        return self._located(Answer(
            question=context.question, text=text, backend="quotes (no language model)", citations=citations,
            sources=[_source_dict(s) for s in packed.sources], not_fitted=[], prompt_tokens=0, budget=context.budget,
            ordering=context.ordering, seconds={**context.seconds, "quote": done - started, "first_token": before +
                                                done - started, "total": before + done - started},
            quotes=chosen.quotes, abstained=chosen.abstained, weak=chosen.weak, ranked=chosen.best, mode="quote"),
            packed.sources)

    def reviewed(self, context: Context) -> Quoted | None:
        """A question about a clause type in chosen documents, answered from their contract review: the passages
        its model found for that type, most probable first, and that the documents do not say when none is
        ANSWERS probable (a weak match under FOUND). None when the question asks no clause type the review
        knows, names no document, or review is off. Measured on cuad-dev's contracts, none of them trained on:
        more answers right and more abstentions right than ranking the retrieved sentences (README)."""
        if not context.documents or context.clause not in BY_NAME or self.reviewer is None:
            return None
        documents = complete_documents(self.retriever.kb, context.documents)
        cells = library_reviews(self.retriever.kb, self.reviewer, documents)
        passages = sorted(((q, d) for d in documents for cell in cells[d] if cell.category == context.clause
                           for q in cell.quotes), key=lambda qd: (-qd[0].probability, documents[qd[1]].path))
        numbers = {(s.doc_id, page): s.number for s in context.packed.sources
                   for page in range(s.page_start, s.page_end + 1)}
        unpacked = max((s.number for s in context.packed.sources), default=0)  # a passage no source holds: after them
        best = []
        for q, d in passages[:TOP]:
            if (d, q.page) not in numbers:
                unpacked += 1
                numbers[d, q.page] = unpacked
            path = documents[d].path
            best.append(Quote(q.text, Path(path).name, path, d, q.page, q.start, q.end, numbers[d, q.page],
                              round(q.probability - ANSWERS, 4), probability=q.probability))
        answer = [q for q in best if q.probability >= ANSWERS]  # a passage under it is no part of the answer
        return Quoted(answer, best, len(passages), not answer, bool(answer) and answer[0].probability < FOUND)

    @property
    def reviewer(self) -> Reviewer | None:
        """The contract review's model, opened when a question first needs it; None when review is off."""
        if self._reviewer is None and self.settings.review_model != "none":
            self._reviewer = Reviewer.open(self.settings)
        return self._reviewer

    def clause_across(self, question: str) -> str | None:
        """The CUAD clause type a question asks about across documents ("which contracts ...", "do any of our
        agreements ..."), or None: a question about the documents at large that names a clause type the
        review knows."""
        if not ACROSS.search(question) or self.settings.review_model == "none":
            return None
        clause = self.quoter.clause(question)
        return clause.name if clause is not None and clause.name in BY_NAME else None

    def review_answer(self, question: str, category: str) -> Answer:
        """The documents whose contract review finds the clause, most probable first, each with its best quote."""
        started = time.perf_counter()
        found, checked = holding(self.retriever.kb, self.reviewer, category)
        quotes = [Quote(cell.quotes[0].text, Path(path).name, path, doc_id, cell.quotes[0].page, cell.quotes[0].start,
                        cell.quotes[0].end, n, round(cell.probability, 4), probability=cell.probability)
                  for n, (doc_id, path, cell) in enumerate(found, 1)]
        citations = [Citation(q.source, q.file, q.path, q.page, q.page, q.text) for q in quotes]
        lines = [f"{len(found)} of {checked} documents have a {category} clause (the contract review's probability "
                 "0.5 or more), most probable first:" if found else
                 f"None of the {checked} documents has a {category} clause, as the contract review reads them."]
        lines += [f"[{q.source}] {q.file}, page {q.page} ({q.score:.0%}): {q.shown()}" for q in quotes]
        took = time.perf_counter() - started
        return Answer(question=question, text="\n".join(lines), backend="contract review (no language model)",
                      citations=citations, sources=[], not_fitted=[], prompt_tokens=0, budget=0, ordering="",
                      quotes=quotes, seconds={"review": took, "first_token": took, "total": took}, abstained=not found,
                      mode="review", checked=checked)

    def answer(self, context: Context, on_token: Callable[[str], None] | None = None) -> Answer:
        """Stream the model's answer to a prepared context and tie its [n] citations to file and page."""
        started = time.perf_counter()
        parts: list[str] = []
        first_token = None
        for piece in self.llm.stream(context.chat, self.settings.max_answer_tokens):
            if first_token is None:
                first_token = time.perf_counter()
            parts.append(piece)
            if on_token:
                on_token(piece)
        done = time.perf_counter()
        text = "".join(parts).strip()
        packed, before = context.packed, sum(context.seconds.values())
        citations, quotes = check(text, packed.sources, cite(text, packed.sources, context.question),
                                  self.retriever.kb.page_texts)
        checked = support(text, context.question, supporting_texts(citations, packed.sources))
        answer = self._located(Answer(
            question=context.question, text=text, backend=self.llm.describe, quotes=quotes,
            citations=citations, sources=[_source_dict(s) for s in packed.sources],
            not_fitted=[{"rank": h.rank, "file": h.file, "page": h.page_start, "chunk_id": h.chunk_id}
                        for h in packed.dropped],
            prompt_tokens=context.prompt_tokens, budget=context.budget, ordering=context.ordering,
            seconds={**context.seconds, "first_token": before + (first_token or done) - started,
                     "total": before + done - started},
            abstained=NOT_FOUND.lower().rstrip(".") in text.lower(), support=checked.verdict,
            unsupported=list(checked.unsupported), too_small=self.llm.too_small), packed.sources)
        if checked.verdict == "unsupported":
            answer.instead = self.quote_answer(self._for_quotes(context))
        return answer

    def _for_quotes(self, context: Context) -> Context:
        """The context's best sources, by retrieval rank, within the quote budget: what a quote answer reads."""
        chosen, tokens = [], 0
        for source in sorted(context.packed.sources, key=lambda s: s.rank):
            if chosen and tokens + source.tokens > self.settings.quote_budget:
                break
            chosen.append(source)
            tokens += source.tokens
        return replace(context, packed=replace(context.packed, sources=chosen), quoting=True)

    def _located(self, answer: Answer, sources: Sequence[Source]) -> Answer:
        """The answer with each quote's section named (Word, HTML), and its citations and quotes that rest on
        pages read by OCR marked so."""
        documents = {s.number: s.doc_id for s in sources} | {q.source: q.doc_id for q in answer.quotes}
        read = self.retriever.kb.ocr_pages(set(documents.values()))
        sections = self.retriever.kb.sections(set(documents.values()))
        if not read and not sections:
            return answer

        def scanned(doc_id: str, first: int, last: int) -> bool:
            return any(first <= page <= last for page in read.get(doc_id, ()))

        def located(q: Quote) -> Quote:
            return replace(q, ocr=scanned(q.doc_id, q.page, q.page), section=sections.get(q.doc_id, {}).get(q.page, ""))

        return replace(answer, citations=[replace(c, ocr=scanned(documents[c.number], c.page_start, c.page_end))
                                          for c in answer.citations],
                       quotes=[located(q) for q in answer.quotes], ranked=[located(q) for q in answer.ranked])

    def _pack(self, hits, budget: int, ordering: str) -> Packed:
        return pack(hits, budget, self.llm.count, ordering=ordering,
                    neighbours=self.retriever.neighbours, expand=self.settings.expand,
                    llama_counts=self.llm.counts_llama3, clean=self.clean)

    def _chat(self, sources: Sequence[Source], question: str, history: Sequence[tuple[str, str]]) -> list[dict]:
        return messages([s.block(self.clean) for s in sources], question, history, self.clean)


def _source_dict(s: Source) -> dict:
    return {"number": s.number, "rank": s.rank, "score": round(s.score, 6), "file": s.file, "path": s.path,
            "page_start": s.page_start, "page_end": s.page_end, "chunks": [s.first, s.last], "tokens": s.tokens,
            "hits": list(s.hits), "section": s.section, "text": s.text}
