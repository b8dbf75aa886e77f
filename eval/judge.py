"""Optional LLM-as-judge: a model on an OpenAI-compatible server says whether an answer agrees with the gold one.

Labelled as such in the report and never the only number: a judge is a model with its own errors.
"""

from __future__ import annotations

import dataclasses

from rag.config import Settings
from rag.backends import recognise

PROMPT = """You grade answers about a contract. Question: {question}
Correct answer: {gold}
Candidate answer: {answer}
Does the candidate answer agree with the correct answer? Reply with one word: yes or no."""


class Judge:
    def __init__(self, settings: Settings, url: str, model: str = ""):
        # its prompts are a few hundred tokens: a server that does not say its window is asked within 4K
        judged = dataclasses.replace(settings, llm_url=url, llm_model=model or settings.llm_model,
                                     llm_context_window=settings.llm_context_window or 4096)
        self.llm = recognise(url, settings.llm_timeout).open(judged)
        self.describe = self.llm.describe

    def score(self, question, answer: str) -> float | None:
        """1.0 (agrees), 0.0 (does not), or None when the judge's reply is neither yes nor no."""
        prompt = PROMPT.format(question=question.question, gold=" / ".join(question.answers), answer=answer or "(none)")
        reply = "".join(self.llm.stream([{"role": "user", "content": prompt}], 4)).strip().lower()
        word = reply.split()[0].strip(".,!*\"'") if reply else ""
        return {"yes": 1.0, "no": 0.0}.get(word)
