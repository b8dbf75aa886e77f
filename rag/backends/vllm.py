"""vLLM, the product's server: `vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 131072`.

It says its context window in `/v1/models` (`max_model_len`), which is also how `auto` recognises it.
"""

from __future__ import annotations

from rag.backends import Backend, answers, register
from rag.backends.openai import OpenAIServer

COMMAND = "vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 131072"


class VllmServer(OpenAIServer):
    kind = "vllm"

    def _window(self, listed: dict) -> int:
        return int(listed.get("max_model_len") or 0)


def _detect(url: str, timeout: float) -> bool:
    models = answers(url, "/v1/models", timeout) or {}
    return any("max_model_len" in m for m in models.get("data", []) if isinstance(m, dict))


register(Backend(
    "vllm", "vLLM", VllmServer, needs_url=True, window_from="its /v1/models (max_model_len)",
    tokenizer="Meta's Llama-3 tokenizer and the Llama 3.1 chat template", concurrent=True, start=COMMAND,
    detect=_detect))
