"""A question set asked in a person's words: each question of a CUAD-format set with its clause type's question
replaced by one of eval/plain_phrasings.json's wordings of it, the rest (contract, gold clauses) kept.

    python -m eval.plain_cuad ../shared/data/cuad-dev/questions.jsonl --out plain.jsonl [--half check] \
        [--only ids.jsonl]

`--half check` (default) uses phrasings 3-4 of each type, which no recognition rule was chosen on (the contract's
name picks which of the two, so every type is asked both ways across contracts); `tune`, phrasings 1-2. `--only`:
keep the questions whose ids are in that question file (a held-out fold). Then `rag eval plain.jsonl --answer
quote ...` measures quote answers and retrieval as a person asks, beside the same run on CUAD's wording.
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

PHRASINGS = Path(__file__).with_name("plain_phrasings.json")
HALVES = {"tune": (0, 1), "check": (2, 3)}


def reworded(question: dict, phrasings: dict, half: str) -> dict:
    wordings = phrasings[question["category"]]
    pick = HALVES[half][zlib.crc32(question["documents"][0].encode()) % 2]
    return {**question, "question": wordings[pick], "cuad_question": question["question"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--half", choices=tuple(HALVES), default="check")
    parser.add_argument("--only", type=Path, help="keep only the questions (by id) of this question file")
    args = parser.parse_args(argv)
    phrasings = json.loads(PHRASINGS.read_text(encoding="utf-8"))
    keep = {json.loads(line)["id"] for line in args.only.read_text().splitlines() if line.strip()} if args.only \
        else None
    lines = []
    for line in args.questions.read_text(encoding="utf-8").splitlines():
        if line.strip() and (question := json.loads(line))["category"] in phrasings:
            if keep is None or question["id"] in keep:
                lines.append(json.dumps(reworded(question, phrasings, args.half), ensure_ascii=False))
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} questions -> {args.out}")


if __name__ == "__main__":
    main()
