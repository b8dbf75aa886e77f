"""Any OpenAI-compatible chat server (LM Studio, TGI, a proxy ...), through LlamaIndex's OpenAILike client.

Such a server need not say its context window, so this generic kind requires `llm_context_window`; the
kinds that do say it (vLLM, llama.cpp's server) build on this one. Prompts are counted with Meta's
Llama-3 tokenizer and the Llama 3.1 chat template: exact for the product's model, an estimate for others.
The openai client's exceptions are mapped to ours by type.
"""

from __future__ import annotations

import logging
from typing import Iterator

from rag.backends import Backend, CountsLlama3, down, get, get_json, register
from rag.config import Settings
from rag.errors import ConfigError, LLMTimeoutError, LLMUnavailableError
from rag.tokens import LLAMA31_WINDOW

log = logging.getLogger(__name__)

# A server's tokenizer is not ours to read: its special tokens are taken to be those of the chat formats
# in common use. `<|name|>` markers (Llama 3, ChatML, Phi) are broken by rag.prompts whatever their name.
SERVER_SPECIAL_TOKENS = frozenset({"<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<start_of_turn>",
                                   "<end_of_turn>", "<bos>", "<eos>", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                                   "[AVAILABLE_TOOLS]", "[TOOL_CALLS]", "<think>", "</think>"})


class OpenAIServer(CountsLlama3):
    """A chat model behind `/v1/chat/completions`. Subclasses say how they learn the window (`_window`)."""

    kind = "openai"  # the registry's name for the class's backend
    too_small = ""

    def __init__(self, settings: Settings):
        self.backend = get(self.kind)
        self.url = settings.llm_url.rstrip("/")
        self.timeout = settings.llm_timeout
        self.fallback = ""
        models = get_json(self.url, "/v1/models", min(10.0, settings.llm_timeout), down_hint=self.backend.start)
        listed = {m.get("id"): m for m in models.get("data", [])}
        if not listed and not settings.llm_model:
            raise LLMUnavailableError(f"the server at {self.url} lists no model: set RAG_LLM_MODEL")
        self.model_name = settings.llm_model or next(iter(listed))
        self.context_window = settings.llm_context_window or self._window(listed.get(self.model_name) or {})
        if not self.context_window:
            raise ConfigError(
                f"the {self.backend.title} at {self.url} does not say its context window for {self.model_name!r}: set "
                "RAG_LLM_CONTEXT_WINDOW (llm_context_window) to the window it serves, so prompts are never cut")
        self.special_tokens = SERVER_SPECIAL_TOKENS
        self.max_budget = 0
        self.describe = f"{self.backend.title}: {self.model_name} at {self.url} ({self.context_window} tokens)"
        from llama_index.llms.openai_like import OpenAILike

        self._client = OpenAILike(model=self.model_name, api_base=f"{self.url}/v1", api_key="not-needed",
                                  is_chat_model=True, context_window=self.context_window, timeout=self.timeout,
                                  max_retries=0)

    def _window(self, listed: dict) -> int:
        return 0  # a generic server does not say

    def load(self) -> None:
        pass  # the server holds the model

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        import openai
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        try:
            for part in self._client.stream_chat(chat, max_tokens=max_tokens, temperature=0.0):
                if part.delta:
                    yield part.delta
        except openai.APITimeoutError as e:  # before APIConnectionError: it is one
            raise LLMTimeoutError(
                f"the language-model server at {self.url} did not answer within {self.timeout:.0f} s: it may be "
                "overloaded or still loading the model; raise RAG_LLM_TIMEOUT or try again") from e
        except openai.APIConnectionError as e:
            raise LLMUnavailableError(down(self.url, e, self.backend.start)) from e
        except openai.APIStatusError as e:
            raise LLMUnavailableError(f"the language-model server at {self.url} refused the request "
                                      f"({e.status_code}): {e.message}") from e


register(Backend(
    "openai", "OpenAI-compatible server", OpenAIServer, needs_url=True,
    window_from="the llm_context_window setting (required: such a server need not say it)",
    tokenizer="Meta's Llama-3 tokenizer and the Llama 3.1 chat template (exact for Llama 3.x, an estimate otherwise)",
    concurrent=True))


class RetrievalOnly(CountsLlama3):
    """No model: prompts counted as Llama-3.1-8B-Instruct would read them, for retrieval-only evaluation."""

    backend = Backend("none", "no model", lambda settings: RetrievalOnly(), needs_url=False,
                      window_from="Llama 3.1's 131,072 tokens", tokenizer="Meta's Llama-3 tokenizer")
    describe = "none (retrieval only; prompts counted for Llama-3.1-8B-Instruct)"
    model_name = ""
    context_window = LLAMA31_WINDOW
    max_budget = 0
    special_tokens = SERVER_SPECIAL_TOKENS
    fallback = ""
    too_small = ""

    def load(self) -> None:
        pass

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        raise ConfigError("retrieval-only: no language model was opened")
