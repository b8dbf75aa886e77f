"""Clause models: what a sentence of a contract is about, learned from clauses lawyers marked.

The questions a legal team asks of every contract (CUAD's 41: governing law, exclusivity, caps on
liability ...) each have a linear model over the embedding model's sentence vectors, trained on cuad-dev's
contracts: the clauses lawyers marked for the question and the sentences that match them, against all the
other sentences ranked (rag.domain.clause_training fits them, called by eval.calibrate_quotes, which measures
them held out by contract: eval/reports/cuad-dev-quotes/).
A quote answer to such a question, or to one that names the clause, adds the model's score to each
sentence's; a question about named documents also has their chunks ranked by it, and searched for the words
its clauses use that other sentences rarely do ("favorable" for Most Favored Nation: rag.retrieval).

The models are a few numbers per question (41 x 385 floats), meaningful only for the embedding model they
were trained with: for another, none applies and quote answers rank as without them. CUAD is CC BY 4.0
(The Atticus Project); no text of it is kept here, only the questions and the fitted weights.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.errors import ConfigError
from rag.text import letters, stems

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).with_name("clause_models.npz")
# A question this like (cosine) to a trained one is asked as that one. Paraphrases score 0.4-0.8 with MiniLM
# ("Is there an exclusivity clause?" is nearest to "Competitive Restriction Exception", at 0.39), and so
# do unrelated questions of the same shape: a question in other words is matched by the clause's name.
SAME_QUESTION = 0.85
# A model learned from fewer documents' clauses ranks sentences among others, but does not fetch chunks for
# retrieval: with 3-5 examples it fetched the wrong ones (held out on cuad-dev: Most Favored Nation 0.57 -> 0.43).
RETRIEVAL_DOCUMENTS = 8
NAME_LETTERS = 10  # a name matches inside a question when it is 2+ words or this long ("exclusivity", not "parties")
# A question in a person's words ("What law applies to this contract?", 0.73 like Governing Law's) is asked as
# the trained question nearest it when it is at least this like it and that question's own clause model scores
# it above every other model. Chosen on half of eval/plain_phrasings.json (lawyers' and managers' wordings),
# measured on the other half: 28 of 82 recognised (7 before), 7 as a neighbouring clause, none of 16 questions
# about no clause type (eval/reports/plain_phrasings.md).
AGREEING = 0.5


@dataclass(frozen=True)
class ClauseModels:
    questions: tuple[str, ...]
    names: tuple[str, ...]  # the clause each question asks for ("Governing Law", "Rofr/Rofo/Rofn")
    weights: np.ndarray  # (questions, dimensions)
    bias: np.ndarray  # (questions,)
    embedding: str  # the embedding model they were trained with
    documents: np.ndarray  # (questions,): how many documents held a clause each was trained on
    keywords: tuple[str, ...] = ()  # per question: words its clauses use and other sentences rarely do

    def save(self, path: Path) -> None:
        np.savez_compressed(path, questions=np.array(self.questions), names=np.array(self.names),
                            weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32),
                            embedding=np.array(self.embedding), documents=self.documents.astype(np.int32),
                            keywords=np.array(self.keywords or ("",) * len(self.questions)))

    @classmethod
    def load(cls, path: Path) -> ClauseModels:
        with np.load(path) as f:
            n = len(f["questions"])
            keywords = tuple(str(k) for k in f["keywords"]) if "keywords" in f.files else ("",) * n  # older files
            models = cls(tuple(str(q) for q in f["questions"]), tuple(str(n) for n in f["names"]), f["weights"],
                         f["bias"], str(f["embedding"]), f["documents"], keywords)
        if models.weights.ndim != 2 or not n == len(models.names) == len(models.weights) == len(models.bias) == len(
                models.documents) == len(models.keywords):
            raise ValueError(f"{n} questions but {models.weights.shape} weights, {len(models.bias)} biases")
        return models


@dataclass(frozen=True)
class Clause:
    """The model of one trained question."""

    name: str
    weights: np.ndarray
    bias: float
    keywords: str
    documents: int

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """Sentence (or chunk) vectors -> how much each reads as this clause."""
        return vectors @ self.weights + self.bias

    @property
    def retrieving(self) -> bool:
        """Whether it ranks chunks for retrieval: only a model learned from RETRIEVAL_DOCUMENTS or more."""
        return self.documents >= RETRIEVAL_DOCUMENTS


class Clauses:
    """The models that apply to an embedding model (`embed`: texts -> unit vectors), with their questions'
    vectors made once."""

    def __init__(self, models: ClauseModels | None, embed: Callable[[Sequence[str]], np.ndarray]):
        self.models, self.embed = models, embed
        self._questions: np.ndarray | None = None
        self._lock = threading.Lock()  # made once, whichever thread asks first

    @classmethod
    def open(cls, path: str, embedding: str, embed: Callable[[Sequence[str]], np.ndarray]) -> Clauses:
        """`path`: a file of models, "" for the bundled ones, "none" for none."""
        if path == "none":
            return cls(None, embed)
        try:
            models = ClauseModels.load(Path(path) if path else BUNDLED)
        except (OSError, KeyError, ValueError) as e:
            raise ConfigError(f"clause_models {path or str(BUNDLED)!r} could not be read ({e}): give a file made by "
                              "`python -m eval.calibrate_quotes`, or set RAG_CLAUSE_MODELS=none") from e
        if models.embedding != embedding:
            log.info("clause models trained with %s do not apply to %s", models.embedding, embedding)
            return cls(None, embed)
        return cls(models, embed)

    def questions(self) -> np.ndarray:
        """The trained questions' vectors, made on first use (not at start-up: that would load the model)."""
        with self._lock:
            if self._questions is None:
                vectors = np.asarray(self.embed(self.models.questions), dtype=np.float32)
                if vectors.shape[1] != self.models.weights.shape[1]:
                    raise ConfigError(f"the clause models weigh {self.models.weights.shape[1]} dimensions and the "
                                      f"embedding model makes {vectors.shape[1]}: refit them with `python -m "
                                      "eval.calibrate_quotes`, or set RAG_CLAUSE_MODELS=none")
                self._questions = vectors
            return self._questions

    def find(self, question: str, vector: np.ndarray) -> Clause | None:
        """The model of the trained question that `question` (its unit `vector`) asks, or None when it asks none
        of them. Asked: the trained question nearest, if at least SAME_QUESTION alike; else the clause whose
        name it holds (the longest, "Non-Compete" in "is there a noncompete?"); else the nearest trained question if
        AGREEING alike and its own model scores the question highest."""
        if self.models is None:
            return None
        m = self.models
        likeness = self.questions() @ vector
        i = int(likeness.argmax())
        if likeness[i] < SAME_QUESTION:
            named = [(len(words), j) for j, name in enumerate(m.names) for words in _named(name, question)]
            if named:
                i = max(named)[1]
            elif likeness[i] < AGREEING or int((m.weights @ vector + m.bias).argmax()) != i:
                return None
        return Clause(m.names[i], m.weights[i], float(m.bias[i]), m.keywords[i] if m.keywords else "",
                      int(m.documents[i]))


def _named(name: str, question: str) -> list[set[str]]:
    """The ways the question names the clause ("Governing Law" in "which law governs?", "Non-Compete" in "is
    there a noncompete?"): each of the name's forms ("Rofr/Rofo/Rofn") whose words are all in the question, or
    that it spells; a one-word name only if it is NAME_LETTERS long ("parties" is in too many questions)."""
    found = []
    for form in name.split("/"):
        words, spelled = stems(form), letters(form)
        if not words or (len(words) < 2 and len(spelled) < NAME_LETTERS):
            continue
        if words <= stems(question) or spelled in letters(question):
            found.append(words)
    return found

