"""Fitting the clause models (rag.domain.clause_models) from questions whose clauses lawyers marked.

The input is, per question asked of a document, the sentences a quote answer chose from (`texts`), which of
them match a gold clause (`match`), the gold clauses themselves (`evidence`), the document (`doc`) and the
clause type (`category`); and every text's unit vector (`vectors`, float32). eval.calibrate_quotes gathers
these from a question set and measures the models held out by contract (eval/reports/cuad-dev-quotes/).

Per question asked of enough documents: a logistic regression (scikit-learn) of the sentence vectors, its
matching sentences and its gold clauses against the rest of the sentences ranked (of every document, those that
hold no such clause included); and the few words its clauses use that the other sentences rarely do, for a
keyword search (rag.retrieval).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import numpy as np

from rag.domain.clause_models import ClauseModels
from rag.text import STOPWORDS

MIN_POSITIVES = 3  # matching sentences a question needs for a clause model
EVIDENCE_WORDS = 4  # the gold clauses themselves (of this many words or more) are positives too: +1 point top-1
REGULARIZATION = 1.0  # scikit-learn's C: 0.3 and 3 measured within a point of it
KEYWORDS = 8  # words per clause model for its keyword search (rag.retrieval)


def matrix(texts: list[str], vectors: dict[str, np.ndarray]) -> np.ndarray:
    """The texts' vectors, one row each (float32)."""
    return np.stack([vectors[t] for t in texts]).astype(np.float32)


def train(rows: list[dict], vectors: dict[str, np.ndarray], embedding: str = "") -> ClauseModels:
    """A logistic regression per question asked of enough documents: its matching sentences and its gold clauses
    against the rest of the sentences ranked. `embedding`: the model the vectors were made with."""
    from sklearn.linear_model import LogisticRegression

    by_question: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["texts"]:
            by_question[r["question"]].append(r)
    asked, names, weights, bias, documents, words = [], [], [], [], [], []
    for question, members in sorted(by_question.items()):
        gold = [e for r in members for e in r.get("evidence", ()) if len(e.split()) >= EVIDENCE_WORDS]
        x = np.concatenate([matrix(r["texts"], vectors) for r in members] + ([matrix(gold, vectors)] if gold else []))
        y = np.concatenate([np.array(r["match"] or [False] * len(r["texts"]), dtype=bool) for r in members]
                           + [np.ones(len(gold), dtype=bool)])
        if y.sum() < MIN_POSITIVES:
            continue
        model = LogisticRegression(C=REGULARIZATION, class_weight="balanced", max_iter=2000).fit(x, y)
        weights.append(model.coef_[0])
        bias.append(model.intercept_[0])
        asked.append(question)
        names.append(members[0].get("category") or "")
        documents.append(len({r["doc"] for r in members if any(r["match"])}))
        words.append(" ".join(keywords(members)))
    dims = len(next(iter(vectors.values())))
    # float32, as they are saved and answering loads them: calibration then scores exactly as answering does
    return ClauseModels(tuple(asked), tuple(names), np.array(weights, dtype=np.float32).reshape(-1, dims),
                        np.array(bias, dtype=np.float32), embedding, np.array(documents), tuple(words))


def keywords(members: list[dict]) -> list[str]:
    """The KEYWORDS words that most set a question's gold clauses apart from the other sentences its quote pools
    hold: by the share of documents whose clauses use the word (2 at least) times the log of how much likelier
    it is there than in those sentences."""
    def words(text: str) -> set[str]:
        return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in STOPWORDS}

    clauses = [set().union(*map(words, r["evidence"])) for r in members if r.get("evidence")]
    others = [words(t) for r in members for t, hit in zip(r["texts"], r["match"] or [False] * len(r["texts"]))
              if not hit]
    used, seen = Counter(w for c in clauses for w in c), Counter(w for o in others for w in o)
    share = {w: n / len(clauses) for w, n in used.items() if n >= 2}
    score = {w: s * math.log(s / ((seen[w] + 1) / (len(others) + 1))) for w, s in share.items()}
    return sorted(score, key=lambda w: (-score[w], w))[:KEYWORDS]


def scored_by(models: ClauseModels, rows: list[dict], vectors: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    """Each question's clause-model scores of its sentences (float32, as rag.domain.clause_models.Clause.score
    makes them), by the model of that very question, or None when it has none."""
    index = {q: i for i, q in enumerate(models.questions)}
    return [(matrix(r["texts"], vectors) @ models.weights[index[r["question"]]] + models.bias[index[r["question"]]])
            if r["question"] in index and r["texts"] else None for r in rows]
