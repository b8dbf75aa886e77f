"""Answering backends from the registry: what every interface offers, Ollama's window (asked, never assumed,
and sent), a generic OpenAI-compatible server (window required), and `auto` recognising each kind.
Servers are real processes on real sockets (Ollama's API spoken by tests/scripted_ollama.py)."""

import json
import os
import subprocess
import sys

import pytest

from rag import backends
from rag.config import Settings
from rag.errors import ConfigError

from helpers import ROOT, scripted


CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Which law governs?"}]


def test_every_interface_offers_what_the_registry_holds():
    names = backends.names()
    assert {"vllm", "ollama", "llamacpp", "openai", "embedded"} <= set(names)
    for command in ("ask", "eval"):
        shown = subprocess.run([sys.executable, "-m", "rag.cli", command, "--help"], capture_output=True, text=True,
                               cwd=ROOT).stdout
        assert all(name in shown for name in names), command
    # an unknown backend is refused, naming the choices, where settings are loaded (the CLI, the app) and opened
    with pytest.raises(ConfigError, match="use auto or one of openai, vllm, ollama"):
        backends.check(Settings(llm_backend="nonsense"))
    with pytest.raises(ConfigError, match="use auto or one of openai, vllm, ollama"):
        backends.open_llm(Settings(llm_backend="nonsense"))
    refused = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Which law governs?"], capture_output=True,
                             text=True, cwd=ROOT, env={**os.environ, "RAG_LLM_BACKEND": "nonsense"})
    assert refused.returncode == 2 and "use auto or one of openai, vllm, ollama" in refused.stderr
    for name in names:
        b = backends.get(name)
        assert b.title and b.window_from and b.tokenizer  # each says how it learns its window, what counts


def test_ollama_window_comes_from_its_api_and_is_sent_with_every_request(tmp_path):
    with scripted("scripted_ollama.py", tmp_path, "8192") as (url, log):
        llm = backends.open_llm(Settings(llm_backend="auto", llm_url=url))
        assert llm.backend.name == "ollama" and llm.context_window == 8192 and llm.describe.startswith("Ollama: ")
        said = "".join(llm.stream(CHAT, 32))
        assert said == "The agreement is governed by the laws of California [1]."
        chat = [json.loads(line) for line in log.read_text().splitlines() if '"/api/chat"' in line]
        assert chat[-1]["options"]["num_ctx"] == 8192 and chat[-1]["options"]["num_predict"] == 32


def test_ollama_without_a_window_is_refused_until_one_is_set(tmp_path):
    with scripted("scripted_ollama.py", tmp_path) as (url, log):
        with pytest.raises(ConfigError, match="RAG_LLM_CONTEXT_WINDOW") as e:
            backends.open_llm(Settings(llm_backend="ollama", llm_url=url))
        assert "131072" in str(e.value)  # what the model itself could read, said
        llm = backends.open_llm(Settings(llm_backend="ollama", llm_url=url, llm_context_window=16384))
        assert llm.context_window == 16384
        "".join(llm.stream(CHAT, 16))
        chat = [json.loads(line) for line in log.read_text().splitlines() if '"/api/chat"' in line]
        assert chat[-1]["options"]["num_ctx"] == 16384  # the window packed for is the window asked for


def test_a_generic_server_needs_its_window_stated(tmp_path):
    with scripted("scripted_llm.py", tmp_path, "--silent-window") as (url, _):
        with pytest.raises(ConfigError, match="does not say its context window"):
            backends.open_llm(Settings(llm_backend="auto", llm_url=url))
        llm = backends.open_llm(Settings(llm_backend="auto", llm_url=url, llm_context_window=4096))
        assert llm.backend.name == "openai" and llm.context_window == 4096
    with scripted("scripted_llm.py", tmp_path) as (url, _):  # one that says max_model_len is vLLM's kind
        llm = backends.open_llm(Settings(llm_backend="auto", llm_url=url))
        assert llm.backend.name == "vllm" and llm.context_window == 8192 and llm.backend.concurrent
