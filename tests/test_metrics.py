"""Metric functions on hand-made cases with known values."""

import pytest

from eval import metrics as m


def test_letters_and_windows():
    assert m.letters("Section 12.1 — “Governing LAW”:\n the  State") == "section121governinglawthestate"
    assert m.windows("") == []
    assert m.windows("abc") == [(0, "abc")]
    piece = "x" * 130
    assert [s for s, _ in m.windows(piece)] == [0, 60, 70]  # the last window ends at the end
    assert all(len(w) == 60 for _, w in m.windows(piece))


def test_evidence_recall_counts_characters_of_found_windows():
    gold = "a" * 60 + "b" * 60  # two windows
    assert m.evidence_recall([gold], ["zz" + "A" * 60 + "zz"]) == 0.5
    assert m.evidence_recall([gold], ["AAAA " * 15, "  " + "b" * 60]) == 1.0  # windows may be in different texts
    assert m.evidence_recall([gold], ["nothing"]) == 0.0
    assert m.evidence_recall(["The laws of California.", "x" * 60 + "y" * 20], ["the LAWS of\ncalifornia"]) == \
        pytest.approx(len("thelawsofcalifornia") / (len("thelawsofcalifornia") + 80))
    assert m.evidence_recall([], ["x"]) is None and m.evidence_recall(["..."], ["x"]) is None


def test_evidence_words_costs_an_ocr_slip_only_the_trigrams_it_touches():
    clause = "This Agreement shall be governed by the laws of the State of California."
    ocr = "This Agreement shall be govérned by the laws of the State of Califomia."  # two slips, as Tesseract reads
    assert m.evidence_words([clause], [clause]) == 1.0
    assert m.evidence_words([clause], [ocr]) == pytest.approx(7 / 11)  # 11 trigrams, 4 touch a slip
    assert m.evidence_recall([clause], [ocr]) == 0.0  # no 60-letter window survives both slips
    assert m.evidence_words(["Licensor", "Andy North"], ["the Licensor and Andy North"]) == 1.0  # short pieces
    assert m.evidence_words(["Licensor"], ["the Licensee"]) == 0.0
    assert m.evidence_words([], ["text"]) is None and m.evidence_words(["..."], ["text"]) is None


def test_positions_and_reciprocal_rank():
    evidence = ["governed by the laws of the State of Delaware"]
    texts = ["payment terms", "This Agreement is governed by the laws of the state of Delaware.", "more"]
    assert m.holds_evidence(evidence, texts[1]) and not m.holds_evidence(evidence, texts[0])
    assert m.first_evidence(evidence, texts) == 1
    assert m.reciprocal_rank(evidence, texts) == 0.5
    assert m.reciprocal_rank(evidence, texts[:1]) == 0.0


def test_answer_metrics():
    assert m.normalize_answer("The State of  Delaware [1][2].") == "state of delaware"
    assert m.exact_match("Delaware [3]", ["delaware"]) == 1.0
    assert m.exact_match("It is Delaware", ["Delaware"]) == 0.0
    assert m.contains("It is Delaware [3].", ["Delaware", "New York"]) == 1.0
    assert m.contains("Yesterday", ["Yes"]) == 0.0  # whole words only
    assert m.token_f1("the laws of Delaware", ["State of Delaware"]) == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert m.token_f1("no overlap", ["Delaware"]) == 0.0
    assert m.token_f1("Delaware", ["New York", "Delaware"]) == 1.0  # best over gold answers
