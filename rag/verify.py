"""A language model confirms the contract review's quotes: `rag review --verify`.

Each quote at least ANSWERS probable (the ones a cell's answer can rest on) is put to the model with its clause
type's description: is this passage such a clause, yes or no? The questions go `concurrency` at a time, so a
server that batches (vLLM) answers them together. A quote the model rejects moves after the others and no longer
counts for its cell: the cell's probability becomes its best quote not rejected (0 when none is left), so a cell
found only on rejected quotes is no longer found. An answer that is neither yes nor no leaves the quote as it was.
Nothing is stored: the review in the knowledge base stays the model-free one.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from rag.backends import LLM
from rag.domain.cuad import BY_NAME
from rag.errors import ConfigError
from rag.prompts import neutralize
from rag.review import ANSWERS, Cell, short_answer

SYSTEM = "You check passages of contracts for a lawyer. Answer with one word: yes or no."
ANSWER_TOKENS = 3  # "yes", "no", and room for a full stop


@dataclass
class Verified:
    """What verification asked and what the model said."""

    model: str
    asked: int = 0
    confirmed: int = 0
    rejected: int = 0
    unclear: int = 0  # neither yes nor no: the quote stays as it was
    seconds: float = 0.0

    def said(self) -> str:
        return (f"{self.model} checked {self.asked} quotes in {self.seconds:.1f} s: {self.confirmed} confirmed, "
                f"{self.rejected} rejected, {self.unclear} unclear")


def usable(llm: LLM) -> LLM:
    """The model, when it is a server's; else ConfigError saying how to give one (--verify needs a real model)."""
    if getattr(llm, "fallback", ""):
        raise ConfigError(f"--verify needs the language model server, which does not answer: {llm.fallback}")
    if not llm.backend.needs_url:
        raise ConfigError("--verify asks a language model server to confirm each quote, and none is set: set "
                          "RAG_LLM_URL to one (vLLM: `vllm serve meta-llama/Llama-3.1-8B-Instruct`, then "
                          "RAG_LLM_URL=http://localhost:8000); the review itself needs none")
    return llm


def question(category: str, text: str) -> list[dict[str, str]]:
    """The chat that asks whether a passage is a clause of `category`."""
    described = BY_NAME[category].question if category in BY_NAME else category
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Clause type: {category}. {described}\n\nPassage:\n\"\"\"\n"
                                        f"{neutralize(text.strip())}\n\"\"\"\n\nIs this passage a {category} clause as "
                                        "described? Answer yes or no."}]


def reading(said: str) -> bool | None:
    """True for yes, False for no, None for anything else."""
    first = "".join(ch for ch in said.strip().split(maxsplit=1)[0].lower() if ch.isalpha()) if said.strip() else ""
    return {"yes": True, "no": False}.get(first)


def verify(reviews: dict[str, list[Cell]], llm: LLM, concurrency: int = 4,
           categories: set[str] | None = None) -> tuple[dict[str, list[Cell]], Verified]:
    """The reviews (document -> cells) with each checked quote marked `verified` and its cell re-weighed."""
    llm = usable(llm)
    asked = [(d, i, j) for d, cells in reviews.items() for i, cell in enumerate(cells)
             if categories is None or cell.category in categories
             for j, q in enumerate(cell.quotes) if q.probability >= ANSWERS]
    started = time.perf_counter()

    def ask(key) -> bool | None:
        d, i, j = key
        cell = reviews[d][i]
        return reading("".join(llm.stream(question(cell.category, cell.quotes[j].text), ANSWER_TOKENS)))

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        answers = dict(zip(asked, pool.map(ask, asked)))
    done = Verified(llm.model_name, len(asked), sum(a is True for a in answers.values()),
                    sum(a is False for a in answers.values()), sum(a is None for a in answers.values()),
                    time.perf_counter() - started)
    verified = {d: [reweighed(cell, {j: answers.get((d, i, j)) for j in range(len(cell.quotes))
                                     if (d, i, j) in answers})
                    for i, cell in enumerate(cells)] for d, cells in reviews.items()}
    return verified, done


def reweighed(cell: Cell, said: dict[int, bool | None]) -> Cell:
    """The cell with its quotes marked as the model said, those rejected last, its probability its best quote's
    that was not rejected."""
    if not said:
        return cell
    quotes = [replace(q, verified=said.get(j)) for j, q in enumerate(cell.quotes)]
    kept = [q for q in quotes if q.verified is not False]
    ordered = kept + [q for q in quotes if q.verified is False]
    return replace(cell, quotes=tuple(ordered), probability=kept[0].probability if kept else 0.0,
                   answer=short_answer(cell.category, kept[0].text) if kept else "")
