"""What a change that must not change any number (a refactor) is checked with: every output the reports rest on,
for a set of questions, written so that two runs compare line for line.

    python -m eval.fingerprint QUESTIONS --index I [--docs D] [--sample N] --out before.jsonl
    (change the code)
    python -m eval.fingerprint QUESTIONS --index I2 --docs D --sample N --out after.jsonl --against before.jsonl

Per question: the retrieved chunks and their scores; the packed sources (chunk ranges and Llama-3 tokens) at
4K and 16K and at the quote budget, scoped as the question is and unscoped; the quote answer (every ranked
quote's text, page and score, whether it abstained or was weak) and the clause model it recognised. With
`--docs`, the index is made first and its stored chunks (ids and texts) are part of the fingerprint too. Equal
files mean that every report made from these questions is unchanged, whatever it averages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from eval.harness import load_questions
from rag.backends.openai import RetrievalOnly
from rag.config import load_settings
from rag.engine import Engine

BUDGETS = (4096, 16384)


def packed(context) -> list:
    return [[s.file, s.first, s.last, s.tokens, round(s.score, 6)] for s in context.packed.sources]


def fingerprint(engine: Engine, question) -> dict:
    scoped = list(question.documents) or None
    quoting = engine.context(question.question, scoped, quoting=True)
    answer = engine.quote_answer(quoting)
    clause = engine.quoter.clause(question.question)
    return {
        "id": question.id,
        "hits": [[h.chunk_id, round(h.score, 6)] for h in quoting.hits],
        "quote_sources": packed(quoting),
        "budgets": {b: packed(engine.context(question.question, scoped, budget=b)) for b in BUDGETS},
        "unscoped": packed(engine.context(question.question, None, budget=BUDGETS[0])),
        "quotes": [[q.text, q.page, q.start, q.score] for q in answer.ranked],
        "answer": [answer.text, answer.abstained, answer.weak],
        "clause": clause.name if clause is not None else None,
    }


def stored(engine: Engine) -> str:
    """A digest of every stored chunk: its id and its text, in id order."""
    got = engine.retriever.kb.store.collection.get(include=["documents"])
    digest = hashlib.sha256()
    for chunk_id, text in sorted(zip(got["ids"], got["documents"])):
        digest.update(f"{chunk_id}\0{text}\0".encode())
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--docs", type=Path, help="ingest this folder into the index first")
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--against", type=Path, help="an earlier fingerprint: say where this one differs")
    args = parser.parse_args()
    settings = load_settings({"index_dir": args.index})
    if args.docs:
        from rag.indexer import ingest

        ingest(args.docs, settings)
    engine = Engine(settings, llm=RetrievalOnly())
    try:
        lines = [json.dumps({"stored": stored(engine)})] if args.docs else []
        for q in load_questions(args.questions, sample=args.sample, seed=0):
            lines.append(json.dumps(fingerprint(engine, q), sort_keys=True))
    finally:
        engine.close()
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} lines in {args.out}")
    if not args.against:
        return 0
    before = args.against.read_text(encoding="utf-8").splitlines()
    differing = [(a, b) for a, b in zip(before, lines) if a != b]
    for a, b in differing[:5]:
        print(f"- {a[:600]}\n+ {b[:600]}\n")
    same = not differing and len(before) == len(lines)
    print("the same, line for line" if same else f"{len(differing)} of {len(lines)} lines differ "
          f"({len(before)} before)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
