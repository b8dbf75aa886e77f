"""The boundary of rag.reading (its __init__ says it): what the parsing worker process runs imports none of
torch, transformers, sentence_transformers or chromadb, neither when its modules load nor while it reads a
file. A fresh interpreter imports every module of the subpackage, reads a real PDF through the worker's own
per-file entry (as the worker process does: the embedding tokenizer from JSON, then `_work`), and lists what
it loaded."""

import json
import subprocess
import sys

from helpers import CONTRACTS, ROOT

HEAVY = ("torch", "transformers", "sentence_transformers", "chromadb")
CONTRACT = CONTRACTS / "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"

_SCRIPT = """
import importlib, json, pkgutil, sys
from pathlib import Path

import rag.reading
from rag.reading import worker

modules = sorted(m.name for m in pkgutil.walk_packages(rag.reading.__path__, "rag.reading."))
for name in modules:
    importlib.import_module(name)
tokenizer_json, path = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
params = worker.Params(tokenizer_json, 254, 24, (), root=str(path.parent))
messages = []
result = worker._work(path, params, worker.tokenizer_from_json(params.tokenizer_json), messages.append)
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & {heavy})
print(json.dumps({{"modules": modules, "result": type(result).__name__, "pages": getattr(result, "pages", 0),
                  "chunks": len(getattr(result, "chunks", [])), "reason": getattr(result, "reason", ""),
                  "heavy": heavy}}))
"""


def test_the_parsing_worker_reads_a_pdf_without_loading_torch_or_chromadb(tmp_path, embedder):
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(embedder.tokenizer_json())
    script = _SCRIPT.format(heavy=repr(set(HEAVY)))
    out = subprocess.run([sys.executable, "-c", script, str(tokenizer), str(CONTRACT)], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"rag.reading.worker", "rag.reading.walk", "rag.reading.chunking", "rag.reading.ocr",
            "rag.reading.filetypes.pdf"} <= set(got["modules"])
    assert got["result"] == "Prepared" and got["pages"] > 1 and got["chunks"] > 1, got
    assert got["heavy"] == [], f"the parsing worker loaded {got['heavy']}: keep those imports out of rag.reading"
