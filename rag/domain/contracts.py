"""What the project knows about contracts: three small tables, each switched off by a setting.

CONTRACT_WORDS (setting `contract_words`): a question's plain word -> the words contracts write for it, added to
the keyword query ("can they raise the price?" of a clause on "increases of the Fees"; Porter stems cover the
plurals). Written 2026-11-26 while reading the misses of cuad-dev's 4 Price Restrictions questions, so it is
tuning on those questions: ordinary commercial-contract vocabulary, which took that category's held-out 4K
evidence recall from 0.500 to 0.750 and changed no other category's numbers (README, "Numbers"). On 10 other
cuad-dev contracts (410 questions, none an answerable Price Restrictions one) switching it off changed nothing
(eval/reports/domain-switches/).

DOCUMENT_QUESTIONS (setting `document_questions`): questions about a contract itself (its name, parties, date),
which its opening answers and whose words its opening rarely shares; how like the nearest of these a question
is decides how much the sentences of a document's opening count in a quote answer (rag.quotes: OPENING and
IDENTITY, fitted with the other weights on cuad-dev by eval.calibrate_quotes). Switched off, on 10 cuad-dev
contracts (tuned on, so the effect on tuned data): quote top-1 0.833 -> 0.765 (Document Name 0.90 -> 0.50,
Agreement Date 0.78 -> 0.44), abstention 0.675 -> 0.679 (eval/reports/domain-switches/).

NUMBERED_CLAUSE (setting `clause_openings`): what opens a clause on its own line ("2.1", "(a)", "B.", "ARTICLE",
"Section"): a sentence of a quote ends before it, so a quote never runs from one clause into the next
(rag.quotes.sentence_spans; written with the quote answers, 2026-11-26). Switched off, on the same 10
contracts: top-1 0.833 -> 0.853 and top-3 0.971 -> 0.961 (two questions each way of 102, inside the intervals):
no measured gain there; kept for what it is for, quotes that stop at their clause's end, until a held-out
measurement decides (eval/reports/domain-switches/).
"""

from __future__ import annotations

CONTRACT_WORDS: dict[str, tuple[str, ...]] = {
    "price": ("fee", "rate", "charge"), "prices": ("fee", "rate", "charge"), "pricing": ("fee", "rate", "charge"),
    "raise": ("increase",), "lower": ("decrease",), "reduce": ("decrease",),
}

DOCUMENT_QUESTIONS = ("What is the name of this agreement?", "Who are the parties to this agreement?",
                      "What is the date of this agreement?", "When does this agreement take effect?")

NUMBERED_CLAUSE = r"(?:\d{1,2}(?:\.\d{1,2})*\.?|\([a-zA-Z0-9]{1,4}\)|[A-Z]\.|ARTICLE|Article|Section|SECTION)\s"
