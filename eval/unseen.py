"""Seen vs never-seen contracts: the same eval results, split by whether a question's documents were used
in development (the shipped sample corpus, whose questions set the CI floors) or not.

    python -m eval.unseen RESULTS_DIR [--seen data/contracts]

Writes RESULTS_DIR/unseen.md and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval.report import _budget, _cell, aggregate


def split(rows: list[dict], seen: set[str]) -> dict[tuple, dict[str, list[dict]]]:
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for row in rows:
        part = "seen" if row["documents"] and set(row["documents"]) <= seen else "unseen"
        groups.setdefault((row["pipeline"], row["ordering"], row["budget"]), {"seen": [], "unseen": []})[part].append(row)
    return groups


def render(groups: dict[tuple, dict[str, list[dict]]], seen_folder: Path) -> str:
    lines = ["# Seen vs never-seen contracts", "",
             f"Seen: questions about the {len(list(seen_folder.glob('*.pdf')))} contracts in `{seen_folder}` (used in "
             "development and for the CI floors). Never seen: all other questions. Brackets: 95% bootstrap intervals.",
             "", "| pipeline | ordering | budget | questions seen / unseen | evidence recall, seen | evidence recall, "
             "never seen | MRR, seen | MRR, never seen |", "|---|---|---|---|---|---|---|---|"]
    for (pipeline, ordering, budget), parts in sorted(groups.items(), key=lambda kv: (kv[0][0] != "ours", kv[0])):
        a, b = aggregate(parts["seen"]), aggregate(parts["unseen"])
        lines.append(f"| {pipeline} | {ordering} | {_budget(budget)} | {a['n']} / {b['n']} | "
                     f"{_cell(a.get('evidence_recall'))} | {_cell(b.get('evidence_recall'))} | {_cell(a.get('mrr'))} | "
                     f"{_cell(b.get('mrr'))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--seen", type=Path, default=Path("data/contracts"))
    args = parser.parse_args()
    seen = {p.name for p in args.seen.glob("*") if p.is_file()}
    with (args.results / "results.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    text = render(split(rows, seen), args.seen)
    (args.results / "unseen.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
