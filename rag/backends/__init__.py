"""Answering backends, in one registry, each declaring what it can do.

A backend is a module of this package that calls `register(Backend(...))` (imported at the bottom of this
file). The `--backend` choices of `rag ask` and `rag eval`, the app's Settings, `open_llm` and the eval's
concurrency all read the registry and ask a capability; nothing matches a backend's name or description.

Every opened backend is an `LLM`: it counts tokens with its model's tokenizer (or says it counts with
Llama 3's), knows its context window (and how it learned it), declares its special tokens, and streams.
Library exceptions are mapped to ours by type, inside each backend.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from rag.config import Settings
from rag.errors import ConfigError, LLMUnavailableError
from rag.tokens import llama3_tokens, llama31_prompt_tokens

log = logging.getLogger(__name__)


class LLM(Protocol):
    backend: "Backend"
    describe: str  # for people: "vLLM: meta-llama/Llama-3.1-8B-Instruct at http://localhost:8000 (131072 tokens)"
    model_name: str  # the model's own name
    context_window: int
    max_budget: int  # 0, or the most source tokens this model should be given
    counts_llama3: bool  # `count` is Meta's Llama-3 tokenizer (so counts stored at ingestion apply)
    special_tokens: frozenset[str]  # strings its tokenizer reads as control tokens: never let documents write them
    fallback: str  # why it stands in for a server that did not answer ("" when it was asked for)
    too_small: str  # why its written answers cannot be relied on (the bundled 135M model invents), "" when they can

    def load(self) -> None: ...  # what answering needs, loaded now (a model in this process; nothing for a server)

    def count(self, text: str) -> int: ...

    def count_messages(self, messages: list[dict[str, str]]) -> int: ...

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]: ...


class CountsLlama3:
    """An LLM's counting, with Meta's Llama-3 tokenizer and the Llama 3.1 chat template: for a server's model,
    whose tokenizer is not ours to read (exact for Llama 3.x, an estimate otherwise), and for no model at all."""

    counts_llama3 = True

    def count(self, text: str) -> int:
        return llama3_tokens(text)

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        return llama31_prompt_tokens(messages)


@dataclass(frozen=True)
class Backend:
    name: str  # the setting's value: llm_backend = "vllm"
    title: str  # for people: "vLLM"
    open: Callable[[Settings], LLM]
    needs_url: bool  # a server at llm_url
    window_from: str  # how it learns its context window, said in help and errors
    tokenizer: str  # which tokenizer counts its prompts, said in help
    concurrent: bool = False  # answers several questions at once (a server that batches): eval sends them together
    streams: bool = True
    start: str = ""  # how to start such a server, for "did not answer" errors
    detect: Callable[[str, float], bool] | None = None  # is the server at this URL one of ours? (for `auto`)
    # unless `embedded_model` names another, it answers with the small model the product bundles, too small to
    # write answers (so `answer = auto` quotes, known without loading it)
    bundled_model: bool = False


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    _BACKENDS[backend.name] = backend


def names() -> list[str]:
    return list(_BACKENDS)


def get(name: str) -> Backend:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ConfigError(f"llm_backend {name!r}: use auto or one of {', '.join(_BACKENDS)}") from None


def check(settings: Settings) -> Settings:
    """The settings, once their llm_backend is `auto` or a registered backend (else ConfigError naming the choices).
    The edges that load settings (the CLI, the app) check them so; rag.config cannot, as this module imports it."""
    if settings.llm_backend != "auto":
        get(settings.llm_backend)
    return settings


def servers() -> list[Backend]:
    return [b for b in _BACKENDS.values() if b.needs_url]


FALLBACK = "embedded"  # what `auto` answers with when no server is set, or the one set does not answer


def planned(settings: Settings) -> Backend | None:
    """The backend open_llm opens for these settings, where that is known without asking a server (None: `auto`
    with a server's URL, whose kind only the server can say)."""
    if settings.llm_backend != "auto":
        return get(settings.llm_backend)
    return None if settings.llm_url else get(FALLBACK)


def open_llm(settings: Settings) -> LLM:
    """The configured backend; `auto`: the server at llm_url (its kind recognised) when it answers, else the
    embedded model, which then says why it stands in."""
    if settings.llm_backend != "auto":
        backend = get(settings.llm_backend)
        if backend.needs_url and not settings.llm_url:
            raise ConfigError(f"llm_backend is {backend.name} but no server is set: set RAG_LLM_URL, e.g. "
                              "http://localhost:8000")
        return backend.open(settings)
    if not settings.llm_url:
        return get(FALLBACK).open(settings)
    try:
        return recognise(settings.llm_url, settings.llm_timeout).open(settings)
    except LLMUnavailableError as e:
        log.warning("%s; answering with the embedded model instead", e)
        llm = get(FALLBACK).open(settings)
        llm.fallback = str(e)
        return llm


def recognise(url: str, timeout: float) -> Backend:
    """The kind of server at `url`, by asking it; the generic OpenAI-compatible kind when none says more.
    Raises LLMUnavailableError when nothing answers there."""
    for backend in servers():
        if backend.detect is not None and backend.detect(url, timeout):
            return backend
    get_json(url, "/v1/models", min(10.0, timeout), down_hint="")  # something must answer, or it is down
    return get("openai")


def get_json(url: str, route: str, timeout: float, body: dict | None = None, down_hint: str = "") -> dict:
    """GET (or POST `body` to) a server's JSON route; LLMUnavailableError, naming the URL, when it does not answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url.rstrip('/')}{route}", data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise LLMUnavailableError(down(url, e, down_hint)) from e


def answers(url: str, route: str, timeout: float) -> dict | None:
    """The JSON at a route, or None when the server does not answer it (for recognising a kind of server)."""
    try:
        return get_json(url, route, min(5.0, timeout))
    except LLMUnavailableError:
        return None


def down(url: str, e: BaseException, start: str = "") -> str:
    how = f"start it with `{start}`" if start else "start the server"
    return (f"the language-model server at {url} did not answer ({e}): {how}, or unset RAG_LLM_URL to answer "
            "with the embedded model")


# each registers itself; servers in the order `auto` asks a URL what it is (the generic kind last)
from rag.backends import vllm, ollama, llamacpp, openai, embedded  # noqa: E402,F401,I001
