"""The threshold under which a quote answer taken from the contract review says the documents do not say
(rag.review.ANSWERS), fitted on half of a question set's contracts and measured on the other half.

    python -m eval.review_answers [--data ../shared/data/cuad-dev] [--out eval/reports/cuad-dev-quotes/review-answers]

Each contract is read as ingest reads it and reviewed (rag.review.review). A question asks its contract for its
clause type: the answer is the cell's quotes of at least the threshold's probability, best first, or an
abstention when the cell's best is under it. Top-1 and top-3: an answerable question whose first (first three)
such quotes match a gold clause (eval.metrics.quote_matches, as `rag eval` counts quote answers; an abstention is
a miss); abstention: the unanswerable questions abstained on. The threshold: the lowest probability (in steps of
0.01) at which the fitting half abstains on TARGET of its unanswerable questions; the contracts are halved as
eval.calibrate_quotes halves them. `rag eval` of the held-out folds measures the whole answer path (the question's
clause type recognised, the review read from the index); this fits the one constant.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from eval.metrics import quote_matches
from rag.domain.review_model import ReviewModel
from rag.reading.filetypes import load_pages
from rag.review import ANSWERS, review

TARGET = 0.80  # the issue asks 0.75 of unseen contracts; fitted to 0.80, as calibrate_quotes keeps 0.05 in hand
GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


def rows(data: Path) -> list[dict]:
    """Per question: its contract, answerable, its cell's quote probabilities and whether each matches gold."""
    questions = [json.loads(line) for line in open(data / "questions.jsonl", encoding="utf-8") if line.strip()]
    model, cells = ReviewModel.load(), {}
    for name in sorted({q["documents"][0] for q in questions}):
        path = data / "docs" / name
        for cell in review(list(load_pages(path, path.read_bytes()).pages), model):
            cells[name, cell.category] = cell
    found = []
    for q in questions:
        cell = cells[q["documents"][0], q["category"]]
        evidence = [e for e in q.get("evidence") or () if e.strip()] if q["answerable"] else []
        found.append({"doc": q["documents"][0], "category": q["category"], "answerable": q["answerable"],
                      "p": [c.probability for c in cell.quotes],
                      "match": [quote_matches(c.text, evidence) for c in cell.quotes] if evidence else []})
    return found


def measure(rows: list[dict], threshold: float) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def top(r, k):
        return any(m for m, p in zip(r["match"][:k], r["p"][:k]) if p >= threshold)
    return {"threshold": float(threshold), "top1": float(np.mean([top(r, 1) for r in answerable])),
            "top3": float(np.mean([top(r, 3) for r in answerable])),
            "abstention": float(np.mean([not r["p"] or r["p"][0] < threshold for r in unanswerable])),
            "questions": len(rows), "answerable": len(answerable)}


def fitted(rows: list[dict]) -> float:
    return float(next((t for t in GRID if measure(rows, t)["abstention"] >= TARGET), GRID[-1]))


def halves(rows: list[dict], seed: int = 0) -> list[set[str]]:
    """The contracts in two halves, as eval.calibrate_quotes.split makes them."""
    documents = sorted({r["doc"] for r in rows})
    random.Random(seed).shuffle(documents)
    return [set(documents[::2]), set(documents[1::2])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cuad-dev"))
    parser.add_argument("--out", type=Path, default=Path("eval/reports/cuad-dev-quotes/review-answers"))
    args = parser.parse_args(argv)
    found = rows(args.data)
    held_out = []
    parts = halves(found)
    for a, b in ((0, 1), (1, 0)):
        threshold = fitted([r for r in found if r["doc"] in parts[a]])
        checked = measure([r for r in found if r["doc"] in parts[b]], threshold)
        held_out.append({"fitted_on": f"half {a + 1}", **checked})
    result = {"data": str(args.data), "target": TARGET, "held_out": held_out, "all": fitted(found), "shipped": ANSWERS,
              "curve": [measure(found, t) for t in (0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)]}
    from eval.report import save

    save(args.out, result, render)


def render(r: dict) -> str:
    held = "\n".join(f"| {h['fitted_on']} | the other half | {h['threshold']:.2f} | {h['top1']:.3f} | "
                     f"{h['top3']:.3f} | {h['abstention']:.3f} | {h['questions']} ({h['answerable']} answerable) |"
                     for h in r["held_out"])
    curve = "\n".join(f"| {c['threshold']:.2f} | {c['top1']:.3f} | {c['top3']:.3f} | {c['abstention']:.3f} |"
                      for c in r["curve"])
    return f"""# Quote answers from the contract review: the abstention threshold

`python -m eval.review_answers --data {r['data']}`. The review model never saw these contracts (it is fitted on
cuad-train). The threshold is the lowest probability at which the fitting half abstains on {r['target']:.0%} of its
unanswerable questions; it is measured on the other half.

| threshold fitted on | measured on | threshold | top-1 | top-3 | abstention | questions |
|---|---|---:|---:|---:|---:|---:|
{held}

Fitted on all: {r['all']:.2f}; shipped (rag.review.ANSWERS): {r['shipped']:.2f}.

Every question of the set at other thresholds (the trade-off):

| threshold | top-1 | top-3 | abstention |
|---:|---:|---:|---:|
{curve}
"""


if __name__ == "__main__":
    main()
