"""Documents without pages (Word, HTML) as sections: a section opens at each heading and each numbered clause,
and a citation names it ("9.2 Governing Law") where a PDF's names a page.

A loader turns its file into blocks in reading order (headings, paragraphs, table rows: a row is one line,
its cells joined by " | "), and `read_sections` cuts them into sections: the knowledge base stores each
section as it stores a page (with its label), so chunks, offsets and quotes work alike.
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

from rag.reading.filetypes import Read

OPENING = "start of the document"  # the label of what comes before the first heading or clause
LABEL_CHARS = 80  # a label longer than this is cut at a word
LABEL_WORDS = 8  # a numbered clause's label: its number and title, or its first words
# "9.2 Governing Law.", "Section 4.1 Term", "ARTICLE IX - NOTICES", "12. Confidentiality", "12) Fees", "(a) Exclusivity",
# "IV. Term": a clause number, then a capitalised word; not "2020 was a good year" or "100 Main Street"
_CLAUSE = re.compile(r"^(?:(?i:section|article|clause)\s+(?:\d+(?:\.\d+)*|[IVXLC]+)[.:]?|§\s*\d+(?:\.\d+)*\.?|"
                     r"\d+(?:\.\d+)+\.?|\d+[.)]|[IVXLC]+\.|\([a-z0-9]{1,4}\))\s+(?:[-–—:]\s+)?(?=[\"“]?[A-Z])")
_TITLE_END = re.compile(r"(?<=[a-z0-9])[.:](?:\s|$)|\s[-–—]\s")


class Block(NamedTuple):
    kind: str  # heading | paragraph | row
    text: str  # one line: whitespace collapsed


def read_sections(blocks: Iterable[Block]) -> Read:
    """The blocks as sections (their text, one block a line) and each section's label."""
    texts: list[list[str]] = [[]]
    labels = [""]
    for block in blocks:
        text = " ".join(block.text.split())
        if not text:
            continue
        label = text if block.kind == "heading" else clause_label(text) if block.kind == "paragraph" else ""
        if label and (texts[-1] or labels[-1]):
            texts.append([])
            labels.append("")
        if label:
            labels[-1] = _short(label)
        texts[-1].append(text)
    if not texts[0] and len(texts) > 1:  # nothing before the first heading
        texts, labels = texts[1:], labels[1:]
    labels = [label or OPENING for label in labels]  # only the text before the first heading has none
    return Read(["\n".join(lines) for lines in texts], sections=tuple(labels))


def clause_label(text: str) -> str:
    """A paragraph that opens a numbered clause: its number and title ("9.2 Governing Law"), or "" for another."""
    if not _CLAUSE.match(text):
        return ""
    end = _TITLE_END.search(text, _CLAUSE.match(text).end())
    words = text[:end.start() if end else len(text)].split()
    return " ".join(words[:LABEL_WORDS]).rstrip(".:;,")


def _short(label: str) -> str:
    if len(label) <= LABEL_CHARS:
        return label
    return label[:LABEL_CHARS].rsplit(" ", 1)[0] + " …"
