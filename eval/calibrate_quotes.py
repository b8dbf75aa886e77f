"""Fit the weights and the threshold of quote answers (rag.quotes) on a question set, and say what they give.

    python -m eval.calibrate_quotes ../shared/data/cuad-dev/questions.jsonl --docs ../shared/data/cuad-dev/docs \
        --index /tmp/cuadidx --out eval/reports/cuad-dev-quotes/calibration

1. Every question's quote pool (the sources a quote answer chooses from, at the quote budget): each
   sentence's three signals (cosine to the question, keyword share, 1 / source rank) and whether it
   matches a gold clause (eval.metrics.quote_matches).
2. The weights: a grid over KEYWORDS x LEAD, scored by the share of answerable questions whose best
   sentence matches.
3. The threshold: the lowest at which unanswerable questions are abstained on ABSTAIN_TARGET of the
   time (0.60, the issue's target), so that as many answerable questions as possible keep their quote;
   both numbers are said, and the whole trade-off is tabled.

Fitted on half of the documents and measured on the other half, then the other way round (held-out
numbers, so the choice is not graded on what chose it); the constants to ship are then fitted on all.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import time
from pathlib import Path

import numpy as np

from eval import metrics as m
from eval.harness import load_questions
from rag import quotes
from rag.config import load_settings
from rag.errors import RagError

KEYWORD_GRID = [round(0.1 * i, 1) for i in range(0, 11)]  # 0 .. 1
LEAD_GRID = [0.0, 0.05, 0.1, 0.2, 0.3]
OPENING_GRID = [0.0, 0.5, 1.0, 2.0, 4.0]
IDENTITY_GRID = [0.4, 0.5, 0.6, 0.7]
ABSTAIN_TARGET = 0.60


def features(questions, engine) -> list[dict]:
    """Per question: its document, answerable, and per candidate sentence (cosine, share, 1/rank, match)."""
    rows, started = [], time.monotonic()
    for n, q in enumerate(questions, 1):
        try:
            context = engine.context(q.question, q.documents or None, quoting=True)
        except RagError as e:
            rows.append({"id": q.id, "doc": ",".join(q.documents), "answerable": q.answerable, "error": str(e)})
            continue
        found = quotes.candidates(context.packed.sources, engine.retriever.kb.page_texts)
        texts = [c.text for c in found]
        vectors = engine.quoter.vectors([q.question, *texts]) if found else np.zeros((1, 1))
        rows.append({
            "id": q.id, "doc": ",".join(q.documents), "answerable": q.answerable, "category": q.category,
            "cosine": (vectors[1:] @ vectors[0]).tolist() if found else [],
            "share": quotes.keyword_shares(q.question, texts),
            "lead": [1.0 / c.source.rank for c in found],
            "opening": [float(quotes.in_opening(c)) for c in found],
            "identity": engine.quoter.identity(q.question),
            "match": [m.quote_matches(t, q.evidence) for t in texts] if q.answerable and q.evidence else [],
        })
        if n % 200 == 0:
            print(f"{n}/{len(questions)} questions, {time.monotonic() - started:.0f} s", flush=True)
    return rows


class Pool:
    """Every question's sentences as padded arrays (questions x sentences), so a grid point costs one pass."""

    def __init__(self, rows: list[dict]):
        width = max([len(r["cosine"]) for r in rows] + [1])

        def padded(name: str, fill=0.0) -> np.ndarray:
            out = np.full((len(rows), width), fill, dtype=float)
            for i, r in enumerate(rows):
                out[i, :len(r[name])] = r[name]
            return out

        self.cosine, self.share, self.lead, self.opening = (padded(n) for n in ("cosine", "share", "lead", "opening"))
        self.empty = np.array([not r["cosine"] for r in rows])
        self.absent = np.arange(width)[None, :] >= np.array([len(r["cosine"]) for r in rows])[:, None]
        self.match = np.zeros((len(rows), width), dtype=bool)
        for i, r in enumerate(rows):
            self.match[i, :len(r["match"])] = r["match"]
        self.identity = np.array([r["identity"] for r in rows])
        self.answerable = np.array([r["answerable"] for r in rows])
        self.judged = np.array([bool(r["answerable"] and r["match"]) for r in rows])  # answerable, with evidence

    def best(self, w: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """rag.quotes.scores with w = (KEYWORDS, LEAD, OPENING, IDENTITY): each question's best score, and
        whether that sentence matches a gold clause."""
        keywords, lead, opening, identity = w
        about = opening * np.maximum(0.0, self.identity - identity)
        s = self.cosine + keywords * self.share + lead * self.lead + about[:, None] * self.opening
        s[self.absent] = -np.inf
        i = s.argmax(axis=1)
        rows = np.arange(len(i))
        return np.where(self.empty, -1.0, s[rows, i]), self.match[rows, i] & ~self.empty

    def outcomes(self, w) -> list[tuple[float, bool | None]]:
        best, hit = self.best(w)
        return [(float(b), bool(h) if a else None) for b, h, a in zip(best, hit, self.answerable)]

    def top1(self, w) -> float:
        return float(self.best(w)[1][self.judged].mean()) if self.judged.any() else 0.0


def fit(pool: Pool) -> dict:
    grid = [(k, lead, o, i) for k in KEYWORD_GRID for lead in LEAD_GRID for o in OPENING_GRID
            for i in (IDENTITY_GRID if o else IDENTITY_GRID[:1])]
    top1, w = max((pool.top1(w), w) for w in grid)
    results = pool.outcomes(w)
    thresholds = np.quantile([s for s, _ in results], np.linspace(0, 1, 201))
    tradeoffs = [m.quote_tradeoff(results, t) for t in thresholds]
    chosen = next((x for x in tradeoffs if x["abstention"] >= ABSTAIN_TARGET), tradeoffs[-1])
    return {"keywords": w[0], "lead": w[1], "opening": w[2], "identity": w[3], "threshold": chosen["threshold"],
            "ungated_top1": top1}


def weights(fitted: dict) -> tuple[float, float, float, float]:
    return fitted["keywords"], fitted["lead"], fitted["opening"], fitted["identity"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--docs", type=Path)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("eval/reports/cuad-dev-quotes/calibration"))
    parser.add_argument("--features", type=Path, help="keep (and reuse) the computed signals in this file")
    args = parser.parse_args()
    settings = load_settings({"index_dir": args.index})
    questions = load_questions(args.questions)
    if args.features and args.features.exists():
        rows = pickle.loads(args.features.read_bytes())
    else:
        from rag.backends.openai import RetrievalOnly
        from rag.engine import Engine

        if args.docs:
            from rag.indexer import ingest

            ingest(args.docs, settings)
        engine = Engine(settings, llm=RetrievalOnly())
        try:
            rows = features(questions, engine)
        finally:
            engine.close()
        if args.features:
            args.features.write_bytes(pickle.dumps(rows))
    rows = [r for r in rows if "error" not in r]
    documents = sorted({r["doc"] for r in rows})
    random.Random(0).shuffle(documents)
    halves = [set(documents[::2]), set(documents[1::2])]
    held_out = []
    for a, b in ((0, 1), (1, 0)):
        fitted = fit(Pool([r for r in rows if r["doc"] in halves[a]]))
        tested = Pool([r for r in rows if r["doc"] in halves[b]]).outcomes(weights(fitted))
        held_out.append({**fitted, **m.quote_tradeoff(tested, fitted["threshold"]),
                         "held_out_ungated": m.quote_tradeoff(tested, -np.inf)["top1"]})
    pool = Pool(rows)
    final = fit(pool)
    results = pool.outcomes(weights(final))
    curve = [m.quote_tradeoff(results, t) for t in np.quantile([s for s, _ in results], np.linspace(0, 1, 41))]
    summary = {"questions": str(args.questions), "date": time.strftime("%Y-%m-%d"), "rows": len(rows),
               "final": {**final, **m.quote_tradeoff(results, final["threshold"])}, "held_out": held_out,
               "curve": curve}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(summary))
    print(render(summary))


def render(s: dict) -> str:
    f = s["final"]
    lines = [
        "# Quote answers: weights and threshold", "",
        f"{s['date']}. Questions: `{s['questions']}` ({s['rows']} run). Made by `python -m eval.calibrate_quotes`.", "",
        f"Fitted on all: KEYWORDS = {f['keywords']}, LEAD = {f['lead']}, OPENING = {f['opening']}, IDENTITY = "
        f"{f['identity']}, THRESHOLD = {f['threshold']} "
        f"(rag/quotes.py). At that threshold: answerable top-1 match {f['top1']:.3f}, unanswerable abstention "
        f"{f['abstention']:.3f}; without a threshold, top-1 {f['ungated_top1']:.3f}.", "",
        "Held out (fitted on half of the documents, measured on the other half):", "",
        "| fold | KEYWORDS | LEAD | OPENING | IDENTITY | THRESHOLD | top-1, no threshold | top-1 (abstention = miss) "
        "| abstention accuracy |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {i + 1} | {h['keywords']} | {h['lead']} | {h['opening']} | {h['identity']} | {h['threshold']} | "
              f"{h['held_out_ungated']:.3f} | {h['top1']:.3f} | {h['abstention']:.3f} |"
              for i, h in enumerate(s["held_out"])]
    lines += ["", "The trade-off over the threshold (all questions; precision = answered questions whose top quote "
              "matches a gold clause, unanswerable ones answered counting as wrong; recall = answerable top-1):", "",
              "| threshold | precision | recall (top-1) | abstention accuracy |", "|---:|---:|---:|---:|"]
    lines += [f"| {c['threshold']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['abstention']:.3f} |"
              for c in s["curve"][::4]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
