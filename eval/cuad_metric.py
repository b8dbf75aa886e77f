"""CUAD's own metric, computed as its evaluate.py computes it (TheAtticusProject/cuad, CC BY 4.0).

Per question (a contract x a clause type): the predictions whose probability is over a threshold are compared
with the passages lawyers marked. A marked passage is found (a true positive) when some prediction matches it
(rag.domain.cuad.matches: word overlap of half or more; for "Parties" questions, also the passage inside the
prediction), else missed; a prediction that matches no marked passage is a false positive, and so is every
prediction for a question with none. Summed over all questions at each threshold 0.99, 0.98, ..., 0.01, 0.001, 0:
precision and recall. Precisions are then made non-increasing with recall (the best precision at this recall or
more); AUPR is the area under that curve from (recall 0, precision 1), and precision at 80% (90%) recall the first
point that reaches it. Predictions with the same text count once, with the probability given last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rag.domain.cuad import matches

THRESHOLDS = [*np.arange(0.99, 0, -0.01), 0.001, 0]


@dataclass(frozen=True)
class Curve:
    precisions: list[float]  # from (recall 0, precision 1), then per threshold, highest threshold first
    recalls: list[float]
    thresholds: list[float]

    def best_precisions(self) -> list[float]:
        """Each precision raised to the best at the same or a higher recall (later in the lists)."""
        best = self.precisions[::-1]
        for i in range(1, len(best)):
            best[i] = max(best[i - 1], best[i])  # as evaluate.py: builtin max, so a nan is passed over
        return best[::-1]

    def precision_at(self, recall: float) -> float:
        """The best precision at the first threshold whose recall reaches `recall`; 0 if none does."""
        for p, r in zip(self.best_precisions(), self.recalls):
            if r >= recall:
                return p
        return 0.0

    def aupr(self) -> float:
        from sklearn.metrics import auc

        area = auc(self.recalls, self.best_precisions())
        return 0.0 if math.isnan(area) else float(area)


def curve(gold: dict[str, list[str]], predicted: dict[str, list[tuple[str, float]]], only=None) -> Curve:
    """`gold`: question id -> marked passages ([] when none); `predicted`: question id -> (text, probability);
    `only`: a predicate on question ids to count (a category's)."""
    found = {}  # question id -> [(probability, indices of the marked passages it matches)]
    for qid, passages in gold.items():
        if only and not only(qid):
            continue
        last = {text: p for text, p in predicted.get(qid, ()) if text != ""}
        found[qid] = [(p, {i for i, g in enumerate(passages) if matches(g, text, "Parties" in qid)})
                      for text, p in last.items()]
    precisions, recalls = [1.0], [0.0]
    for t in THRESHOLDS:
        tp = fp = fn = 0
        for qid, preds in found.items():
            over = [hit for p, hit in preds if p > t]
            fp += sum(1 for hit in over if not hit)
            hits = set().union(*over) if over else set()
            tp += len(hits)
            fn += len(gold[qid]) - len(hits)
        precisions.append(tp / (tp + fp) if tp + fp else math.nan)
        recalls.append(tp / (tp + fn) if tp + fn else math.nan)
    return Curve(precisions, recalls, list(THRESHOLDS))
