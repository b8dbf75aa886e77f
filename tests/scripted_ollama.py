"""A server speaking Ollama's own API (`/api/version`, `/api/tags`, `/api/show`, streamed `/api/chat`) that
answers every chat with the same text: `python scripted_ollama.py PORT FILE [NUM_CTX]`.

Ollama itself is a Go program with no package here, so this stands in for it, as a separate process
on a real socket. NUM_CTX, when given, is the `num_ctx` its model's Modelfile sets; each request body
is logged to FILE.log, one JSON a line, so a test can see what was asked for.
"""

from __future__ import annotations

import json
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

from scripted_http import JSONHandler


def main(port: int, answer_file: Path, num_ctx: int) -> None:
    answer = answer_file.read_text()
    log = answer_file.with_suffix(".log")

    class Handler(JSONHandler):

        def do_GET(self):
            if self.path == "/api/version":
                self._json({"version": "0.12.0"})
            elif self.path == "/api/tags":
                self._json({"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b"}]})
            else:
                self.send_error(404)

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with log.open("a") as f:
                f.write(json.dumps({"path": self.path, **request}) + "\n")
            if self.path == "/api/show":
                parameters = f"num_ctx {num_ctx}\nstop \"<|eot_id|>\"" if num_ctx else "stop \"<|eot_id|>\""
                self._json({"parameters": parameters, "model_info": {"llama.context_length": 131072}})
            elif self.path == "/api/chat":
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                for i in range(0, len(answer), 10):
                    self.wfile.write((json.dumps({"message": {"role": "assistant", "content": answer[i:i + 10]},
                                                  "done": False}) + "\n").encode())
                self.wfile.write((json.dumps({"message": {"role": "assistant", "content": ""}, "done": True})
                                  + "\n").encode())
            else:
                self.send_error(404)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
