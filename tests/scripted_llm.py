"""An OpenAI-compatible server that answers every chat with the text of a file (read for each request):
`python scripted_llm.py PORT FILE [--silent-window]` (--silent-window: /v1/models does not say max_model_len,
as a generic OpenAI-compatible server need not).

It stands in for a language model that a document has steered (prompt injection) into writing what the
attacker wants, which no real model does on cue. It speaks the same HTTP API as vLLM (`/v1/models`,
streamed and plain `/v1/chat/completions`), as a separate process on a real socket, so the app talks to
it exactly as it would to vLLM. Each request it answers is logged to FILE.log.

A FILE holding a JSON object {"rules": [[TEXT, ANSWER], ...], "default": ANSWER} answers each chat with the
ANSWER of the first rule whose TEXT its last message holds (in any case and spacing), else the default: a model that tells passages apart
(`rag review --verify`).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from scripted_http import JSONHandler


def reply(script: str, request: dict) -> str:
    """The file's text; for a file of rules, the answer of the first rule the last message matches."""
    try:
        rules = json.loads(script)
    except ValueError:
        return script
    if not isinstance(rules, dict) or "rules" not in rules:
        return script
    said = " ".join((request.get("messages") or [{}])[-1].get("content", "").lower().split())
    return next((answer for text, answer in rules["rules"] if text.lower() in said), rules.get("default", ""))


def main(port: int, answer_file: Path, says_window: bool = True) -> None:
    log = answer_file.with_suffix(".log")

    class Handler(JSONHandler):

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                model = {"id": "scripted", "object": "model", **({"max_model_len": 8192} if says_window else {})}
                self._json({"object": "list", "data": [model]})
            else:
                self.send_error(404)

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            answer = reply(answer_file.read_text(), request)
            with log.open("a") as f:
                f.write(self.path + "\n")
            made = int(time.time())
            if not request.get("stream"):
                self._json({"id": "x", "object": "chat.completion", "created": made, "model": "scripted",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                         "finish_reason": "stop"}]})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            pieces = [answer[i:i + 12] for i in range(0, len(answer), 12)]
            for piece in pieces + [None]:
                delta = {"role": "assistant", "content": piece} if piece is not None else {}
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": made, "model": "scripted",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None if piece is not None else "stop"}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), "--silent-window" not in sys.argv)
