"""What `rag review --verify` changes: the review of contracts it was not trained on, scored with CUAD's metric
before and after a language model server confirmed its quotes.

    RAG_LLM_URL=http://localhost:8000 python -m eval.review_verify [--data ../shared/data/cuad-dev] [--limit 10] \
        [--concurrency 4] [--out eval/reports/cuad-review/verify]

The first LIMIT contracts (by name) are read as ingest reads them and reviewed (rag.review.review); rag.verify
puts each quote of at least rag.review.ANSWERS to the model. Every quote is a prediction at its probability (as
eval.review_cuad counts); after verification a rejected quote predicts nothing. Also: of the quotes the model
confirmed and of those it rejected, the share CUAD counts as finding a marked passage.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from eval.cuad_metric import curve
from eval.review_cuad import DEBERTA
from rag.backends import open_llm
from rag.config import load_settings
from rag.domain.cuad import matches
from rag.domain.review_model import ReviewModel
from rag.reading.filetypes import load_pages
from rag.review import review
from rag.verify import verify


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cuad-dev"))
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("eval/reports/cuad-review/verify"))
    args = parser.parse_args(argv)
    llm = open_llm(load_settings())
    questions = [json.loads(line) for line in open(args.data / "questions.jsonl", encoding="utf-8") if line.strip()]
    names = sorted({q["documents"][0] for q in questions})[:args.limit]
    asked = {(q["documents"][0], q["category"]): q["id"] for q in questions if q["documents"][0] in names}
    gold = {qid: [e for e in q.get("evidence") or () if e.strip()] for q in questions
            if (qid := q["id"]) in asked.values()}
    model = ReviewModel.load()
    reviews = {}
    for name in names:
        path = args.data / "docs" / name
        reviews[name] = review(list(load_pages(path, path.read_bytes()).pages), model)
    started = time.perf_counter()
    verified, said = verify(reviews, llm, args.concurrency)
    seconds = time.perf_counter() - started

    def predictions(by_doc, keep) -> dict:
        return {asked[d, c.category]: [(q.text, q.probability) for q in c.quotes if keep(q)]
                for d, cells in by_doc.items() for c in cells if (d, c.category) in asked}

    before = curve(gold, predictions(reviews, lambda q: True))
    after = curve(gold, predictions(verified, lambda q: q.verified is not False))

    def marked(kind) -> float:
        hits = [any(matches(g, q.text, c.category == "Parties") for g in gold[asked[d, c.category]])
                for d, cells in verified.items() for c in cells for q in c.quotes if q.verified is kind]
        return float(np.mean(hits)) if hits else float("nan")

    result = {"data": str(args.data), "contracts": len(names), "model": llm.describe, "date": time.strftime("%Y-%m-%d"),
              "asked": said.asked, "confirmed": said.confirmed, "rejected": said.rejected, "unclear": said.unclear,
              "seconds": seconds, "concurrency": args.concurrency,
              "before": scored(before), "after": scored(after),
              "marked_confirmed": marked(True), "marked_rejected": marked(False)}
    from eval.report import save

    save(args.out, result, render)


def scored(c) -> dict:
    return {"aupr": c.aupr(), "p80": c.precision_at(0.8), "max_recall": float(np.nanmax(c.recalls))}


def render(r: dict) -> str:
    b, a = r["before"], r["after"]
    return f"""# What `rag review --verify` changes

{r['date']}: the first {r['contracts']} contracts of `{r['data']}` (none trained on), reviewed, then every quote
of at least the answer threshold put to **{r['model']}** ({r['concurrency']} at a time). CUAD's metric
(eval/cuad_metric.py) over those contracts; `python -m eval.review_verify --limit {r['contracts']}`.

| | AUPR | precision at 80% recall | recall at threshold 0 |
|---|---:|---:|---:|
| review | {b['aupr']:.3f} | {b['p80']:.3f} | {b['max_recall']:.3f} |
| review, verified | {a['aupr']:.3f} | {a['p80']:.3f} | {a['max_recall']:.3f} |
| DeBERTa-v2-xlarge (CUAD paper; its own test split) | {DEBERTA['aupr']:.3f} | {DEBERTA['p80']:.3f} | |

The model was asked {r['asked']} times in {r['seconds']:.0f} s: {r['confirmed']} confirmed, {r['rejected']} rejected,
{r['unclear']} neither. Of the quotes it confirmed, {r['marked_confirmed']:.0%} are passages CUAD marks; of those it
rejected, {r['marked_rejected']:.0%}.
"""


if __name__ == "__main__":
    main()
