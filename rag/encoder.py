"""A BERT sentence encoder in NumPy, for the few texts embedded while answering (a question, the sentences
a quote is chosen from), so that asking never has to import torch.

Importing torch and sentence-transformers costs 6-9 s on this 2-core machine before a single text is
embedded: most of a cold `rag ask`. This module reads the same model files (model.safetensors, the fast
tokenizer, sentence-transformers' pooling settings) and computes the same vectors in float32 with NumPy
(measured against sentence-transformers in tests/test_encoder.py), importing in a fraction of a second.
Ingestion, which embeds thousands of chunks, keeps sentence-transformers: there torch's kernels, a GPU or
the CPU's bfloat16 units pay for the import many times over.

It reads BERT-family models with mean or CLS pooling, normalized (all-MiniLM-L6-v2, the bundled default,
and many others); `load` returns None for any other model, and rag.embeddings then uses sentence-transformers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

BATCH_TOKENS = 4096  # tokens (padding included) in one forward pass: the activations stay a few MB
PADDING = 1.2  # a batch's longest text is at most this much (+ 4 tokens) longer than its shortest


class Encoder:
    """all-MiniLM-L6-v2 and its kin: tokenizer -> BERT -> pooling -> unit vectors, in float32."""

    def __init__(self, folder: Path, weights: dict[str, np.ndarray], config: dict, pooling: str, max_tokens: int):
        from tokenizers import Tokenizer

        self.folder = folder
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)
        self.pooling = pooling
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        w = {k.removeprefix(prefix): v.astype(np.float32) for k, v in weights.items()}
        self.words = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv = np.concatenate([w[p + f"attention.self.{x}.weight"] for x in ("query", "key", "value")]).T
            qkv_bias = np.concatenate([w[p + f"attention.self.{x}.bias"] for x in ("query", "key", "value")])
            self.layers.append((
                np.ascontiguousarray(qkv), qkv_bias,
                np.ascontiguousarray(w[p + "attention.output.dense.weight"].T), w[p + "attention.output.dense.bias"],
                (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), w[p + "intermediate.dense.bias"],
                np.ascontiguousarray(w[p + "output.dense.weight"].T), w[p + "output.dense.bias"],
                (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, in the order given."""
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(encodings)), key=lengths.__getitem__)  # texts of like length batched together
        out = np.zeros((len(encodings), self.words.shape[1]), dtype=np.float32)
        at = 0
        while at < len(order):
            end = at + 1
            while end < len(order) and lengths[order[end]] <= PADDING * lengths[order[at]] + 4 and \
                    lengths[order[end]] * (end - at + 1) <= BATCH_TOKENS:
                end += 1
            batch = order[at:end]
            ids = np.zeros((len(batch), lengths[batch[-1]]), dtype=np.int64)
            mask = np.zeros(ids.shape, dtype=np.float32)
            for row, i in enumerate(batch):
                ids[row, :lengths[i]], mask[row, :lengths[i]] = encodings[i].ids, 1.0
            out[batch] = self._forward(ids, mask)
            at = end
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        b, n = ids.shape
        x = _layer_norm(self.words[ids.ravel()] + np.tile(self.positions[:n], (b, 1)) + self.token_type, *self.norm,
                        self.eps)  # (b * n, hidden): 2-D products use BLAS well, 3-D ones do not
        heads, d = self.heads, x.shape[-1] // self.heads
        hide = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padding is never attended to
        for qkv, qkv_bias, out_w, out_b, norm1, up_w, up_b, down_w, down_b, norm2 in self.layers:
            # (b, heads, n, d) each, contiguous: NumPy hands stacked products to BLAS only then
            q, k, v = np.ascontiguousarray((x @ qkv + qkv_bias).reshape(b, n, 3, heads, d).transpose(2, 0, 3, 1, 4))
            scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(d)) + hide
            scores = np.exp(np.maximum(scores - scores.max(-1, keepdims=True), np.float32(-80)))  # none subnormal
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, heads * d)
            x = _layer_norm(x + context @ out_w + out_b, *norm1, self.eps)
            x = _layer_norm(x + _gelu(x @ up_w + up_b) @ down_w + down_b, *norm2, self.eps)
        x = x.reshape(b, n, -1)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def load(folder: Path) -> Encoder | None:
    """The encoder for a sentence-transformers model folder, or None when it is not one this module computes
    exactly (not BERT, other pooling, not normalized, no safetensors or fast tokenizer): then the caller uses
    sentence-transformers."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        config = json.loads((folder / "config.json").read_text())
        pooling_file = next(folder / m["path"] / "config.json" for m in modules if m["type"].endswith("Pooling"))
        pool = json.loads(pooling_file.read_text())
        bert = json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration):
        return None
    modes = [k.removeprefix("pooling_mode_") for k, on in pool.items() if k.startswith("pooling_mode_") and on]
    if (kinds != ["Transformer", "Pooling", "Normalize"] or config.get("model_type") != "bert"
            or config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute"
            or modes not in (["mean_tokens"], ["cls_token"]) or bert.get("do_lower_case")
            or not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file()):
        return None
    from safetensors.numpy import load_file

    max_tokens = min(int(bert.get("max_seq_length") or 512), int(config["max_position_embeddings"]))
    encoder = Encoder(folder, load_file(str(folder / "model.safetensors")), config,
                      "cls" if modes == ["cls_token"] else "mean", max_tokens)
    log.info("question-time encoder: %s in NumPy", folder)
    return encoder


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(eps)) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, in place, by its tanh form: within 5e-4 of BERT's exact erf form, which costs ten times more here
    (NumPy has no erf) and was half of the encoder's time; the vectors agree to a cosine of 0.99999."""
    y = x * x
    y *= np.float32(0.044715)
    y += 1
    y *= x
    y *= np.float32(np.sqrt(2 / np.pi))
    np.tanh(y, out=y)
    y += 1
    y *= np.float32(0.5)
    x *= y
    return x
