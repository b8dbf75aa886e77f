"""Batch Q&A evaluation: every question under every (ordering, budget) setting, appended to results.jsonl.

Per question and budget the engine retrieves and packs once; each ordering is the same sources in
another order (what ordering alone changes), so evidence recall does not depend on the ordering but
where the evidence sits, and the answer, do. Retrieval and packing run one at a time (they share the
index's connection); answers from a server backend run `concurrency` at a time, so vLLM batches them.

A run is resumable: results are appended (and flushed) as they finish, and a rerun with the same `out`
skips the (question, pipeline, ordering, budget) rows already there.

One question never stops the batch: a question that cannot be run (scoped to a document the index does
not hold, say one that failed to ingest; or one answer that timed out) is recorded with its error,
counts as a miss in the metrics, and is tried again by the next run. Only a server that is down ends
the run (every question after it would fail the same way).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from eval import metrics as m
from rag.config import Settings
from rag.engine import Answer, Context, Engine
from rag.errors import ConfigError, LLMTimeoutError, LLMUnavailableError, RagError
from rag.paths import json_safe

RECALL_AT = (1, 5, 10, 20)
OURS = "ours"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    documents: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    answerable: bool = True
    category: str = ""


@dataclass(frozen=True)
class Plan:
    orderings: tuple[str, ...] = ("golden",)
    budgets: tuple[int, ...] = (32768,)
    retrieval_only: bool = False
    concurrency: int = 1
    baselines: tuple = ()  # eval.baseline.StockPipeline objects, measured beside ours
    judge: object | None = None  # eval.judge.Judge, or None
    texts: bool = True  # keep the sources' texts in results.jsonl
    quoting: bool = False  # quote answers (rag.quotes) instead of a model's: no language model, golden order only


def load_questions(path: Path, limit: int = 0, sample: int = 0, seed: int = 0,
                   answerable_only: bool = False) -> list[Question]:
    """Questions in the project's format (one JSON object a line); a seeded sample, then the first `limit`."""
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            documents = tuple(raw.get("documents") or ())
            if not isinstance(raw["question"], str) or not all(isinstance(d, str) for d in documents):
                raise TypeError("'question' and each of 'documents' must be text")
            questions.append(Question(
                str(raw["id"]), raw["question"], documents, tuple(raw.get("answers") or ()),
                tuple(raw.get("evidence") or ()), bool(raw.get("answerable", True)), raw.get("category") or ""))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}:{n}: not a question ({e}): each line needs at least 'id' and 'question'")
    if answerable_only:
        questions = [q for q in questions if q.answerable]
    if sample:
        questions = random.Random(seed).sample(questions, min(sample, len(questions)))
    return questions[:limit] if limit else questions


class Results:
    """results.jsonl in `out`: appended line by line, read back to resume. A later row for the same key
    (a question retried after an error) replaces the earlier one."""

    def __init__(self, out: Path):
        self.path = out / "results.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._rows = {self.key(r): r for r in self._read()}
        self.done = {k for k, r in self._rows.items() if "error" not in r}

    @property
    def rows(self) -> list[dict]:
        return list(self._rows.values())

    @staticmethod
    def key(row: dict) -> tuple:
        return row["id"], row["pipeline"], row["ordering"], row["budget"]

    def _read(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = data[:data.rfind(b"\n") + 1]  # a line cut by an interruption is dropped, and done again
        if len(good) != len(data):
            self.path.write_bytes(good)
        for line in good.splitlines():
            row = json.loads(line)
            row["context"] = None  # texts are for people reading the file; summaries need the rest
            yield row

    def add(self, row: dict) -> None:
        line = json.dumps(json_safe(row), ensure_ascii=False) + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._rows[self.key(row)] = {**row, "context": None}
            if "error" not in row:
                self.done.add(self.key(row))


def run(questions: Sequence[Question], settings: Settings, plan: Plan, out: Path, engine: Engine,
        on_row: Callable[[dict], None] = lambda row: None) -> Results:
    results = Results(out)
    index_lock = threading.Lock()

    def one(q: Question) -> None:
        for budget in plan.budgets:
            for baseline in plan.baselines:
                if (q.id, baseline.name, "golden", budget) not in results.done:
                    with index_lock:
                        row = baseline_row(q, baseline, budget)
                    results.add(row if plan.texts else _without_texts(row))
                    on_row(row)
            todo = [o for o in plan.orderings if (q.id, OURS, o, budget) not in results.done]
            if not todo:
                continue
            try:
                with index_lock:
                    first = engine.context(q.question, q.documents or None, budget=budget, ordering=todo[0],
                                           quoting=plan.quoting)
                    contexts = [first] + [engine.reordered(first, o) for o in todo[1:]]
                    shared = retrieval_metrics(q, first)
            except RagError as e:
                if isinstance(e, LLMUnavailableError):
                    raise
                for ordering in todo:
                    row = error_row(q, ordering, budget, e)
                    results.add(row)
                    on_row(row)
                continue
            for context in contexts:
                asked = time.time()
                try:
                    answer = (None if plan.retrieval_only else engine.quote_answer(context) if plan.quoting
                              else engine.answer(context))
                except LLMTimeoutError as e:
                    row = error_row(q, context.ordering, budget, e)
                    results.add(row)
                    on_row(row)
                    continue
                span = [asked, time.time()]  # wall clock: shows answers overlapping
                row = our_row(q, budget, context, answer, shared, engine, plan.judge)
                if answer is not None:
                    row["answered_at"] = span
                results.add(row if plan.texts else _without_texts(row))
                on_row(row)

    workers = 1 if plan.retrieval_only else max(1, plan.concurrency)
    pending = [q for q in questions if not all(
        (q.id, OURS, o, b) in results.done for o in plan.orderings for b in plan.budgets)
        or any((q.id, s.name, "golden", b) not in results.done for s in plan.baselines for b in plan.budgets)]
    if workers == 1:
        for q in pending:
            one(q)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(one, q) for q in pending]:
                future.result()
    return results


def _without_texts(row: dict) -> dict:
    return {**row, "context": [{k: v for k, v in c.items() if k != "text"} for c in row["context"]]}


def retrieval_metrics(q: Question, context: Context) -> dict:
    """What retrieval and packing found, the same for every ordering of one context."""
    if not q.answerable or not q.evidence:
        return {}
    ranked = [h.text for h in context.hits]
    found = {f"recall_at_{k}": m.evidence_recall(q.evidence, ranked[:k]) for k in RECALL_AT}
    packed = [s.text for s in context.packed.sources]
    return {**found, "mrr": m.reciprocal_rank(q.evidence, ranked), "evidence_recall": m.evidence_recall(q.evidence, packed),
            "evidence_words": m.evidence_words(q.evidence, packed)}


def position_metrics(q: Question, texts: Sequence[str], tokens: Sequence[int]) -> dict:
    at = m.first_evidence(q.evidence, texts) if q.answerable and q.evidence else None
    if at is None:
        return {"evidence_found": 0.0} if q.answerable and q.evidence else {}
    return {"evidence_found": 1.0, "first_evidence_source": at + 1, "first_evidence_offset": sum(tokens[:at])}


def answer_metrics(q: Question, answer: Answer) -> dict:
    out: dict = {"abstained": float(answer.abstained)}
    if answer.mode == "quote":  # not presented as the answer: no quote, or a weak match
        out["not_answered" if not q.answerable else "weak"] = float(answer.abstained or answer.weak)
    if q.answerable:
        out["false_abstention"] = float(answer.abstained)
        if q.answers:
            out.update(exact_match=m.exact_match(answer.text, q.answers), f1=m.token_f1(answer.text, q.answers),
                       contains=m.contains(answer.text, q.answers))
        if answer.citations and answer.mode == "generate":
            out["citation_verified"] = sum(c.verified is True for c in answer.citations) / len(answer.citations)
        if answer.citations and q.evidence:
            out["citation_precision"] = sum(m.holds_evidence(q.evidence, c.passage) for c in answer.citations) / len(
                answer.citations)
            out["citation_inferred"] = float(any(c.inferred for c in answer.citations))
    else:
        out["abstention_accuracy"] = float(answer.abstained)
        out["answered_anyway"] = 1.0 - float(answer.abstained)
    return out


def quote_metrics(q: Question, answer: Answer, pages) -> dict:
    """How the answer's quotes match the gold clauses (answerable questions), and whether each quote is, word
    for word, at its page and offsets in the stored text (`pages(doc_id, first, last)`)."""
    out: dict = {}
    if answer.quotes:
        out["quote_verified"] = sum(verified(quote, pages) for quote in answer.quotes) / len(answer.quotes)
    if q.answerable and q.evidence:
        matched = [m.quote_matches(quote.text, q.evidence) for quote in answer.quotes[:3]]
        out.update(quote_top1=float(bool(matched) and matched[0]), quote_top3=float(any(matched)))
    return out


def verified(quote, pages) -> bool:
    return pages(quote.doc_id, quote.page, quote.page).get(quote.page, "")[quote.start:quote.end] == quote.text


def our_row(q: Question, budget: int, context: Context, answer: Answer | None, shared: dict, engine: Engine,
            judge) -> dict:
    sources = context.packed.sources
    metrics = {**shared, **position_metrics(q, [s.text for s in sources], [s.tokens for s in sources]),
               "prompt_tokens": context.prompt_tokens}
    seconds = dict(context.seconds)
    row = base_row(q, OURS, context.ordering, budget)
    if answer is not None:
        metrics.update(answer_metrics(q, answer))
        seconds = answer.seconds
        generating = seconds["total"] - seconds["first_token"]
        answer_tokens = engine.llm.count(answer.text) if answer.text and answer.mode == "generate" else 0
        if generating > 0 and answer_tokens:
            metrics["tokens_per_second"] = answer_tokens / generating
        if judge is not None and q.answerable and q.answers:
            metrics["judge"] = judge.score(q, answer.text)
        metrics.update(quote_metrics(q, answer, engine.retriever.kb.page_texts))  # no checkable quote: a miss
        if answer.mode == "quote" or answer.quotes:
            row.update(quotes=[{"text": x.text, "file": x.file, "page": x.page, "start": x.start, "end": x.end,
                                "score": x.score, **({"section": x.section} if x.section else {}),
                                **({"ocr": True} if x.ocr else {})} for x in answer.quotes],
                       abstained=answer.abstained, weak=answer.weak,
                       ranked=[{"score": x.score, "match": m.quote_matches(x.text, q.evidence) if q.evidence else None}
                               for x in answer.ranked])  # whatever their score: the threshold's trade-off
        row.update(answer=answer.text, backend=answer.backend, citations=[
            {"number": c.number, "file": c.file, "page_start": c.page_start, "page_end": c.page_end,
             **({"section": c.section} if c.section else {}), **({"ocr": True} if c.ocr else {}),
             "inferred": c.inferred, "verified": c.verified,
             "holds_evidence": m.holds_evidence(q.evidence, c.passage) if q.evidence else None}
            for c in answer.citations])
    row.update(effective_budget=context.budget, metrics=metrics, seconds=seconds, context=[
        {"number": s.number, "rank": s.rank, "source": s.file, "page": s.page_start, "page_end": s.page_end,
         **({"section": s.section} if s.section else {}), "tokens": s.tokens, "text": s.text} for s in sources])
    return row


def baseline_row(q: Question, baseline, budget: int) -> dict:
    started = time.perf_counter()
    ranked, packed = baseline.context(q.question, q.documents, budget)
    seconds = time.perf_counter() - started
    metrics = position_metrics(q, [n.text for n in packed], [n.tokens for n in packed])
    if q.answerable and q.evidence:
        metrics.update({f"recall_at_{k}": m.evidence_recall(q.evidence, ranked[:k]) for k in RECALL_AT})
        metrics.update(mrr=m.reciprocal_rank(q.evidence, ranked),
                       evidence_recall=m.evidence_recall(q.evidence, [n.text for n in packed]),
                       evidence_words=m.evidence_words(q.evidence, [n.text for n in packed]))
    row = base_row(q, baseline.name, "golden", budget)
    row.update(effective_budget=budget, metrics=metrics, seconds={"retrieve_and_pack": seconds}, context=[
        {"number": i, "rank": i, "source": n.file, "page": n.page, "tokens": n.tokens, "text": n.text}
        for i, n in enumerate(packed, 1)])
    return row


def error_row(q: Question, ordering: str, budget: int, e: RagError) -> dict:
    """A question that could not be run: its error, and a miss in every retrieval metric it would have had."""
    missed = {"evidence_recall": 0.0, "evidence_words": 0.0, "evidence_found": 0.0, "mrr": 0.0,
              **{f"recall_at_{k}": 0.0 for k in RECALL_AT}} if q.answerable and q.evidence else {}
    return {**base_row(q, OURS, ordering, budget), "error": str(e), "error_type": type(e).__name__,
            "metrics": {"error": 1.0, **missed}, "seconds": {}, "context": []}


def base_row(q: Question, pipeline: str, ordering: str, budget: int) -> dict:
    return {"id": q.id, "pipeline": pipeline, "ordering": ordering, "budget": budget, "category": q.category,
            "answerable": q.answerable, "question": q.question, "documents": list(q.documents)}


@dataclass
class RunInfo:
    """What a results folder was made with; a rerun must match it to resume."""

    questions: str
    collection: str
    backend: str
    extra: dict = field(default_factory=dict)

    def check(self, out: Path) -> None:
        path = out / "run.json"
        mine = {"questions": self.questions, "collection": self.collection, "backend": self.backend}
        if path.exists():
            theirs = json.loads(path.read_text())
            differs = [k for k, v in mine.items() if theirs.get(k) != v]
            if differs and (out / "results.jsonl").exists():
                raise ConfigError(
                    f"{out} holds results of another run ({', '.join(f'{k}: {theirs.get(k)!r}' for k in differs)}): "
                    "use another --out, or delete that folder to start over")
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**mine, **self.extra}, indent=2) + "\n")
