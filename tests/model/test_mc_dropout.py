"""BALD over MC-dropout passes of a PyTorch module (the ``torch`` extra; CI installs it)."""

from __future__ import annotations

import numpy as np
import pytest

import strategies
from strategies.torch_dropout import MCDropoutCommittee

torch = pytest.importorskip(
    "torch", reason="the torch extra is not installed: pip install torch==2.13.0"
)

pytestmark = pytest.mark.model


class TorchClassifier:
    """A minimal fitted wrapper: predict_proba with dropout off, like a deployed model."""

    def __init__(self, module):
        self.module = module
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X):
        self.module.eval()
        with torch.no_grad():
            return torch.softmax(self.module(torch.as_tensor(X, dtype=torch.float32)), 1).numpy()


def _trained_mlp(p_drop: float):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-2, 0.5, (100, 2)), rng.normal(2, 0.5, (100, 2))]).astype(np.float32)
    y = np.r_[np.zeros(100), np.ones(100)].astype(np.int64)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Dropout(p_drop), torch.nn.Linear(64, 2)
    )
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.as_tensor(X)), torch.as_tensor(y))
        loss.backward()
        opt.step()
    return net


def test_mc_dropout_members_disagree_and_bald_is_positive():
    net = _trained_mlp(0.5)
    pool = np.array([[0.0, 0.0], [-2.0, -2.0], [6.0, -6.0]], dtype=np.float32)
    net.eval()
    probas = MCDropoutCommittee(net, n_samples=30).member_probas(pool)
    assert probas.shape == (30, 3, 2)
    assert probas.std(axis=0).max() > 0.01
    assert strategies.mutual_information(probas).max() > 0.0
    assert not net.training and not net[2].training  # eval mode restored after sampling


def test_mc_dropout_without_dropout_rate_gives_zero_bald():
    net = _trained_mlp(0.0)
    pool = np.random.default_rng(1).normal(0, 3, (50, 2)).astype(np.float32)
    probas = MCDropoutCommittee(net, n_samples=5).member_probas(pool)
    np.testing.assert_allclose(strategies.mutual_information(probas), 0.0, atol=1e-6)


def test_bald_with_mc_dropout_selects_and_restores_module_mode():
    net = _trained_mlp(0.5)
    net.train()
    pool = np.random.default_rng(2).normal(0, 3, (200, 2)).astype(np.float32)
    committee = MCDropoutCommittee(net, n_samples=20, seed=3)
    picks = strategies.get("bald", members=committee).select(
        TorchClassifier(net), pool, 10, random_state=0
    )
    net.train()
    again = strategies.get("bald", members=committee).select(
        TorchClassifier(net), pool, 10, random_state=0
    )
    assert picks.shape == (10,) and np.unique(picks).shape == (10,)
    np.testing.assert_array_equal(picks, again)  # seeded passes: reproducible
    assert net.training


def test_module_without_dropout_is_a_clear_error():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no dropout layer"):
        MCDropoutCommittee(net).member_probas(np.zeros((3, 2), dtype=np.float32))
