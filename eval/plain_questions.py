"""Clause questions in a person's words: how often each is recognised as the clause type it asks for.

    python -m eval.plain_questions --out eval/reports/plain_phrasings

Reads eval/plain_phrasings.json (CUAD's 41 clause types, four phrasings each as lawyers and managers ask, and
questions about no clause type). Phrasings 1-2 of each type tuned the clause models' recognition (AGREEING);
3-4 only check it: the report gives both halves, and the negatives (a recognised negative is a false alarm).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from eval.report import save
from rag.domain.clause_models import Clauses
from rag.config import load_settings
from rag.embeddings import Embedder

PHRASINGS = Path(__file__).with_name("plain_phrasings.json")
TUNE = (0, 1)  # the phrasings of each type that choices were made on


def recognise(phrasings: dict, clauses: Clauses, embed) -> list[dict]:
    """One row per question: its type (None for a negative), its half, what it was recognised as."""
    rows = [{"question": q, "category": category, "half": "tune" if i in TUNE else "check"}
            for category, questions in phrasings.items() if not category.startswith("_")
            for i, q in enumerate(questions)]
    rows += [{"question": q, "category": None, "half": "negative"} for q in phrasings["_negatives"]]
    vectors = np.asarray(embed([r["question"] for r in rows]), dtype=np.float32)
    for row, vector in zip(rows, vectors):
        found = clauses.find(row["question"], vector)
        row["recognised"] = found.name if found else None
    return rows


def summary(rows: list[dict]) -> dict:
    out = {}
    for half in ("tune", "check", "negative"):
        part = [r for r in rows if r["half"] == half]
        right = sum(r["recognised"] is not None and r["recognised"] == r["category"] for r in part)
        wrong = sum(r["recognised"] is not None and r["recognised"] != r["category"] for r in part)
        out[half] = {"questions": len(part), "right": right, "wrong": wrong, "not recognised": len(part) - right - wrong}
    return out


def markdown(result: dict) -> str:
    rows, totals = result["rows"], result["summary"]
    lines = ["# Clause questions in a person's words", "",
             "Which of CUAD's 41 clause types a question asks for, as rag.domain.clause_models recognises it "
             "(eval/plain_phrasings.json; `python -m eval.plain_questions --out eval/reports/plain_phrasings`). `tune`: the phrasings the "
             "recognition rule was chosen on; `check`: the others, seen only here; `negative`: questions about no "
             "clause type (recognising one is a false alarm).", "",
             "| half | questions | right type | another type | not recognised |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {half} | {t['questions']} | {t['right']} | {t['wrong']} | {t['not recognised']} |"
              for half, t in totals.items()]
    lines += ["", "## Every question", "", "| half | asks for | recognised as | question |", "|---|---|---|---|"]
    lines += [f"| {r['half']} | {r['category'] or '(none)'} | {r['recognised'] or '-'} | {r['question']} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="OUT.md and OUT.json")
    args = parser.parse_args(argv)
    settings = load_settings()
    embedder = Embedder(settings, asking=True)
    clauses = Clauses.open(settings.clause_models, embedder.model_id, embedder.embed)
    rows = recognise(json.loads(PHRASINGS.read_text()), clauses, embedder.embed)
    save(args.out, {"summary": summary(rows), "rows": rows}, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
