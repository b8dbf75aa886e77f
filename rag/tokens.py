"""Exact Llama-3 token counts, with Meta's own tokenizer (the PyPI package llama-models ships it).

Documents are counted as plain text (`encode_ordinary`): a contract that contains the string
`<|eot_id|>` is counted as the characters it is, never as a special token.
"""

from __future__ import annotations

import functools
from typing import Sequence

LLAMA31_WINDOW = 131_072  # tokens Llama 3.1 reads at most: its context window, and the most any model here is given


@functools.cache
def llama3_encoding():
    """Meta's Llama 3 tiktoken Encoding (128,000 ranks + 256 special tokens)."""
    from llama_models.llama3.tokenizer import Tokenizer

    return Tokenizer.get_instance().model


def count_llama3(texts: Sequence[str]) -> list[int]:
    """Llama-3 token counts of plain texts (special-token strings count as text)."""
    enc = llama3_encoding()
    if len(texts) < 32:  # the batch call's thread pool costs more than it saves on a few texts
        return [len(enc.encode_ordinary(t)) for t in texts]
    return [len(t) for t in enc.encode_ordinary_batch(list(texts))]


def llama3_tokens(text: str) -> int:
    return len(llama3_encoding().encode_ordinary(text))


# Llama 3.1's chat template adds these lines to the system message (HF tokenizer_config.json, 2024-07)
_LLAMA31_SYSTEM_PREAMBLE = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
TEMPLATE_MARGIN = 16  # tokens kept free for chat-template details that differ between server versions


def llama31_prompt_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Tokens of the whole prompt under the Llama 3.1 chat template, generation header included."""
    enc = llama3_encoding()
    total = 1  # <|begin_of_text|>
    for m in messages:
        content = (_LLAMA31_SYSTEM_PREAMBLE + m["content"]) if m["role"] == "system" else m["content"]
        total += 5 + len(enc.encode_ordinary(m["role"])) + len(enc.encode_ordinary(content))
        # <|start_header_id|> role <|end_header_id|> \n\n ... <|eot_id|>
    return total + 5 + TEMPLATE_MARGIN  # <|start_header_id|>assistant<|end_header_id|>\n\n
