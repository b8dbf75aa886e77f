"""The contract review measured with CUAD's own metric (eval.cuad_metric) on a folder of contracts it was not
trained on, with the reliability of its probabilities and its seconds per contract.

    python -m eval.review_cuad [--data ../shared/data/cuad-dev] [--out eval/reports/cuad-review]

Each contract is read as ingest reads it (rag.reading.filetypes), reviewed (rag.review.review: at most 5 quotes
a cell), and every quote of every cell is a prediction at its probability.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from eval.cuad_metric import curve
from rag.domain.cuad import CATEGORIES, matches
from rag.domain.review_model import BUNDLED, ReviewModel
from rag.reading.filetypes import load_pages
from rag.review import QUOTES, review

DEBERTA = {"aupr": 0.478, "p80": 0.440, "p90": 0.178}  # DeBERTa-v2-xlarge on CUAD (CUAD paper, Table 2)
BINS = np.linspace(0, 1, 11)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cuad-dev"))
    parser.add_argument("--model", type=Path, default=BUNDLED)
    parser.add_argument("--out", type=Path, default=Path("eval/reports/cuad-review"))
    args = parser.parse_args(argv)
    model = ReviewModel.load(args.model)
    questions = [json.loads(line) for line in open(args.data / "questions.jsonl", encoding="utf-8")]
    gold = {q["id"]: [e for e in q.get("evidence") or () if e.strip()] for q in questions}
    asked = {(q["documents"][0], q["category"]): q["id"] for q in questions}
    category = {q["id"]: q["category"] for q in questions}
    predicted, cells, reading, reviewing = {}, [], 0.0, 0.0
    for name in sorted({d for d, _ in asked}):
        path = args.data / "docs" / name
        t = time.perf_counter()
        pages = list(load_pages(path, path.read_bytes()).pages)
        t2 = time.perf_counter()
        for cell in review(pages, model):
            qid = asked.get((name, cell.category))
            if qid is None:
                continue
            predicted[qid] = [(q.text, q.probability) for q in cell.quotes]
            cells.append((qid, cell))
        reading, reviewing = reading + t2 - t, reviewing + time.perf_counter() - t2
    contracts = len({d for d, _ in asked})
    overall = curve(gold, predicted)
    rows = [("all", sum(map(len, gold.values())), overall)] + [
        (c.name, sum(len(gold[q]) for q in gold if category[q] == c.name),
         curve(gold, predicted, only=lambda q, c=c: category[q] == c.name)) for c in CATEGORIES]
    quote_bins, cell_bins = reliability_quotes(cells, gold), reliability_cells(cells, gold)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"data": str(args.data), "model": str(args.model), "contracts": contracts, "quotes_per_cell": QUOTES,
              "seconds_per_contract": {"read": reading / contracts, "review": reviewing / contracts},
              "categories": {name: {"spans": n, "aupr": cv.aupr(), "p80": cv.precision_at(0.8),
                                    "p90": cv.precision_at(0.9), "max_recall": float(np.nanmax(cv.recalls))}
                             for name, n, cv in rows},
              "reliability": {"quotes": quote_bins, "cells": cell_bins}}
    (args.out / "review.json").write_text(json.dumps(result, indent=1))
    (args.out / "report.md").write_text(report(result))
    print(report(result))


def reliability_quotes(cells, gold) -> list[dict]:
    """Quotes by probability (tenths): how many, and the share CUAD counts as finding a marked passage."""
    hits = defaultdict(list)
    for qid, cell in cells:
        for q in cell.quotes:
            found = any(matches(g, q.text, "Parties" in qid) for g in gold[qid])
            hits[min(int(q.probability * 10), 9)].append(found)
    return [{"bin": f"{b / 10:.1f}-{(b + 1) / 10:.1f}", "n": len(hits[b]), "found": float(np.mean(hits[b]))}
            for b in range(10) if hits[b]]


def reliability_cells(cells, gold) -> list[dict]:
    """Cells by probability (tenths): how many, and the share whose contract holds the clause (marked by CUAD)."""
    held = defaultdict(list)
    for qid, cell in cells:
        held[min(int(cell.probability * 10), 9)].append(bool(gold[qid]))
    return [{"bin": f"{b / 10:.1f}-{(b + 1) / 10:.1f}", "n": len(held[b]), "holds": float(np.mean(held[b]))}
            for b in range(10) if held[b]]


def report(r: dict) -> str:
    a = r["categories"]["all"]
    lines = [
        "# Contract review on CUAD's metric", "",
        f"{r['contracts']} contracts of `{r['data']}` (PDFs, read as ingest reads them), none of them trained on; "
        f"model `{r['model']}` (fitted on cuad-train's 348 contracts by `python -m rag.domain.review_training`). "
        f"At most {r['quotes_per_cell']} quotes a cell, each a prediction at its probability; metric: CUAD's "
        "evaluate.py (eval/cuad_metric.py).", "",
        "| | AUPR | precision at 80% recall | precision at 90% recall | recall at threshold 0 |",
        "|---|---:|---:|---:|---:|",
        f"| **this review (2 CPU cores, no GPU)** | **{a['aupr']:.3f}** | **{a['p80']:.3f}** | **{a['p90']:.3f}** | "
        f"{a['max_recall']:.3f} |",
        f"| DeBERTa-v2-xlarge, CUAD paper Table 2 (GPU; its own test split) | {DEBERTA['aupr']:.3f} | "
        f"{DEBERTA['p80']:.3f} | {DEBERTA['p90']:.3f} | |", "",
        f"Seconds per contract (2 CPU cores): reading the PDF {r['seconds_per_contract']['read']:.2f}, reviewing "
        f"it {r['seconds_per_contract']['review']:.2f}.", "",
        "A precision at a recall the quotes never reach is 0, as evaluate.py counts it.", "",
        "## Reliability of the probabilities", "",
        "Quotes (what the metric counts): of the quotes given a probability in each tenth, the share that CUAD "
        "counts as finding a marked passage.", "", "| probability | quotes | found |", "|---|---:|---:|"]
    lines += [f"| {b['bin']} | {b['n']} | {b['found']:.2f} |" for b in r["reliability"]["quotes"]]
    lines += ["", "Cells (what `found` says): of the cells whose best quote has a probability in each tenth, the "
              "share whose contract holds the clause.", "", "| probability | cells | hold the clause |",
              "|---|---:|---:|"]
    lines += [f"| {b['bin']} | {b['n']} | {b['holds']:.2f} |" for b in r["reliability"]["cells"]]
    lines += ["", "## Per clause type", "", "| clause type | marked passages | AUPR | P@80%R | P@90%R | recall at 0 |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {c['spans']} | {c['aupr']:.3f} | {c['p80']:.3f} | {c['p90']:.3f} | {c['max_recall']:.2f} |"
              for name, c in r["categories"].items() if name != "all"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
