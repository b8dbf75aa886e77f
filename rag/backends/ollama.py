"""Ollama (`ollama serve`, http://localhost:11434), through its own API.

Ollama cuts a prompt longer than the context window it loaded the model with (`num_ctx`), without an
error, and its OpenAI-compatible API neither says that window nor lets a client set it. So this backend
speaks Ollama's own API: the window comes from the model's `num_ctx` (`/api/show`), or from the
llm_context_window setting when the model has none; with neither, it refuses (never assumes); and every
request asks for exactly that window (`options.num_ctx`), so the budget the prompt was packed for is the
window Ollama reads it in.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Iterator

from rag.backends import Backend, CountsLlama3, answers, down, get, get_json, register
from rag.backends.openai import SERVER_SPECIAL_TOKENS
from rag.config import Settings
from rag.errors import ConfigError, LLMTimeoutError, LLMUnavailableError

START = "ollama serve (then: ollama pull llama3.1)"


class OllamaServer(CountsLlama3):
    too_small = ""

    def __init__(self, settings: Settings):
        self.backend = get("ollama")
        self.url = settings.llm_url.rstrip("/")
        self.timeout = settings.llm_timeout
        self.fallback = ""
        wait = min(10.0, settings.llm_timeout)
        pulled = [m.get("name") for m in get_json(self.url, "/api/tags", wait, down_hint=START).get("models", [])]
        if not pulled and not settings.llm_model:
            raise LLMUnavailableError(f"Ollama at {self.url} has no model: `ollama pull llama3.1`, or set RAG_LLM_MODEL")
        self.model_name = settings.llm_model or pulled[0]
        show = get_json(self.url, "/api/show", wait, body={"model": self.model_name}, down_hint=START)
        self.context_window = settings.llm_context_window or _num_ctx(show)
        if not self.context_window:
            trained = next((v for k, v in (show.get("model_info") or {}).items() if k.endswith(".context_length")), None)
            raise ConfigError(
                f"Ollama at {self.url} does not say the context window it runs {self.model_name!r} with (no num_ctx in its "
                f"Modelfile{f'; the model reads up to {trained} tokens' if trained else ''}): set "
                "RAG_LLM_CONTEXT_WINDOW (llm_context_window), e.g. 32768, and rag asks Ollama for exactly that window")
        self.special_tokens = SERVER_SPECIAL_TOKENS
        self.max_budget = 0
        self.describe = f"Ollama: {self.model_name} at {self.url} ({self.context_window} tokens)"

    def load(self) -> None:
        pass  # the server holds the model

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        body = {"model": self.model_name, "messages": messages, "stream": True,
                "options": {"num_ctx": self.context_window, "num_predict": max_tokens, "temperature": 0}}
        request = urllib.request.Request(f"{self.url}/api/chat", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                for line in response:
                    if not line.strip():
                        continue
                    part = json.loads(line)
                    if part.get("error"):
                        raise LLMUnavailableError(f"Ollama at {self.url} refused the request: {part['error']}")
                    if piece := (part.get("message") or {}).get("content"):
                        yield piece
                    if part.get("done"):
                        return
        except (TimeoutError, socket.timeout) as e:
            raise LLMTimeoutError(f"Ollama at {self.url} did not answer within {self.timeout:.0f} s: it may be loading "
                                  "the model; raise RAG_LLM_TIMEOUT or try again") from e
        except urllib.error.HTTPError as e:
            raise LLMUnavailableError(f"Ollama at {self.url} refused the request ({e.code}): {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            raise LLMUnavailableError(down(self.url, e, START)) from e


def _num_ctx(show: dict) -> int:
    for line in (show.get("parameters") or "").splitlines():
        name, _, value = line.strip().partition(" ")
        if name == "num_ctx" and value.strip().isdigit():
            return int(value.strip())
    return 0


def _detect(url: str, timeout: float) -> bool:
    return "version" in (answers(url, "/api/version", timeout) or {})


register(Backend(
    "ollama", "Ollama", OllamaServer, needs_url=True,
    window_from="the model's num_ctx (/api/show), else the llm_context_window setting; it is then asked for exactly "
                "that window",
    tokenizer="Meta's Llama-3 tokenizer and the Llama 3.1 chat template (exact for Llama 3.x, an estimate otherwise)",
    concurrent=True, start=START, detect=_detect))
