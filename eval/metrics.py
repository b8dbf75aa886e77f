"""Metric functions of the eval harness: pure, each defined here and, in words, in METRIC_DEFINITIONS.

Evidence is compared as CUAD's gold text and pypdf's text of the PDF differ: only in case, whitespace
and punctuation. Both are reduced to their lowercase letters and digits (`letters`), and a gold piece
counts as inside a text by 60-character windows: the piece is cut into consecutive windows (the last
one ends at the piece's end), and each of its characters is covered when a window holding it is found.
A piece of 60 characters or fewer is one window.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable, Sequence

from rag.text import WORD, letters

WINDOW = 60
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")  # what parts a quote's words (rag.text.WORD, but keeping the empty ends)
_CITATION = re.compile(r"\[\d{1,3}\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation + "“”‘’")

METRIC_DEFINITIONS = {
    "evidence_recall": "Share of the gold evidence's characters (letters and digits only, lowercased) inside the "
                       "packed sources, matched by 60-character windows. Answerable questions only.",
    "evidence_words": "Share of the gold evidence's word trigrams (consecutive words, lowercase letters and digits) "
                      "found in the packed sources: an OCR slip costs only the trigrams it touches. Answerable "
                      "questions only.",
    "evidence_found": "Share of answerable questions with any gold evidence window inside the packed sources.",
    "first_evidence_source": "Position (1 = first in the prompt) of the first packed source holding gold "
                             "evidence; mean over questions where one does.",
    "first_evidence_offset": "Llama-3 tokens of source text before that source, from the start of the sources.",
    "recall_at_k": "Evidence recall (as above) of the top k retrieved chunks, before packing.",
    "mrr": "Mean over answerable questions of 1 / rank of the first retrieved chunk holding gold evidence "
           "(0 when none of the retrieved chunks does).",
    "exact_match": "Answer equals a gold answer after SQuAD normalisation (lowercase; punctuation, articles, "
                   "citations [n] and extra whitespace removed). Answerable questions only.",
    "f1": "Best token F1 between the normalised answer and a normalised gold answer. Answerable questions only.",
    "contains": "A normalised gold answer appears inside the normalised answer. Answerable questions only.",
    "abstention_accuracy": "Share of unanswerable questions whose answer says the documents do not say.",
    "not_answered": "Quote answers: share of unanswerable questions not given a quote as the answer (abstained on, or "
                    "shown a weak match: the `weak` of rag/domain/quote_weights.json).",
    "weak": "Quote answers: share of answerable questions shown a weak match (or none) rather than an answer.",
    "answered_anyway": "Share of unanswerable questions answered with something else (1 - abstention accuracy).",
    "false_abstention": "Share of answerable questions where the model said the documents do not say.",
    "citation_precision": "Share of the sources an answer cites (explicit [n], or the one matched by words when "
                          "the model cited nothing) that hold gold evidence; answerable questions with a citation.",
    "citation_verified": "Share of a generated answer's citations whose quoted words were found in the cited source "
                         "(a citation that quotes nothing counts as not verified); answers with a citation.",
    "prompt_tokens": "Tokens of the whole prompt (chat template included) in the answering model's tokenizer.",
    "seconds_retrieve / pack / first_token / total": "Wall time of retrieval; of packing and counting; from the "
                                                     "question to the first answer token; to the last.",
    "tokens_per_second": "Answer tokens / (total - first token) seconds.",
    "judge": "Optional LLM-as-judge: 1 when the judge model says the answer agrees with the gold answer.",
    "quote_top1": "Answerable questions whose first quote matches a gold clause: at least half of the word pairs "
                  "(consecutive words, lowercase letters and digits) of the shorter of the two occur in the other, "
                  "the quote scored on its first 600 characters. An abstention is a miss.",
    "quote_top3": "As quote_top1, for any of the first three quotes.",
    "quote_verified": "Share of shown quotes found verbatim, at their page and offsets, in the stored page text.",
    "error": "Share of questions that could not be run (e.g. scoped to a document that failed to ingest); such a "
             "question counts as a miss (0) in every retrieval metric above.",
}


def windows(piece: str) -> list[tuple[int, str]]:
    """(start, window) pairs tiling a normalised piece; the last window ends at the piece's end."""
    if len(piece) <= WINDOW:
        return [(0, piece)] if piece else []
    starts = list(range(0, len(piece) - WINDOW + 1, WINDOW))
    if starts[-1] + WINDOW < len(piece):
        starts.append(len(piece) - WINDOW)
    return [(s, piece[s:s + WINDOW]) for s in starts]


def evidence_recall(evidence: Sequence[str], texts: Iterable[str]) -> float | None:
    """Share of the evidence's normalised characters covered by windows found in any one of `texts`."""
    pieces = [p for p in (letters(e) for e in evidence) if p]
    if not pieces:
        return None
    haystacks = [letters(t) for t in texts]
    covered = total = 0
    for piece in pieces:
        hit = bytearray(len(piece))
        for start, window in windows(piece):
            if any(window in h for h in haystacks):
                hit[start:start + len(window)] = b"\x01" * len(window)
        covered += sum(hit)
        total += len(piece)
    return covered / total


def trigrams(text: str, n: int = 3) -> set[tuple[str, ...]]:
    """The text's runs of `n` consecutive words (lowercase letters and digits)."""
    words = WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def evidence_words(evidence: Sequence[str], texts: Iterable[str]) -> float | None:
    """Share of the evidence's word trigrams (of each piece; a piece of one or two words is its own run) found
    among the runs of words of `texts`."""
    wanted = set().union(*(trigrams(e, min(3, len(WORD.findall(e.lower())))) for e in evidence
                           if letters(e)))
    if not wanted:
        return None
    texts = list(texts)
    have = set().union(*(trigrams(t, n) for t in texts for n in {len(w) for w in wanted}))
    return len(wanted & have) / len(wanted)


def holds_evidence(evidence: Sequence[str], text: str) -> bool:
    """Whether `text` holds any window of the gold evidence."""
    haystack = letters(text)
    return any(w in haystack for e in evidence for _, w in windows(letters(e)))


def first_evidence(evidence: Sequence[str], texts: Sequence[str]) -> int | None:
    """Index of the first text holding gold evidence, or None."""
    return next((i for i, t in enumerate(texts) if holds_evidence(evidence, t)), None)


def reciprocal_rank(evidence: Sequence[str], ranked_texts: Sequence[str]) -> float:
    at = first_evidence(evidence, ranked_texts)
    return 0.0 if at is None else 1.0 / (at + 1)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation, with citation marks [n] removed first."""
    text = _CITATION.sub(" ", text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    best = 0.0
    predicted = normalize_answer(prediction).split()
    for answer in answers:
        gold = normalize_answer(answer).split()
        common = sum((Counter(predicted) & Counter(gold)).values())
        if common:
            precision, recall = common / len(predicted), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains(prediction: str, answers: Sequence[str]) -> float:
    said = f" {normalize_answer(prediction)} "
    return float(any((gold := normalize_answer(a)) and f" {gold} " in said for a in answers))


QUOTE_CHARS = 600  # a quote is scored on its first 600 characters: a page-long "quote" earns nothing


def _words(text: str) -> list[str]:
    return _NOT_ALNUM.split(text.lower().strip())


def quote_matches(quote: str, evidence: Sequence[str]) -> bool:
    """Whether the quote matches any gold clause: at least half of the word pairs of the shorter of the two
    occur in the other (a one-word text: its word occurs in the other)."""
    said = [w for w in _words(quote[:QUOTE_CHARS]) if w]
    for clause in evidence:
        gold = [w for w in _words(clause) if w]
        if not said or not gold:
            continue
        shorter, other = sorted((said, gold), key=len)
        if len(shorter) == 1:
            if shorter[0] in other:
                return True
            continue
        pairs, found = list(zip(shorter, shorter[1:])), set(zip(other, other[1:]))
        if 2 * sum(p in found for p in pairs) >= len(pairs):
            return True
    return False


def quote_tradeoff(points: Sequence[tuple[float, bool | None]], threshold: float) -> dict:
    """What a quote threshold gives, from each question's (best sentence's score, whether it matches a gold
    clause; None for an unanswerable question): answerable top-1 (an abstention is a miss), unanswerable
    abstention accuracy, and precision (answered questions whose quote matches; an unanswerable one
    answered is wrong). Recall = answerable top-1, as CUAD reports its precision-recall curves."""
    answerable = [(s, hit) for s, hit in points if hit is not None]
    unanswerable = [s for s, hit in points if hit is None]
    top1 = sum(bool(hit) and s >= threshold for s, hit in answerable) / max(1, len(answerable))
    abstains = sum(s < threshold for s in unanswerable) / max(1, len(unanswerable))
    answered = [hit for s, hit in points if s >= threshold]
    return {"threshold": round(float(threshold), 3), "top1": top1, "abstention": abstains,
            "balanced": (top1 + abstains) / 2, "precision": sum(bool(h) for h in answered) / max(1, len(answered)),
            "recall": top1}
