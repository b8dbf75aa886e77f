"""Exact Llama-3 token counts, with Meta's own tokenizer (the PyPI package llama-models ships it).

Documents are counted as plain text (`encode_ordinary`): a contract that contains the string
`<|eot_id|>` is counted as the characters it is, never as a special token.
"""

from __future__ import annotations

import functools
from typing import Sequence


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
