"""llama.cpp's own server (`llama-server -m MODEL.gguf -c 32768`), or llama-cpp-python's
(`python -m llama_cpp.server --model MODEL.gguf --n_ctx 32768`), through their OpenAI-compatible API.

llama.cpp's server says its context window at `/props` (which is also how `auto` recognises it);
llama-cpp-python's says nothing, so with it set `llm_context_window` to its `--n_ctx`.
"""

from __future__ import annotations

from rag.backends import Backend, answers, register
from rag.backends.openai import OpenAIServer


class LlamaCppServer(OpenAIServer):
    kind = "llamacpp"

    def _window(self, listed: dict) -> int:
        return _n_ctx(answers(self.url, "/props", self.timeout))


def _n_ctx(props: dict | None) -> int:
    props = props or {}
    return int((props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx") or 0)


def _detect(url: str, timeout: float) -> bool:
    return _n_ctx(answers(url, "/props", timeout)) > 0


register(Backend(
    "llamacpp", "llama.cpp server", LlamaCppServer, needs_url=True,
    window_from="its /props (n_ctx); llama-cpp-python's server: the llm_context_window setting",
    tokenizer="Meta's Llama-3 tokenizer and the Llama 3.1 chat template (exact for Llama 3.x, an estimate otherwise)",
    concurrent=True, start="llama-server -m MODEL.gguf -c 32768", detect=_detect))
