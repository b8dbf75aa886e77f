"""The words the model reads: system prompt, numbered source blocks, the question; as chat messages.

Document text never acts as prompt structure: chat-template markers such as `<|eot_id|>` or
`<|start_header_id|>` (Llama 3) and `<|im_end|>` (SmolLM2, ChatML) are broken with an invisible word
joiner, so a server that tokenizes special-token strings in message content sees plain characters; so
is every other special token of the tokenizer in use (SmolLM2's `<filename>`, Mistral's `[INST]`),
through `neutralizer(special_tokens)`, which the engine builds from what its model declares.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

Clean = Callable[[str], str]  # document (or user) text -> text that cannot act as prompt structure

SYSTEM = (
    "You answer questions about the user's documents. Use only the numbered sources in the user's message, "
    "never outside knowledge. Cite the source of every statement with its number in brackets followed by the "
    "exact words of that source that carry it, in double quotes, like [1] \"shall be governed by the laws of "
    "Delaware\". Sources are ordered by relevance: the first is the most likely to hold the answer. "
    "If the sources do not contain the answer, reply exactly: \"The documents do not say.\" and nothing more. "
    "Be brief."
)
NOT_FOUND = "The documents do not say."
WEAK_MATCH = "The documents may not say: the closest sentences match the question only weakly."

_MARKER = re.compile(r"<\|([^|<>\s]{1,64})\|>")
_JOINER = "\u2060"  # WORD JOINER: invisible, and no tokenizer's special token contains it


def neutralize(text: str) -> str:
    """Break every `<|name|>` chat-template marker so that no tokenizer reads it as a special token."""
    return _MARKER.sub(lambda m: f"<{_JOINER}|{m.group(1)}|{_JOINER}>", text)


def neutralizer(special_tokens: Iterable[str]) -> Clean:
    """`neutralize`, and also each of `special_tokens` broken after its first character."""
    words = sorted({t for t in special_tokens if len(t) > 1 and not _MARKER.fullmatch(t)}, key=len, reverse=True)
    if not words:
        return neutralize
    pattern = re.compile("|".join(map(re.escape, words)))

    def clean(text: str) -> str:
        return pattern.sub(lambda m: m.group()[0] + _JOINER + m.group()[1:], neutralize(text))

    return clean


def pages_label(page_start: int, page_end: int) -> str:
    return f"p. {page_start}" if page_start == page_end else f"pp. {page_start}-{page_end}"


def source_block(number: int, file: str, page_start: int, page_end: int, text: str, clean: Clean = neutralize,
                 section: str = "", heading: str = "") -> str:
    """One numbered source as the model sees it; packing counts exactly this. `section`: a document without
    pages (Word, HTML) is cited by the section its text starts in. `heading`: a text that starts inside a table
    is shown under its table's heading, so its figures keep their meaning."""
    where = clean(section) if section else pages_label(page_start, page_end)
    above = f"({clean(' / '.join(heading.splitlines()))}, continued)\n" if heading else ""
    return f"[{number}] {clean(file)}, {where}\n{above}{clean(text.strip())}\n\n"


def user_message(blocks: list[str], question: str, clean: Clean = neutralize) -> str:
    context = "".join(blocks) if blocks else "(no sources were found)\n\n"
    return f"Sources:\n\n{context}Question: {clean(question.strip())}"


def messages(blocks: list[str], question: str, history: Sequence[tuple[str, str]] = (),
             clean: Clean = neutralize) -> list[dict[str, str]]:
    """System prompt, earlier turns (question, answer) as they were said, then the sources and the question."""
    earlier = [{"role": role, "content": clean(text.strip())}
               for turn in history for role, text in zip(("user", "assistant"), turn)]
    return [{"role": "system", "content": SYSTEM}, *earlier,
            {"role": "user", "content": user_message(blocks, question, clean)}]
