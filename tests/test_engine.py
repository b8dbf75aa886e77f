"""Answering end to end: the embedded model in-process, and a real OpenAI-compatible server process
(llama.cpp's, serving the same SmolLM2 GGUF: the API vLLM speaks)."""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from rag.engine import Engine
from rag.errors import LLMUnavailableError
from rag.backends import open_llm
from rag.backends.llamacpp import LlamaCppServer
from rag.backends.openai import RetrievalOnly
from rag.retrieval import Retriever

from helpers import ROOT, free_port

NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"


@pytest.fixture
def index(sample_index):
    return sample_index


def check_answer(answer, engine):
    assert answer.text
    assert answer.sources and answer.sources[0]["rank"] == 1  # golden: the best hit first
    assert [s["number"] for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert sum(s["tokens"] for s in answer.sources) <= answer.budget
    assert answer.prompt_tokens + engine.settings.max_answer_tokens <= engine.llm.context_window
    assert {s["file"] for s in answer.sources} == {NETGEAR}
    assert set(answer.seconds) == {"load", "retrieve", "pack", "first_token", "total"}
    for c in answer.citations:
        assert c.file == NETGEAR and 1 <= c.page_start <= c.page_end <= 8


def test_embedded_model_answers_from_the_sample_corpus(index, embedder):
    settings = index.replace(llm_backend="embedded", max_answer_tokens=48, answer="generate")
    engine = Engine(settings, retriever=Retriever(settings, embedder))
    streamed = []
    answer = engine.ask("Which state's law governs the agreement?", [NETGEAR], on_token=streamed.append)
    engine.close()
    check_answer(answer, engine)
    assert "".join(streamed).strip() == answer.text
    assert answer.backend.startswith("embedded model: SmolLM2-135M-Instruct")
    assert engine.llm.context_window == 8192
    # the governing-law clause is the first source the model reads
    assert "laws of the State of California" in " ".join(answer.sources[0]["text"].split())


@pytest.mark.slow
def test_server_backend_against_a_real_openai_compatible_server(index, embedder, llama_cpp_server):
    settings = index.replace(llm_backend="llamacpp", llm_url=llama_cpp_server, llm_context_window=8192,
                             max_answer_tokens=48, budget=1024)
    engine = Engine(settings, retriever=Retriever(settings, embedder))
    assert isinstance(engine.llm, LlamaCppServer)
    streamed = []
    answer = engine.ask("Which state's law governs the agreement?", [NETGEAR], on_token=streamed.append)
    engine.close()
    check_answer(answer, engine)
    assert len(streamed) > 1 and "".join(streamed).strip() == answer.text  # streamed, piece by piece
    assert answer.backend.startswith("llama.cpp server: ") and llama_cpp_server in answer.backend


def test_server_down_names_the_url_and_how_to_start_it(index):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LLMUnavailableError) as e:
        open_llm(index.replace(llm_backend="vllm", llm_url=url))
    assert url in str(e.value) and "vllm serve meta-llama/Llama-3.1-8B-Instruct" in str(e.value)
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "What law governs?", "--index",
                          str(index.index_dir), "--collection", index.collection, "--backend", "vllm",
                          "--llm-url", url], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and url in out.stderr and "Traceback" not in out.stderr


class _SlowServer(http.server.BaseHTTPRequestHandler):
    """A server that lists a model and then never answers a chat request in time."""

    def do_GET(self):
        body = json.dumps({"data": [{"id": "slow-model", "max_model_len": 8192}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        time.sleep(5)

    def log_message(self, *args):
        pass


def test_a_server_too_slow_gives_the_documented_error(index, embedder):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        settings = index.replace(llm_backend="vllm", llm_url=url, llm_timeout=1.0)
        engine = Engine(settings, retriever=Retriever(settings, embedder))
        assert engine.llm.context_window == 8192  # read from the server's max_model_len
        context = engine.context("What law governs?", [NETGEAR])  # retrieval's time is not the server's
        started = time.monotonic()
        with pytest.raises(LLMUnavailableError, match=f"{url} did not answer within 1 s"):
            engine.answer(context)
        assert time.monotonic() - started < 5
        engine.close()
    finally:
        server.shutdown()


def test_rag_ask_json_shows_golden_first_packing_within_budget(index):
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "What is the term of the agreement?", "--json",
                          "--doc", NETGEAR, "--index", str(index.index_dir), "--collection", index.collection,
                          "--backend", "embedded", "--answer", "generate"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "RAG_MAX_ANSWER_TOKENS": "32"})
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["backend"].startswith("embedded model: ") and answer["ordering"] == "golden"
    ranks = [s["rank"] for s in answer["sources"]]
    assert ranks == sorted(ranks) and ranks[0] == 1
    assert sum(s["tokens"] for s in answer["sources"]) <= answer["budget"] <= 2048
    assert answer["prompt_tokens"] + 32 <= 8192
    assert all(c["file"] == NETGEAR for c in answer["citations"])
    assert answer["support"] in ("", "supported", "partly supported", "unsupported")
    assert set(answer["seconds"]) == {"open", "load", "retrieve", "pack", "first_token", "total"}


def test_an_empty_knowledge_base_says_to_ingest(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "What law governs?", "--index",
                          str(tmp_path / "empty"), "--backend", "embedded"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "rag ingest FOLDER" in out.stderr and "Traceback" not in out.stderr


def test_a_follow_up_carries_the_conversation(index, embedder):
    engine = Engine(index, llm=RetrievalOnly(), retriever=Retriever(index, embedder))
    first = "What is the term of the agreement?"
    said = "The agreement lasts one year [1]."
    alone = engine.context("And can it be renewed?", [NETGEAR])
    follow = engine.context("And can it be renewed?", [NETGEAR], history=[(first, said)])
    engine.close()
    assert [m["role"] for m in follow.chat] == ["system", "user", "assistant", "user"]
    assert follow.chat[1]["content"] == first and follow.chat[2]["content"] == said
    assert alone.prompt_tokens < follow.prompt_tokens <= 131072 - index.max_answer_tokens  # the turns are counted
    # the earlier question joins the search: the hits are about the term, not only about renewing
    assert [h.chunk_id for h in follow.hits] != [h.chunk_id for h in alone.hits]
