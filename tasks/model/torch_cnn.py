"""``model.kind: torch_cnn``: a small PyTorch CNN on image pixels, as a scikit-learn classifier.

Two 3x3 convolutions, max-pooling, dropout and a linear head, trained with Adam on the class-
weighted cross-entropy (balanced, times any sample weights). It reads the flattened pixels the
loop's image featurizer gives (``features.image_size`` grey levels, row by row) and needs each
image's shape: ``image_shape`` (H, W, C), or, unset, a square grey image inferred from the
number of columns. Fits are seeded and deterministic on the CPU (their own torch RNG, a
``torch.Generator`` for shuffling); predictions always come back as numpy arrays.

Committees for ``bald`` and ``qbc_*`` (:meth:`TorchCNNClassifier.query_committee`):
``committee="dropout"`` (default) uses ``mc_samples`` stochastic forward passes of the fitted
network with dropout on (MC dropout, Gal et al. 2017), ``committee="ensemble"`` ``n_members``
networks trained on the labeled rows with different seeds (deep ensembles, Lakshminarayanan et
al. 2017; the strategy's ``n_members``: ``model.committee_size``).

The fitted network is pickled as its ``state_dict`` (numpy arrays) and rebuilt on unpickling,
so the round's model logs to MLflow and loads on a machine without the GPU it trained on.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None  # type: ignore[assignment]
    nn = None  # type: ignore[assignment]

DEVICES = "'cpu', 'cuda', 'cuda:N' or 'auto'"


def _need_torch() -> None:
    if torch is None:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "model.kind torch_cnn needs PyTorch, which is not installed: install the CPU build "
            "(pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu) or "
            "a CUDA build for a GPU"
        )


def resolve_device(device: str) -> str:
    """The torch device ``device`` names ('auto': cuda if available, else cpu); a CUDA device
    where torch sees none is refused with the setting to change."""
    _need_torch()
    name = str(device).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(
                f"model.device is {device!r} but torch.cuda.is_available() is False (no GPU, or "
                "a CPU-only torch build): set model.device to 'cpu' or 'auto', or install a CUDA "
                "build of torch on a machine with a GPU"
            )
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"model.device is {device!r} but torch sees {torch.cuda.device_count()} CUDA "
                "device(s): set model.device to 'cuda' or 'auto'"
            )
        return name
    raise ValueError(f"model.device {device!r} is not a torch device: use {DEVICES}")


def infer_image_shape(n_features: int, image_shape: Any = None) -> tuple[int, int, int]:
    """(H, W, C) of rows of ``n_features`` pixels: ``image_shape`` checked against the width,
    else a square grey image (what the loop's image featurizer makes of a square
    ``features.image_size``, or the 8x8 pixel columns of the digits demo)."""
    if image_shape is not None:
        shape = tuple(int(v) for v in image_shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape must be (height, width[, channels]), got {image_shape}")
        if math.prod(shape) != n_features:
            raise ValueError(
                f"image_shape {shape} has {math.prod(shape)} pixels but the rows have "
                f"{n_features} columns: set model.params.image_shape to features.image_size "
                "(height, width, 1)"
            )
        return shape  # type: ignore[return-value]
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(
            f"rows of {n_features} columns are not square grey images: set "
            "model.params.image_shape: [height, width, channels] (features.image_size, 1)"
        )
    return (side, side, 1)


def _network(shape: tuple[int, int, int], n_classes: int, channels: Any, dropout: float) -> Any:
    """Flat pixels (n, H*W*C, row-major H, W, C) -> class logits: conv-ReLU(-pool)-conv-ReLU-
    pool, dropout, a hidden layer, dropout, the linear head."""
    height, width, depth = shape
    first, second = (int(c) for c in channels)
    layers: list[Any] = [nn.Unflatten(1, (height, width, depth)), _ChannelsFirst()]
    layers += [nn.Conv2d(depth, first, 3, padding=1), nn.ReLU()]
    if min(height, width) >= 16:  # MNIST-sized: pool early, the second conv sees 14x14
        layers.append(nn.MaxPool2d(2))
        height, width = height // 2, width // 2
    layers += [nn.Conv2d(first, second, 3, padding=1), nn.ReLU()]
    if min(height, width) >= 4:
        layers.append(nn.MaxPool2d(2))
        height, width = height // 2, width // 2
    if min(height, width) > 4:
        layers.append(nn.AdaptiveAvgPool2d(4))
        height, width = 4, 4
    hidden = 128
    layers += [
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(second * height * width, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    ]
    return nn.Sequential(*layers)


if nn is not None:

    class _ChannelsFirst(nn.Module):
        """(n, H, W, C) -> (n, C, H, W), what ``Conv2d`` takes."""

        def forward(self, x: Any) -> Any:
            return x.permute(0, 3, 1, 2)


@contextlib.contextmanager
def _threads(limit: int | None) -> Iterator[None]:
    """At most ``limit`` torch threads inside the block (tiny convolutions lose time to many
    threads on a busy machine); the process setting is restored after."""
    before = torch.get_num_threads()
    if limit is not None and before > limit:
        torch.set_num_threads(int(limit))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _dense(X: Any) -> np.ndarray:
    if sp.issparse(X):
        X = X.toarray()
    return np.ascontiguousarray(np.asarray(X, dtype=np.float32))


class TorchCNNClassifier(ClassifierMixin, BaseEstimator):
    """A small CNN on flattened image pixels (see the module docstring for the design).

    ``epochs`` passes over the labeled rows, and at least ``min_steps`` optimiser steps (a
    handful of labels still gets a real fit); ``class_weight="balanced"`` weighs each class
    inversely to its frequency in the loss; ``random_state`` None means seed 0 (every fit is
    reproducible); ``device`` as :func:`resolve_device`; ``n_threads`` caps torch's CPU threads
    inside fit and predict (None: leave them; 1 by default: on a busy 2-core machine a fit of
    200 MNIST images took ~1 s on one thread and 13-17 s on two).
    """

    def __init__(
        self,
        image_shape: Any = None,
        channels: Any = (16, 32),
        dropout: float = 0.25,
        epochs: int = 30,
        min_steps: int = 150,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        class_weight: str | None = "balanced",
        committee: str = "dropout",
        mc_samples: int = 20,
        device: str = "cpu",
        n_threads: int | None = 1,
        random_state: int | None = None,
    ) -> None:
        self.image_shape = image_shape
        self.channels = channels
        self.dropout = dropout
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.committee = committee
        self.mc_samples = mc_samples
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> TorchCNNClassifier:
        """Train a fresh network on (X, y), weighted by the balanced class weights times
        ``sample_weight``; deterministic for a seed on the CPU."""
        _need_torch()
        if self.committee not in ("dropout", "ensemble"):
            raise ValueError(f"committee must be 'dropout' or 'ensemble', got {self.committee!r}")
        X = _dense(X)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (n_rows, n_pixels) with a label per row, got {X.shape}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(f"need at least 2 classes to fit, got {self.classes_.tolist()}")
        self.n_features_in_ = X.shape[1]
        self.image_shape_ = infer_image_shape(X.shape[1], self.image_shape)
        self.device_ = resolve_device(self.device)
        weights = np.ones(y.shape[0])
        if self.class_weight is not None:
            weights = compute_sample_weight(self.class_weight, y)
        if sample_weight is not None:
            weights = weights * np.asarray(sample_weight, dtype=np.float64)
        weights = weights / weights.mean()
        seed = 0 if self.random_state is None else int(self.random_state)
        devices = [torch.device(self.device_).index or 0] if self.device_ != "cpu" else []
        with _threads(self.n_threads), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            module = _network(self.image_shape_, self.classes_.size, self.channels, self.dropout)
            module = module.to(self.device_)
            self.n_steps_ = self._train(module, X, codes, weights, seed)
        self.module_ = module.eval()
        return self

    def _train(
        self, module: Any, X: np.ndarray, codes: np.ndarray, weights: np.ndarray, seed: int
    ) -> int:
        X_t = torch.as_tensor(X, device=self.device_)
        y_t = torch.as_tensor(codes, dtype=torch.long, device=self.device_)
        w_t = torch.as_tensor(weights, dtype=torch.float32, device=self.device_)
        n = X.shape[0]
        batch = max(1, min(int(self.batch_size), n))
        per_epoch = math.ceil(n / batch)
        epochs = max(int(self.epochs), math.ceil(int(self.min_steps) / per_epoch))
        optimiser = torch.optim.Adam(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        shuffle = torch.Generator().manual_seed(seed)
        module.train()
        steps = 0
        for _ in range(epochs):
            order = torch.randperm(n, generator=shuffle).to(self.device_)
            for start in range(0, n, batch):
                rows = order[start : start + batch]
                optimiser.zero_grad()
                losses = nn.functional.cross_entropy(module(X_t[rows]), y_t[rows], reduction="none")
                (losses * w_t[rows]).mean().backward()
                optimiser.step()
                steps += 1
        return steps

    # -- predicting ------------------------------------------------------------------------
    def _run_device(self) -> str:
        """Where predictions run: the fit's device, or the CPU where that GPU is missing (a
        model trained on a GPU, served on a CPU machine)."""
        if self.device_ != "cpu" and not torch.cuda.is_available():
            self.module_.to("cpu")
            self.device_ = "cpu"
        return self.device_

    def _logits(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        check_is_fitted(self, "module_")
        X = _dense(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected rows of {self.n_features_in_} pixels, got {X.shape}")
        device = self._run_device()
        self.module_.eval()
        with _threads(self.n_threads), torch.no_grad():
            parts = [
                self.module_(torch.as_tensor(X[i : i + batch_size], device=device)).cpu()
                for i in range(0, X.shape[0], batch_size)
            ]
        if not parts:
            return np.zeros((0, self.classes_.size), dtype=np.float64)
        return torch.cat(parts).numpy().astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (dropout off), columns in the order of ``classes_``."""
        logits = self._logits(X)
        logits -= logits.max(axis=1, keepdims=True)
        out = np.exp(logits)
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # -- committees ------------------------------------------------------------------------
    def query_committee(
        self,
        n_members: int,
        X_labeled: Any = None,
        y_labeled: Any = None,
        random_state: int | None = None,
    ) -> Any:
        """The committee ``bald`` / ``qbc_*`` score with (``member_probas(X)``): ``mc_samples``
        dropout passes of this network, or, with ``committee="ensemble"``, this network and
        ``n_members - 1`` more trained on the labeled rows with other seeds."""
        check_is_fitted(self, "module_")
        seed = 0 if random_state is None else int(random_state)
        if self.committee == "dropout":
            return _DropoutMembers(self, int(self.mc_samples or n_members), seed)
        if X_labeled is None or y_labeled is None:
            raise ValueError("an ensemble committee needs the labeled rows (X_labeled, y_labeled)")
        from strategies.committee import FittedCommittee

        rng = np.random.default_rng(seed)
        members: list[Any] = [self]
        for _ in range(max(int(n_members), 2) - 1):
            member = clone(self).set_params(random_state=int(rng.integers(0, 2**31 - 1)))
            members.append(member.fit(X_labeled, np.asarray(y_labeled)))
        return FittedCommittee(members)

    # -- pickling --------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: BaseEstimator may hand out __dict__
        module = state.pop("module_", None)
        if module is not None:
            state["_weights"] = {
                k: v.detach().cpu().numpy() for k, v in module.state_dict().items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("_weights", None)
        super().__setstate__(state)
        if weights is not None:
            _need_torch()
            module = _network(self.image_shape_, self.classes_.size, self.channels, self.dropout)
            module.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
            self.module_ = module.eval()
            self.device_ = "cpu"  # moved to the GPU again only by a new fit


class _DropoutMembers:
    """MC-dropout members of a fitted :class:`TorchCNNClassifier` (one stochastic pass each)."""

    def __init__(self, model: TorchCNNClassifier, n_samples: int, seed: int) -> None:
        from strategies.torch_dropout import MCDropoutCommittee

        self.model = model
        self.classes_ = model.classes_
        self._passes = MCDropoutCommittee(model.module_, n_samples=n_samples, seed=seed)

    def member_probas(self, X: Any) -> np.ndarray:
        """Shape (n_samples, n_rows, n_classes), columns as the model's ``classes_``."""
        self.model._run_device()
        with _threads(self.model.n_threads):
            return self._passes.member_probas(_dense(X))
